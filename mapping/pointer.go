package mapping

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Pointer is a compiled RFC 6901 JSON Pointer: "" is the whole document,
// "/user/id" the member "id" of the member "user", "/items/0" the first
// element of an array. In a token "~1" stands for "/" and "~0" for "~".
//
// A Pointer reads a document the way encoding/json would decode it into
// interface{}, without building the maps: the document must be valid JSON as
// a whole (anything else counts as missing), an object with a repeated member
// name takes the last one, and escapes and invalid UTF-8 in strings decode as
// encoding/json decodes them. On an array a token must be a decimal index
// without leading zeros ("-", RFC 6901's past-the-end element, is missing).
type Pointer struct {
	src    string
	tokens []string
	// index[i] is tokens[i] as an array index, or -1 if it can't be one.
	index []int
}

// ParsePointer compiles a JSON Pointer.
func ParsePointer(s string) (Pointer, error) {
	p := Pointer{src: s}
	if s == "" {
		return p, nil
	}
	if s[0] != '/' {
		return Pointer{}, syntaxErr(s, 0, "a JSON Pointer must be empty or start with /")
	}
	start := 1
	for i := 1; i <= len(s); i++ {
		if i < len(s) && s[i] != '/' {
			if s[i] == '~' && (i+1 == len(s) || (s[i+1] != '0' && s[i+1] != '1')) {
				return Pointer{}, syntaxErr(s, i, "~ must be followed by 0 or 1 in a JSON Pointer")
			}
			continue
		}
		tok := s[start:i]
		if strings.IndexByte(tok, '~') >= 0 {
			// Order matters: "~01" is "~1", not "/" (RFC 6901 section 4).
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		}
		p.tokens = append(p.tokens, tok)
		p.index = append(p.index, arrayIndex(tok))
		start = i + 1
	}
	return p, nil
}

// String returns the pointer as it was written.
func (p Pointer) String() string { return p.src }

func arrayIndex(tok string) int {
	if tok == "" || len(tok) > 9 || (tok[0] == '0' && len(tok) > 1) {
		return -1 // beyond 9 digits no document of ours has the element
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return -1
		}
	}
	n, _ := strconv.Atoi(tok)
	return n
}

// AppendValue appends the text of the scalar that p points at in doc to dst:
// a string unquoted, a number as written, true or false. It reports false,
// with dst unchanged, when doc is not valid JSON or p points at nothing, an
// object, an array or null.
func (p *Pointer) AppendValue(dst, doc []byte) ([]byte, bool) {
	s := jsonScanner{b: doc}
	if !s.document(p, true) || !s.found {
		return dst, false
	}
	v := doc[s.start:s.end]
	if s.kind != '"' {
		return append(dst, v...), true
	}
	if !s.esc && (!s.high || utf8.Valid(v)) {
		return append(dst, v...), true
	}
	return appendUnquoted(dst, v), true
}

// validJSON is json.Valid, by the scanner behind Pointer (which fuzzing
// holds to json.Valid) and a little faster.
func validJSON(b []byte) bool {
	s := jsonScanner{b: b}
	return s.document(nil, false)
}

// maxDepth is encoding/json's limit on nested objects and arrays; deeper
// documents are invalid there, so they are here.
const maxDepth = 10000

// jsonScanner validates a document in one pass, and on the way notes where
// the value at a pointer is. It never allocates.
type jsonScanner struct {
	b     []byte
	i     int
	depth int

	found      bool
	kind       byte // '"' string, '0' number, 't' true, 'f' false
	start, end int  // the value's bytes (a string's without its quotes)
	esc, high  bool // a string has escapes / bytes of 0x80 and above
}

