package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
)

// ErrNotJSON is returned by AppendSortedJSON for input that is not one JSON
// value.
var ErrNotJSON = errors.New("not a JSON value")

// maxSortDepth bounds the nesting AppendSortedJSON follows (it recurses).
// encoding/json allows 10,000 levels; no schema-encoded record nests past a
// few dozen.
const maxSortDepth = 1000

// AppendSortedJSON appends the JSON value src to dst with the members of
// every object sorted by their keys (as written, escapes included), the
// whitespace between tokens removed, and strings, numbers and literals
// copied byte for byte. Two encodings of the same document that differ only
// in member order and whitespace give the same bytes, which a decoder that
// writes a record's fields in map order needs.
func AppendSortedJSON(dst, src []byte) ([]byte, error) {
	if !json.Valid(src) {
		return dst, ErrNotJSON
	}
	var s sorter
	out, end, err := s.value(dst, src, skipSpace(src, 0), 0)
	if err != nil {
		return dst, err
	}
	if skipSpace(src, end) != len(src) {
		return dst, ErrNotJSON // unreachable after json.Valid
	}
	return out, nil
}

// member is an object member's key (quotes included) and value spans.
type member struct{ k0, k1, v0, v1 int }

// sorter reuses one stack of members across the objects of a document.
type sorter struct{ stack []member }

// value writes the value starting at src[i] (valid JSON, no leading space)
// and returns the index just past it.
func (s *sorter) value(dst, src []byte, i, depth int) ([]byte, int, error) {
	if depth > maxSortDepth {
		return dst, 0, ErrNotJSON
	}
	switch src[i] {
	case '{':
		return s.object(dst, src, i, depth)
	case '[':
		dst = append(dst, '[')
		i = skipSpace(src, i+1)
		if src[i] == ']' {
			return append(dst, ']'), i + 1, nil
		}
		for {
			var err error
			if dst, i, err = s.value(dst, src, i, depth+1); err != nil {
				return dst, 0, err
			}
			i = skipSpace(src, i)
			if src[i] == ']' {
				return append(dst, ']'), i + 1, nil
			}
			dst = append(dst, ',')
			i = skipSpace(src, i+1) // past the comma
		}
	case '"':
		end := skipString(src, i)
		return append(dst, src[i:end]...), end, nil
	default: // number, true, false, null
		end := i
		for end < len(src) && !isDelim(src[end]) {
			end++
		}
		return append(dst, src[i:end]...), end, nil
	}
}

func (s *sorter) object(dst, src []byte, i, depth int) ([]byte, int, error) {
	base := len(s.stack)
	i = skipSpace(src, i+1)
	for src[i] != '}' {
		k1 := skipString(src, i)
		v0 := skipSpace(src, skipSpace(src, k1)+1) // past the colon
		v1 := skipValue(src, v0)
		s.stack = append(s.stack, member{i, k1, v0, v1})
		i = skipSpace(src, v1)
		if src[i] == ',' {
			i = skipSpace(src, i+1)
		}
	}
	end := i + 1
	members := s.stack[base:]
	slices.SortStableFunc(members, func(a, b member) int { return bytes.Compare(src[a.k0:a.k1], src[b.k0:b.k1]) })
	dst = append(dst, '{')
	// The stack may grow (and move) while nested objects are written, so
	// members are read back by index.
	for n := range len(members) {
		m := s.stack[base+n]
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(append(dst, src[m.k0:m.k1]...), ':')
		var err error
		if dst, _, err = s.value(dst, src, m.v0, depth+1); err != nil {
			return dst, 0, err
		}
	}
	s.stack = s.stack[:base]
	return append(dst, '}'), end, nil
}

// skipValue returns the index just past the value at src[i].
func skipValue(src []byte, i int) int {
	switch src[i] {
	case '"':
		return skipString(src, i)
	case '{', '[':
		depth := 0
		for ; i < len(src); i++ {
			switch src[i] {
			case '"':
				i = skipString(src, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		for i < len(src) && !isDelim(src[i]) {
			i++
		}
		return i
	}
}

// skipString returns the index just past the string whose quote is src[i].
func skipString(src []byte, i int) int {
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

func skipSpace(src []byte, i int) int {
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	return i
}

func isDelim(c byte) bool {
	switch c {
	case ',', '}', ']', ':', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
