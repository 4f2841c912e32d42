package kinesiscodec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// DecodePutRecordsOutput decodes a PutRecords response body into out. All
// its strings share one copy of the body, and all entries one slice: two
// allocations per response, where the SDK makes several per entry. Unknown
// members are skipped, as the SDK does.
//
// Unlike the SDK, it checks that the body is a delivery report, and returns
// an error wrapping ErrMalformedResponse when it is not:
//   - Records must be present and an array (an empty body, null, {} or
//     "Records":null are rejected; the SDK decodes them as no entries). An
//     empty array is accepted: only the caller knows how many records it
//     sent, and must compare.
//   - Each entry must be an object with a non-empty ErrorCode (a failure)
//     or a non-empty SequenceNumber (a success). An entry with both is
//     decoded with both set and is a failure (Kinesis documents one or the
//     other; callers test ErrorCode first): resending a record that was in
//     fact stored only duplicates it, where acknowledging one that was not
//     would lose it.
//
// FailedRecordCount is decoded as sent and not checked against the entries.
func DecodePutRecordsOutput(body []byte, out *kinesis.PutRecordsOutput) error {
	d := decoder{s: string(body)} // the one copy every string points into
	if d.peek() != '{' {
		return d.errorf("want an object") // an empty body or null included
	}
	seen := false
	if err := d.object(func(name string) error {
		switch name {
		case "FailedRecordCount":
			n, err := d.int32()
			if err != nil || n == nil {
				return err
			}
			out.FailedRecordCount = n
		case "EncryptionType":
			v, _, err := d.str()
			out.EncryptionType = types.EncryptionType(v)
			return err
		case "Records":
			seen = true
			return d.records(out)
		default:
			return d.skip(0)
		}
		return nil
	}); err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.s) {
		return d.errorf("trailing data")
	}
	if !seen {
		return fmt.Errorf("%w: no Records array", ErrMalformedResponse)
	}
	return nil
}

type decoder struct {
	s string
	i int
	// arena holds the decoded strings that the entries point to, so that
	// a response costs one allocation for them, not one per string. A
	// pointer into an outgrown backing array stays valid.
	arena []string
}

// ptr returns a pointer to a copy of v in the arena.
func (d *decoder) ptr(v string) *string {
	d.arena = append(d.arena, v)
	return &d.arena[len(d.arena)-1]
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrMalformedResponse, d.i, fmt.Sprintf(format, args...))
}

// entryErrorf is errorf for the entry at index i of Records, which starts
// at byte at.
func entryErrorf(i, at int, format string, args ...any) error {
	return fmt.Errorf("%w: Records[%d] at byte %d: %s", ErrMalformedResponse, i, at, fmt.Sprintf(format, args...))
}

func (d *decoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.i == len(d.s) {
		return 0
	}
	return d.s[d.i]
}

func (d *decoder) expect(c byte) error {
	if d.peek() != c {
		return d.errorf("want %q", c)
	}
	d.i++
	return nil
}

// null consumes a null literal if one is next.
func (d *decoder) null() bool {
	if d.peek() == 'n' && len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "null" {
		d.i += 4
		return true
	}
	return false
}

// object calls member for each member name, positioned at its value.
func (d *decoder) object(member func(name string) error) error {
	if d.null() {
		return nil
	}
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		name, ok, err := d.str()
		if err != nil {
			return err
		}
		if !ok {
			return d.errorf("null member name")
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.errorf("want ',' or '}'")
		}
	}
}

// str decodes a string, or null (ok false). The result shares d.s unless
// the string has escapes.
func (d *decoder) str() (string, bool, error) {
	if d.null() {
		return "", false, nil
	}
	if err := d.expect('"'); err != nil {
		return "", false, err
	}
	start := d.i
	escaped, nonASCII := false, false
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			raw := d.s[start:d.i]
			d.i++
			if !escaped && (!nonASCII || utf8.ValidString(raw)) {
				return raw, true, nil
			}
			// Rare (error messages with quotes, invalid UTF-8): let
			// encoding/json unescape, and replace bad bytes with U+FFFD as
			// the SDK's decoder does.
			return d.unescape(d.s[start-1 : d.i])
		case c == '\\':
			escaped = true
			d.i += 2
		case c < 0x20:
			return "", false, d.errorf("control character in string")
		default:
			nonASCII = nonASCII || c >= 0x80
			d.i++
		}
	}
	return "", false, d.errorf("unterminated string")
}

