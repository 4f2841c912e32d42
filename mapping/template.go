package mapping

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Template builds a stream name (or a partition key) from a record. Text
// is copied; variables are replaced:
//
//	${topic}          the Kafka topic
//	$1, ${1}          a capture group of the route's regex (greedy digits:
//	                  "$12" is group 12; write "${1}2" for group 1, then "2")
//	${name}           a named capture group, (?P<name>...)
//	${header:NAME}    the value of the record's last header NAME
//	$$                a literal $ (partition keys only: streams can't hold $)
//
// and in partition-key templates also
//
//	${key}            the Kafka key
//	${partition}      the Kafka partition number
//	${json:POINTER}   a scalar of the JSON value (see Pointer)
//
// Capture groups are valid only on a route matched by regex alone (checked
// when the template is parsed, so a typo fails at startup), and ${topic},
// ${key} and ${partition} win over groups of the same name. A NAME or
// POINTER ends at the first "}". A group that did not take part in the match
// expands to nothing. A header that is absent or empty, a null or empty key
// and a missing JSON value make a stream template fail (ErrInvalidStream) and
// a key template missing (its on_missing chain applies), rather than quietly
// expanding to nothing: records that lack the value would otherwise all share
// one stream or one hot partition key.
type Template struct {
	src  string
	segs []segment
	// key says this is a partition-key template, which may use ${key},
	// ${partition} and ${json:...} and holds any text.
	key bool
	// groups says a segment reads a capture group.
	groups bool
	// perRecord says the expansion reads the record beyond its topic.
	perRecord bool
}

type segKind uint8

const (
	segText segKind = iota
	segTopic
	segGroup
	segHeader
	segKey
	segPartition
	segJSON
)

type segment struct {
	kind segKind
	text string // the text, or the header name
	n    int    // the capture group
	ptr  Pointer
}

// MaxStreamName is the longest Kinesis stream name.
const MaxStreamName = 128

// ParseTemplate compiles a stream template. re is the regex of the route
// the template belongs to, or nil when the route matches by topic list. A
// template without variables must itself be a valid stream name.
func ParseTemplate(s string, re *regexp.Regexp) (*Template, error) {
	return parseTemplate(s, re, false)
}

func parseTemplate(s string, re *regexp.Regexp, key bool) (*Template, error) {
	t := &Template{src: s, key: key}
	var text []byte
	flush := func() {
		if len(text) > 0 {
			t.segs = append(t.segs, segment{kind: segText, text: string(text)})
			text = text[:0]
		}
	}
	addText := func(c byte, at int) error {
		if !key && !streamByte[c] {
			return syntaxErr(s, at, "%q can't be part of a stream name (only a-z, A-Z, 0-9, _ . -)", rune(c))
		}
		text = append(text, c)
		return nil
	}
	for i := 0; i < len(s); {
		if s[i] != '$' {
			if err := addText(s[i], i); err != nil {
				return nil, err
			}
			i++
			continue
		}
		if i+1 == len(s) {
			return nil, syntaxErr(s, i, "lone $ at the end (write $$ for a literal $)")
		}
		var seg segment
		var err error
		switch c := s[i+1]; {
		case c == '$':
			if err := addText('$', i); err != nil {
				return nil, err
			}
			i += 2
			continue
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			seg, err = groupSegment(s, i, s[i+1:j], re)
			i = j
		case c == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return nil, syntaxErr(s, i, "unterminated ${")
			}
			seg, err = t.variable(s, i, s[i+2:i+2+end], re)
			i += 2 + end + 1
		default:
			return nil, syntaxErr(s, i, "$ must start $N, ${...} or $$")
		}
		if err != nil {
			return nil, err
		}
		flush()
		t.segs = append(t.segs, seg)
		switch seg.kind {
		case segGroup:
			t.groups = true
		case segHeader, segKey, segPartition, segJSON:
			t.perRecord = true
		}
	}
	flush()
	return t, t.check()
}

// variable resolves the name inside ${...} found at offset at.
func (t *Template) variable(s string, at int, name string, re *regexp.Regexp) (segment, error) {
	keyOnly := func(kind segKind) (segment, error) {
		if !t.key {
			return segment{}, syntaxErr(s, at, "${%s} is only allowed in a partition-key template", name)
		}
		return segment{kind: kind}, nil
	}
	switch {
	case name == "":
		return segment{}, syntaxErr(s, at, "empty variable name in ${}")
	case name == "topic":
		return segment{kind: segTopic}, nil
	case name == "key":
		return keyOnly(segKey)
	case name == "partition":
		return keyOnly(segPartition)
	case strings.HasPrefix(name, "header:"):
		h := name[len("header:"):]
		if h == "" {
			return segment{}, syntaxErr(s, at, "empty header name in ${header:}")
		}
		return segment{kind: segHeader, text: h}, nil
	case strings.HasPrefix(name, "json:"):
		if !t.key {
			return segment{}, syntaxErr(s, at, "${json:...} is only allowed in a partition-key template")
		}
		p, err := ParsePointer(name[len("json:"):])
		if err != nil {
			return segment{}, syntaxErr(s, at, "bad JSON Pointer in ${%s}: %v", name, err)
		}
		return segment{kind: segJSON, ptr: p}, nil
	case name[0] >= '0' && name[0] <= '9':
		return groupSegment(s, at, name, re)
	case validGroupName(name):
		if re == nil {
			return segment{}, syntaxErr(s, at, "unknown variable ${%s} (capture groups need a route matched by regex)", name)
		}
		n := re.SubexpIndex(name)
		if n < 0 {
			return segment{}, syntaxErr(s, at, "unknown variable ${%s} (the route's regex has no group of that name)", name)
		}
		return segment{kind: segGroup, n: n}, nil
	}
	return segment{}, syntaxErr(s, at, "unknown variable ${%s}", name)
}