func (s *jsonScanner) document(p *Pointer, on bool) bool {
	s.ws()
	if !s.value(p, 0, on) {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

func (s *jsonScanner) ws() {
	i := s.i
	// Most calls find no whitespace: the first test settles them.
	for i < len(s.b) && s.b[i] <= ' ' && (s.b[i] == ' ' || s.b[i] == '\t' || s.b[i] == '\n' || s.b[i] == '\r') {
		i++
	}
	s.i = i
}

// value scans one value. on says whether it lies on p's path, with level
// tokens of p consumed: once all are, it is the value p points at.
func (s *jsonScanner) value(p *Pointer, level int, on bool) bool {
	if s.i >= len(s.b) {
		return false
	}
	target := on && level == len(p.tokens)
	start := s.i
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(p, level, on && !target)
	case c == '[':
		return s.array(p, level, on && !target)
	case c == '"':
		st, end, esc, high, ok := s.str()
		if ok && target {
			s.found, s.kind, s.start, s.end, s.esc, s.high = true, '"', st, end, esc, high
		}
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		if !s.number() {
			return false
		}
		if target {
			s.found, s.kind, s.start, s.end = true, '0', start, s.i
		}
		return true
	case c == 't':
		if !s.literal("true") {
			return false
		}
	case c == 'f':
		if !s.literal("false") {
			return false
		}
	case c == 'n':
		return s.literal("null")
	default:
		return false
	}
	if target {
		s.found, s.kind, s.start, s.end = true, s.b[start], start, s.i
	}
	return true
}

func (s *jsonScanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// object scans an object; on says whether p continues into it.
func (s *jsonScanner) object(p *Pointer, level int, on bool) bool {
	s.i++
	if s.depth++; s.depth > maxDepth {
		return false
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return true
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		st, end, esc, high, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		match := on && keyEqual(s.b[st:end], esc, high, p.tokens[level])
		if match {
			// A repeated name replaces the earlier member, as a map
			// assignment does in encoding/json: forget what it held.
			s.found = false
		}
		if !s.value(p, level+1, match) {
			return false
		}
		if more, ok := s.next('}'); !more {
			return ok
		}
	}
}

// next reads what follows a member or an element: a comma (more is true)
// or the closing byte (more false, ok true); anything else is invalid.
func (s *jsonScanner) next(closing byte) (more, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.ws()
		return true, true
	case closing:
		s.i++
		s.depth--
		return false, true
	}
	return false, false
}

// array scans an array; on says whether p continues into it.
func (s *jsonScanner) array(p *Pointer, level int, on bool) bool {
	s.i++
	if s.depth++; s.depth > maxDepth {
		return false
	}
	want := -1
	if on {
		want = p.index[level]
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return true
	}
	for n := 0; ; n++ {
		if !s.value(p, level+1, n == want) {
			return false
		}
		if more, ok := s.next(']'); !more {
			return ok
		}
	}
}

// plainByte marks the string bytes that need no look: not a quote, a
// backslash, a control character or part of a multi-byte sequence.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans a string starting at its opening quote and returns the bounds of
// its contents.
func (s *jsonScanner) str() (start, end int, esc, high, ok bool) {
	b := s.b
	i := s.i + 1
	start = i
	for i < len(b) {
		c := b[i]
		if plainByte[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return start, i, esc, high, true
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return 0, 0, false, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || hex4(b[i+2:i+6]) < 0 {
					return 0, 0, false, false, false
				}
				i += 6
			default:
				return 0, 0, false, false, false
			}
		case c < 0x20:
			return 0, 0, false, false, false
		default:
			high = true
			i++
		}
	}
	return 0, 0, false, false, false
}

func (s *jsonScanner) number() bool {
	b := s.b
	i := s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	s.i = i
	return true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// hex4 decodes four hex digits, or returns -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// keyEqual compares a member name (as scanned, without quotes) with a token.
// Most names have no escapes and are valid UTF-8: those compare as bytes.
func keyEqual(raw []byte, esc, high bool, tok string) bool {
	if !esc && (!high || utf8.Valid(raw)) {
		return string(raw) == tok
	}
	var buf [128]byte // escaped names are rare, and short
	return string(appendUnquoted(buf[:0], raw)) == tok
}

// appendUnquoted decodes the contents of a valid JSON string exactly as
// encoding/json does (unquoteBytes): a lone surrogate and each byte of
// invalid UTF-8 become U+FFFD.
func appendUnquoted(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch e := s[r+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hex4(s[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			dst = utf8.AppendRune(dst, rr)
		}
	}
	return dst
}