// unescape decodes a quoted JSON string with encoding/json (kept out of
// str, where the address-taken result would be heap-allocated every call).
func (d *decoder) unescape(quoted string) (string, bool, error) {
	var v string
	if err := json.Unmarshal([]byte(quoted), &v); err != nil {
		return "", false, d.errorf("bad string: %v", err)
	}
	return v, true, nil
}

func (d *decoder) int32() (*int32, error) {
	if d.null() {
		return nil, nil
	}
	d.ws()
	start := d.i
	for d.i < len(d.s) && (d.s[d.i] == '-' || d.s[d.i] >= '0' && d.s[d.i] <= '9') {
		d.i++
	}
	n, err := strconv.ParseInt(d.s[start:d.i], 10, 32)
	if err != nil {
		return nil, d.errorf("bad integer %q", d.s[start:d.i])
	}
	v := int32(n)
	return &v, nil
}

// records decodes the Records array, and checks that each entry reports
// a success or a failure (see DecodePutRecordsOutput).
func (d *decoder) records(out *kinesis.PutRecordsOutput) error {
	if d.peek() != '[' {
		// null included: a 2xx response without entries acknowledges
		// nothing, and must not read as "no record failed".
		return d.errorf("Records: want an array")
	}
	// Count the entries first (each is one object) to allocate once.
	n := d.countObjects(d.i + 1)
	out.Records = make([]types.PutRecordsResultEntry, 0, n)
	d.arena = make([]string, 0, 2*n) // a sequence number and a shard id each
	return d.array(func() error {
		c := d.peek()
		i, at := len(out.Records), d.i
		if c != '{' {
			// Checked here, not left to object: null would read as {}.
			return entryErrorf(i, at, "want an object, not %s", kind(c))
		}
		var e types.PutRecordsResultEntry
		if err := d.object(func(name string) error {
			var dst **string
			switch name {
			case "SequenceNumber":
				dst = &e.SequenceNumber
			case "ShardId":
				dst = &e.ShardId
			case "ErrorCode":
				dst = &e.ErrorCode
			case "ErrorMessage":
				dst = &e.ErrorMessage
			default:
				return d.skip(0)
			}
			v, ok, err := d.str()
			if ok {
				*dst = d.ptr(v)
			}
			return err
		}); err != nil {
			return err
		}
		// An empty ErrorCode is no failure (callers test ErrorCode != ""),
		// so it needs a sequence number as much as a missing one does.
		if (e.ErrorCode == nil || *e.ErrorCode == "") && (e.SequenceNumber == nil || *e.SequenceNumber == "") {
			return entryErrorf(i, at, "neither a SequenceNumber nor an ErrorCode")
		}
		out.Records = append(out.Records, e)
		return nil
	})
}

// kind names the JSON value that starts with c, for error messages.
func kind(c byte) string {
	switch {
	case c == '"':
		return "a string"
	case c == '[':
		return "an array"
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	case c == 0:
		return "the end of the body"
	}
	return fmt.Sprintf("%q", c)
}

// array calls elem for each element of an array (or nothing for null),
// positioned at the element.
func (d *decoder) array(elem func() error) error {
	if d.null() {
		return nil
	}
	if err := d.expect('['); err != nil {
		return err
	}
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.errorf("want ',' or ']'")
		}
	}
}

// countObjects estimates the entries of the array whose elements start at
// from: the '{' at depth 0 of the array, ignoring strings. Only a capacity
// hint.
func (d *decoder) countObjects(from int) int {
	n, depth := 0, 0
	for i := from; i < len(d.s); i++ {
		switch d.s[i] {
		case '"':
			for i++; i < len(d.s) && d.s[i] != '"'; i++ {
				if d.s[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			if depth == 0 && d.s[i] == '{' {
				n++
			}
			depth++
		case '}':
			depth--
		case ']':
			if depth == 0 {
				return n
			}
			depth--
		}
	}
	return n
}

const maxDepth = 64

// skip skips one value of any kind.
func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	switch c := d.peek(); {
	case c == '"':
		_, _, err := d.str()
		return err
	case c == '{':
		return d.object(func(string) error { return d.skip(depth + 1) })
	case c == '[':
		return d.array(func() error { return d.skip(depth + 1) })
	default:
		// A number, true, false or null: up to the next delimiter.
		start := d.i
		for d.i < len(d.s) {
			switch d.s[d.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				goto done
			}
			d.i++
		}
	done:
		if d.i == start {
			return d.errorf("want a value")
		}
		var v any
		if err := json.Unmarshal([]byte(d.s[start:d.i]), &v); err != nil {
			return d.errorf("bad literal %q", d.s[start:d.i])
		}
		return nil
	}
}