func groupSegment(s string, at int, num string, re *regexp.Regexp) (segment, error) {
	n, err := strconv.Atoi(num)
	if err != nil {
		return segment{}, syntaxErr(s, at, "bad capture group number %q", num)
	}
	if re == nil {
		return segment{}, syntaxErr(s, at, "capture group %d needs a route matched by regex", n)
	}
	if n > re.NumSubexp() {
		return segment{}, syntaxErr(s, at, "capture group %d, but the route's regex has %d", n, re.NumSubexp())
	}
	return segment{kind: segGroup, n: n}, nil
}

func validGroupName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '_' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

// check rejects templates that can never expand to something usable.
func (t *Template) check() error {
	vars := 0
	textLen := 0
	for _, sg := range t.segs {
		if sg.kind == segText {
			textLen += len(sg.text)
		} else {
			vars++
		}
	}
	switch {
	case t.key && vars == 0:
		return syntaxErr(t.src, 0, "a partition-key template needs a variable (a fixed key sends every record to one shard)")
	case !t.key && len(t.segs) == 0:
		return syntaxErr(t.src, 0, "empty stream name")
	case !t.key && textLen > MaxStreamName:
		return syntaxErr(t.src, 0, "over %d characters of fixed text: no stream name is that long", MaxStreamName)
	}
	return nil
}

// String returns the template as it was written.
func (t *Template) String() string { return t.src }

// Static returns the text of a template without variables.
func (t *Template) Static() (string, bool) {
	switch len(t.segs) {
	case 0:
		return "", true
	case 1:
		if t.segs[0].kind == segText {
			return t.segs[0].text, true
		}
	}
	return "", false
}

// PerTopic reports whether the expansion depends only on the topic (and
// the regex's groups, which come from the topic): the caller may then expand
// it once per topic and cache the result.
func (t *Template) PerTopic() bool { return !t.perRecord }

// Expand appends the stream name for rec to dst. match is the route regex's
// submatch indices for rec.Topic, as from FindStringSubmatchIndex (nil for
// a template without groups). It fails, wrapping ErrInvalidStream, when the
// result is not a valid stream name or a header it uses is absent. A static
// template appends without allocating.
func (t *Template) Expand(dst []byte, rec *Record, match []int) ([]byte, error) {
	start := len(dst)
	dst, missing := t.expand(dst, rec, match)
	if missing >= 0 {
		return dst[:start], fmt.Errorf("%w: stream %q: record has no header %q", ErrInvalidStream, t.src, t.segs[missing].text)
	}
	if !ValidStreamName(dst[start:]) {
		return dst[:start], fmt.Errorf("%w: stream %q expands to %q (want 1 to %d of a-z, A-Z, 0-9, _ . -)",
			ErrInvalidStream, t.src, dst[start:], MaxStreamName)
	}
	return dst, nil
}

// expand appends the expansion; missing is the index of the first segment
// whose value the record lacks, or -1.
func (t *Template) expand(dst []byte, rec *Record, match []int) (_ []byte, missing int) {
	for i := range t.segs {
		sg := &t.segs[i]
		switch sg.kind {
		case segText:
			dst = append(dst, sg.text...)
		case segTopic:
			dst = append(dst, rec.Topic...)
		case segGroup:
			if 2*sg.n+1 < len(match) && match[2*sg.n] >= 0 {
				dst = append(dst, rec.Topic[match[2*sg.n]:match[2*sg.n+1]]...)
			}
		case segHeader:
			v, _ := lastHeader(rec.Headers, sg.text)
			if len(v) == 0 {
				return dst, i
			}
			dst = append(dst, v...)
		case segKey:
			if len(rec.Key) == 0 {
				return dst, i
			}
			dst = append(dst, rec.Key...)
		case segPartition:
			dst = strconv.AppendInt(dst, int64(rec.Partition), 10)
		case segJSON:
			n := len(dst)
			var ok bool
			if dst, ok = sg.ptr.AppendValue(dst, rec.Value); !ok || len(dst) == n {
				return dst, i
			}
		}
	}
	return dst, -1
}

// streamByte marks the bytes a Kinesis stream name may hold.
var streamByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
	}
	return t
}()

// ValidStreamName reports whether s is a Kinesis stream name:
// [a-zA-Z0-9_.-]{1,128}.
func ValidStreamName[S ~string | ~[]byte](s S) bool {
	if len(s) == 0 || len(s) > MaxStreamName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !streamByte[s[i]] {
			return false
		}
	}
	return true
}
