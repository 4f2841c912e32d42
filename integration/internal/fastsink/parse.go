package fastsink

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// span is a byte range [s, e) of the request body; s < 0 means the field was absent or null.
type span struct{ s, e int }

var absent = span{-1, -1}

func (sp span) ok() bool { return sp.s >= 0 }

// entry is one PutRecords entry (or the single PutRecord record), as spans of the request body.
// Strings are unescaped in place, so every span holds the field's decoded text (Data: base64).
type entry struct {
	data, key, ehk span
	dataLen        int  // decoded length of Data
	id             span // identity, as a span of the per-request id buffer
}

// parser is a small JSON scanner over a request body that it may modify: strings are unescaped in
// place, which is safe because an unescaped string is never longer than its escaped form.
type parser struct {
	b []byte
	i int
}

var errSyntax = errors.New("malformed JSON")

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errSyntax, p.i, fmt.Sprintf(format, args...))
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end).
func (p *parser) peek() byte {
	p.ws()
	if p.i >= len(p.b) {
		return 0
	}
	return p.b[p.i]
}

func (p *parser) expect(c byte) error {
	if p.peek() != c {
		return p.errf("expected %q", c)
	}
	p.i++
	return nil
}

// null consumes a literal null if one comes next.
func (p *parser) null() bool {
	if p.peek() == 'n' && bytes.HasPrefix(p.b[p.i:], []byte("null")) {
		p.i += 4
		return true
	}
	return false
}

// str parses the string at the cursor, unescaping it in place, and returns its content's span.
func (p *parser) str() (span, error) {
	if p.peek() != '"' {
		return absent, p.errf("expected string")
	}
	b := p.b
	start := p.i + 1
	q := bytes.IndexByte(b[start:], '"')
	if q < 0 {
		return absent, p.errf("unterminated string")
	}
	q += start
	bs := bytes.IndexByte(b[start:q], '\\')
	if bs < 0 {
		p.i = q + 1
		return span{start, q}, nil
	}
	r := start + bs
	w := r
	for r < len(b) {
		c := b[r]
		if c == '"' {
			p.i = r + 1
			return span{start, w}, nil
		}
		if c != '\\' {
			b[w] = c
			w++
			r++
			continue
		}
		if r+1 >= len(b) {
			break
		}
		switch e := b[r+1]; e {
		case '"', '\\', '/':
			b[w] = e
		case 'b':
			b[w] = '\b'
		case 'f':
			b[w] = '\f'
		case 'n':
			b[w] = '\n'
		case 'r':
			b[w] = '\r'
		case 't':
			b[w] = '\t'
		case 'u':
			ru, ok := hex4(b, r+2)
			if !ok {
				p.i = r
				return absent, p.errf("bad \\u escape")
			}
			r += 6
			if utf16.IsSurrogate(ru) {
				ru2 := rune(-1)
				if r+1 < len(b) && b[r] == '\\' && b[r+1] == 'u' {
					if x, ok := hex4(b, r+2); ok {
						ru2 = x
					}
				}
				if dec := utf16.DecodeRune(ru, ru2); dec != utf8.RuneError {
					ru = dec
					r += 6
				} else {
					ru = utf8.RuneError // a lone surrogate, as encoding/json decodes it
				}
			}
			w += utf8.EncodeRune(b[w:], ru) // w+4 <= r: never overwrites unread input
			continue
		default:
			p.i = r
			return absent, p.errf("bad escape \\%c", e)
		}
		w++
		r += 2
	}
	p.i = r
	return absent, p.errf("unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// optStr parses a string or null.
func (p *parser) optStr() (span, error) {
	if p.null() {
		return absent, nil
	}
	return p.str()
}

// skip skips any JSON value.
func (p *parser) skip(depth int) error {
	if depth > 64 {
		return p.errf("nested too deeply")
	}
	switch c := p.peek(); c {
	case '"':
		_, err := p.str()
		return err
	case '{', '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		p.i++
		if p.peek() == closing {
			p.i++
			return nil
		}
		for {
			if c == '{' {
				if _, err := p.str(); err != nil {
					return err
				}
				if err := p.expect(':'); err != nil {
					return err
				}
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			switch p.peek() {
			case ',':
				p.i++
			case closing:
				p.i++
				return nil
			default:
				return p.errf("expected ',' or %q", closing)
			}
		}
	case 0:
		return p.errf("unexpected end")
	default:
		start := p.i
		for p.i < len(p.b) {
			c := p.b[p.i]
			if ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || c == '-' || c == '+' || c == '.' || c == 'E' {
				p.i++
				continue
			}
			break
		}
		if p.i == start {
			return p.errf("unexpected %q", c)
		}
		return nil
	}
}

// members iterates over an object's members: call it with first=true at the '{', then after
// consuming each value with first=false. It returns the next key, or ok=false after the '}'.
func (p *parser) members(first bool) (key []byte, ok bool, err error) {
	if first {
		if err := p.expect('{'); err != nil {
			return nil, false, err
		}
		if p.peek() == '}' {
			p.i++
			return nil, false, nil
		}
	} else {
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil, false, nil
		default:
			return nil, false, p.errf("expected ',' or '}'")
		}
	}
	k, err := p.str()
	if err != nil {
		return nil, false, err
	}
	if err := p.expect(':'); err != nil {
		return nil, false, err
	}
	return p.b[k.s:k.e], true, nil
}

// record parses one record object: Data, PartitionKey and ExplicitHashKey; other members (e.g.
// PutRecord's StreamName) are skipped.
func (p *parser) record() (entry, error) {
	e := entry{data: absent, key: absent, ehk: absent}
	for first := true; ; first = false {
		k, ok, err := p.members(first)
		if err != nil {
			return e, err
		}
		if !ok {
			break
		}
		switch string(k) {
		case "Data":
			e.data, err = p.optStr()
		case "PartitionKey":
			e.key, err = p.optStr()
		case "ExplicitHashKey":
			e.ehk, err = p.optStr()
		default:
			err = p.skip(0)
		}
		if err != nil {
			return e, err
		}
	}
	if e.data.ok() {
		n, err := base64Len(p.b[e.data.s:e.data.e])
		if err != nil {
			return e, err
		}
		e.dataLen = n
	}
	return e, nil
}

// putRecords parses a PutRecords body, appending its entries to dst.
func (p *parser) putRecords(dst []entry) ([]entry, error) {
	for first := true; ; first = false {
		k, ok, err := p.members(first)
		if err != nil {
			return dst, err
		}
		if !ok {
			break
		}
		if string(k) != "Records" {
			if err := p.skip(0); err != nil {
				return dst, err
			}
			continue
		}
		if dst, err = p.records(dst); err != nil {
			return dst, err
		}
	}
	if p.peek() != 0 {
		return dst, p.errf("trailing data")
	}
	return dst, nil
}

func (p *parser) records(dst []entry) ([]entry, error) {
	if p.null() {
		return dst, nil
	}
	if err := p.expect('['); err != nil {
		return dst, err
	}
	if p.peek() == ']' {
		p.i++
		return dst, nil
	}
	for {
		e, err := p.record()
		if err != nil {
			return dst, err
		}
		dst = append(dst, e)
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return dst, nil
		default:
			return dst, p.errf("expected ',' or ']'")
		}
	}
}

// base64Len is the decoded length of standard base64 text, padded or not.
func base64Len(b []byte) (int, error) {
	n := len(b)
	switch n % 4 {
	case 0:
		pad := 0
		if n > 0 && b[n-1] == '=' {
			pad++
			if b[n-2] == '=' {
				pad++
			}
		}
		return n/4*3 - pad, nil
	case 1:
		return 0, errors.New("illegal base64 data: bad length")
	default:
		return n/4*3 + n%4 - 1, nil
	}
}

func encodingFor(b []byte) *base64.Encoding {
	if len(b)%4 == 0 {
		return base64.StdEncoding
	}
	return base64.RawStdEncoding
}

// defaultIDPrefix decodes base64 src progressively into dst until it has found the second '|'
// and returns the data up to and including it, or all of the data if it has fewer than two.
func defaultIDPrefix(dst, src []byte) ([]byte, error) {
	enc := encodingFor(src)
	dst = dst[:0]
	bars, chunk := 0, 64 // chunk stays a multiple of 4, so only the last one can hold padding
	for off := 0; off < len(src); {
		end := min(off+chunk, len(src))
		prev := len(dst)
		need := enc.DecodedLen(end - off)
		if cap(dst)-prev < need {
			dst = append(dst[:cap(dst)], make([]byte, prev+need-cap(dst))...)
		}
		n, err := enc.Decode(dst[prev:prev+need], src[off:end])
		if err != nil {
			return nil, err
		}
		dst = dst[:prev+n]
		for i := prev; i < len(dst); i++ {
			if dst[i] == '|' {
				if bars++; bars == 2 {
					return dst[:i+1], nil
				}
			}
		}
		off = end
		chunk *= 4
	}
	return dst, nil
}

// decodeAll decodes base64 src into dst (reusing its storage).
func decodeAll(dst, src []byte) ([]byte, error) {
	enc := encodingFor(src)
	need := enc.DecodedLen(len(src))
	if cap(dst) < need {
		dst = make([]byte, need)
	}
	n, err := enc.Decode(dst[:need], src)
	return dst[:n], err
}
