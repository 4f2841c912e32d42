package mapping

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Format is how a route turns a record into Kinesis data.
type Format uint8

const (
	// FormatRaw sends the Kafka value as it is; key, headers and offsets
	// are lost (Kinesis has no headers).
	FormatRaw Format = iota
	// FormatEnvelope sends one JSON object per record, shaped like a
	// record of AWS Lambda's Kafka event (see AppendEnvelope).
	FormatEnvelope
	// FormatCloudEvents sends a CloudEvents 1.0 event in structured JSON
	// mode (see Payload.Append).
	FormatCloudEvents
)

// ParseFormat parses a route's payload setting: raw (the default),
// envelope or cloudevents.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "raw":
		return FormatRaw, nil
	case "envelope":
		return FormatEnvelope, nil
	case "cloudevents":
		return FormatCloudEvents, nil
	}
	return 0, fmt.Errorf("unknown payload format %q (want raw, envelope or cloudevents)", s)
}

// String returns the setting that parses to f.
func (f Format) String() string {
	switch f {
	case FormatRaw:
		return "raw"
	case FormatEnvelope:
		return "envelope"
	case FormatCloudEvents:
		return "cloudevents"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// ValueMode is how an envelope carries the Kafka value.
type ValueMode uint8

const (
	// ValueAuto embeds a value that is valid JSON (and UTF-8) as JSON, so
	// consumers parse one document; anything else goes base64-encoded
	// under a separate name. JSON comes back minus the whitespace around
	// it, which JSON ignores; use ValueBase64 for the exact bytes.
	ValueAuto ValueMode = iota
	// ValueBase64 always base64-encodes the value.
	ValueBase64
	// ValueString embeds a valid UTF-8 value as a JSON string (text
	// formats, CSV); anything else goes base64-encoded.
	ValueString
)

// ParseValueMode parses an envelope's value setting: auto (the default),
// base64 or string.
func ParseValueMode(s string) (ValueMode, error) {
	switch s {
	case "", "auto":
		return ValueAuto, nil
	case "base64":
		return ValueBase64, nil
	case "string":
		return ValueString, nil
	}
	return 0, fmt.Errorf("unknown envelope value mode %q (want auto, base64 or string)", s)
}

// String returns the setting that parses to v.
func (v ValueMode) String() string {
	switch v {
	case ValueAuto:
		return "auto"
	case ValueBase64:
		return "base64"
	case ValueString:
		return "string"
	}
	return fmt.Sprintf("ValueMode(%d)", uint8(v))
}

// DefaultEventType is the CloudEvents type of a Kafka record.
const DefaultEventType = "ferry.kafka.record"

// Payload is a route's payload setting.
type Payload struct {
	Format Format
	// Value applies to FormatEnvelope and FormatCloudEvents.
	Value ValueMode
	// EventType is the CloudEvents "type" (DefaultEventType if empty).
	EventType string
	// SourcePrefix goes before the topic in the CloudEvents "source", e.g.
	// "kafka://prod-cluster/" (none if empty: the source is the topic).
	SourcePrefix string
}

// Validate checks a payload setting.
func (p *Payload) Validate() error {
	switch {
	case p.Format > FormatCloudEvents:
		return fmt.Errorf("unknown payload format %d", p.Format)
	case p.Value > ValueString:
		return fmt.Errorf("unknown envelope value mode %d", p.Value)
	case p.Format == FormatRaw && p.Value != ValueAuto:
		return fmt.Errorf("value %s needs payload envelope or cloudevents", p.Value)
	case p.Format != FormatCloudEvents && (p.EventType != "" || p.SourcePrefix != ""):
		return errors.New("event type and source prefix need payload cloudevents")
	case !utf8.ValidString(p.EventType) || !utf8.ValidString(p.SourcePrefix):
		return errors.New("event type and source prefix must be UTF-8")
	}
	return nil
}

// Append appends the Kinesis data for rec to dst, growing it at most once,
// to exactly the size the record needs: the output is the only allocation.
// FormatRaw appends the value.
//
// FormatEnvelope writes AppendEnvelope's object. FormatCloudEvents writes a
// structured-mode CloudEvents 1.0 JSON event, with these members in order:
//
//	"specversion":"1.0"
//	"id":"orders/3/42"                     topic/partition/offset: unique per record, so a
//	                                       consumer de-duplicates by (source, id) as the spec says
//	"source":"orders"                      SourcePrefix + topic
//	"type":"ferry.kafka.record"            EventType
//	"time":"2023-11-14T22:13:20.000Z"      the Kafka timestamp; absent without one
//	"partitionkey":"user-1"                the Kafka key, when it is non-empty UTF-8 (the
//	                                       spec's Kafka binding maps the key to this extension)
//	"datacontenttype":"application/json","data":{...}            auto mode, JSON values
//	"datacontenttype":"text/plain; charset=utf-8","data":"..."   string mode, UTF-8 values
//	"datacontenttype":"application/octet-stream","data_base64":"..."   anything else
//	"tombstone":true                       a tombstone, without data or datacontenttype
//
// Headers and binary keys are not carried: use FormatEnvelope for those.
func (p *Payload) Append(dst []byte, rec *Record) []byte {
	switch p.Format {
	case FormatEnvelope:
		pl := planEnvelope(rec, p.Value)
		return pl.appendEnvelope(grow(dst, pl.size), rec)
	case FormatCloudEvents:
		pl := planEvent(rec, p)
		return pl.appendEvent(grow(dst, pl.size), rec, p)
	}
	return append(dst, rec.Value...)
}

// grow is slices.Grow without its append(make) idiom, which the race
// detector's instrumentation turns into a second allocation.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	out := make([]byte, len(dst), len(dst)+n)
	copy(out, dst)
	return out
}

// Size is the length of what Append appends for rec, for limit checks
// before encoding.
func (p *Payload) Size(rec *Record) int {
	switch p.Format {
	case FormatEnvelope:
		return planEnvelope(rec, p.Value).size
	case FormatCloudEvents:
		return planEvent(rec, p).size
	}
	return len(rec.Value)
}

// AppendEnvelope appends rec to dst as one JSON object, with the value in
// ValueAuto mode. Fields come in this order, each always present unless
// noted:
//
//	"topic":"orders", "partition":3, "offset":42,
//	"timestamp":1700000000000              milliseconds since the epoch, as Kafka has it (-1: none)
//	"timestampType":"CREATE_TIME"          or "LOG_APPEND_TIME", "NO_TIMESTAMP_TYPE"
//	"key":"user-1"                         a valid UTF-8 key; "key":null for a null key
//	  or "keyBase64":"/w=="                any other key
//	"headers":[{"key":"trace","value":"abc"},{"key":"bin","valueBase64":"AAE="},{"key":"n","value":null}]
//	                                       in record order, repeats kept; a header name
//	                                       that is not UTF-8 goes as "keyBase64"
//	"value":{"id":1}                       JSON embedded (auto); "value":"text" (string mode)
//	  or "valueBase64":"..."               any other value
//	  or "value":null,"tombstone":true     a tombstone: "tombstone" appears only then
//
// The names follow the Lambda MSK event record (topic, partition, offset,
// timestamp, timestampType, key, headers, value), but unlike Lambda's a
// text key or value is not base64-encoded and headers are name/value
// objects rather than {"name":[byte values]}: a field named *Base64 is
// always base64 (standard, padded), any other is plain JSON, so a consumer
// never guesses. Decoding the object gives back the record exactly: key,
// headers and value byte for byte, null and empty kept apart (except the
// whitespace around a JSON value in auto mode).
//
// Delivery is at least once: a record can arrive twice, after a retried
// request or when a restart replays from the last commit. (topic,
// partition, offset) identifies a Kafka record, so a consumer de-duplicates
// by it: e.g. a conditional write or a seen-set with a TTL keyed by
// "topic/partition/offset" (the CloudEvents id). The records of one Kafka
// partition may spread over several shards, so don't assume offsets arrive
// in order across keys; and compaction and transactions leave gaps in the
// offsets, so a gap alone is not a loss.
func AppendEnvelope(dst []byte, rec *Record) []byte {
	p := Payload{Format: FormatEnvelope}
	return p.Append(dst, rec)
}

// Value and key kinds in an envelope.
const (
	kindNull   = iota // null (a null key, a tombstone)
	kindJSON          // embedded as JSON
	kindString        // a JSON string
	kindBase64        // a base64 string under the *Base64 name
)

// valuePlan is how one value is written, decided once for Size and Append.
type valuePlan struct {
	kind int
	v    []byte // the bytes to write: a JSON value without its whitespace
	size int    // the written size of the value alone
}

func planValue(v []byte, mode ValueMode) valuePlan {
	if v == nil {
		return valuePlan{kind: kindNull, size: len("null")}
	}
	switch mode {
	case ValueAuto:
		if t := trimJSONSpace(v); validJSON(t) && utf8.Valid(t) {
			return valuePlan{kind: kindJSON, v: t, size: len(t)}
		}
	case ValueString:
		if utf8.Valid(v) {
			return valuePlan{kind: kindString, v: v, size: quotedLen(v)}
		}
	}
	return valuePlan{kind: kindBase64, v: v, size: 2 + base64.StdEncoding.EncodedLen(len(v))}
}

// planText is planValue for a key or header value: text or base64.
func planText(v []byte) valuePlan {
	if v == nil {
		return valuePlan{kind: kindNull, size: len("null")}
	}
	if utf8.Valid(v) {
		return valuePlan{kind: kindString, v: v, size: quotedLen(v)}
	}
	return valuePlan{kind: kindBase64, v: v, size: 2 + base64.StdEncoding.EncodedLen(len(v))}
}

func (vp *valuePlan) append(dst []byte) []byte {
	switch vp.kind {
	case kindNull:
		return append(dst, "null"...)
	case kindJSON:
		return append(dst, vp.v...)
	case kindString:
		return appendQuoted(dst, vp.v)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, vp.v)
	return append(dst, '"')
}

// field returns the name of a value's field: name, or nameBase64.
func (vp *valuePlan) field(name, base64Name string) string {
	if vp.kind == kindBase64 {
		return base64Name
	}
	return name
}

func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

type envelopePlan struct {
	key, value valuePlan
	size       int
}

func planEnvelope(rec *Record, mode ValueMode) envelopePlan {
	pl := envelopePlan{key: planText(rec.Key), value: planValue(rec.Value, mode)}
	n := len(`{"topic":`) + quotedLen(rec.Topic) +
		len(`,"partition":`) + intLen(int64(rec.Partition)) +
		len(`,"offset":`) + intLen(rec.Offset) +
		len(`,"timestamp":`) + intLen(rec.Timestamp) +
		len(`,"timestampType":""`) + len(rec.TimestampType.String()) +
		len(`,"":`) + len(pl.key.field("key", "keyBase64")) + pl.key.size +
		len(`,"headers":[]`) +
		len(`,"":`) + len(pl.value.field("value", "valueBase64")) + pl.value.size +
		len(`}`)
	for i := range rec.Headers {
		h := &rec.Headers[i]
		if i > 0 {
			n++ // ,
		}
		v := planText(h.Value)
		n += len(`{`) + headerKeyLen(h.Key) + len(`,"":}`) + len(v.field("value", "valueBase64")) + v.size
	}
	if rec.Value == nil {
		n += len(`,"tombstone":true`)
	}
	pl.size = n
	return pl
}

func (pl *envelopePlan) appendEnvelope(dst []byte, rec *Record) []byte {
	dst = append(dst, `{"topic":`...)
	dst = appendQuoted(dst, rec.Topic)
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(rec.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, rec.Offset, 10)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, rec.Timestamp, 10)
	dst = append(dst, `,"timestampType":"`...)
	dst = append(dst, rec.TimestampType.String()...)
	dst = append(dst, `","`...)
	dst = append(dst, pl.key.field("key", "keyBase64")...)
	dst = append(dst, `":`...)
	dst = pl.key.append(dst)
	dst = append(dst, `,"headers":[`...)
	for i := range rec.Headers {
		h := &rec.Headers[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendHeaderKey(dst, h.Key)
		v := planText(h.Value)
		dst = append(dst, `,"`...)
		dst = append(dst, v.field("value", "valueBase64")...)
		dst = append(dst, `":`...)
		dst = v.append(dst)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"`...)
	dst = append(dst, pl.value.field("value", "valueBase64")...)
	dst = append(dst, `":`...)
	dst = pl.value.append(dst)
	if rec.Value == nil {
		dst = append(dst, `,"tombstone":true`...)
	}
	return append(dst, '}')
}

// A header name is a Go string, which may hold any bytes: one that is not
// UTF-8 goes base64-encoded under "keyBase64", so it too survives the trip.
// headerKeyLen is the length of appendHeaderKey's output.
func headerKeyLen(k string) int {
	if utf8.ValidString(k) {
		return len(`"key":`) + quotedLen(k)
	}
	return len(`"keyBase64":""`) + base64.StdEncoding.EncodedLen(len(k))
}

func appendHeaderKey(dst []byte, k string) []byte {
	if utf8.ValidString(k) {
		dst = append(dst, `{"key":`...)
		return appendQuoted(dst, k)
	}
	dst = append(dst, `{"keyBase64":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, []byte(k)) // rare: not UTF-8
	return append(dst, '"')
}

type eventPlan struct {
	data      valuePlan
	key       bool // the key goes in "partitionkey"
	time      bool
	size      int
	eventType string
}

func planEvent(rec *Record, p *Payload) eventPlan {
	pl := eventPlan{eventType: p.EventType}
	if pl.eventType == "" {
		pl.eventType = DefaultEventType
	}
	n := len(`{"specversion":"1.0","id":"/`) + quotedLen(rec.Topic) - 2 + len(`/`) +
		intLen(int64(rec.Partition)) + intLen(rec.Offset) +
		len(`","source":`) + quotedLen(p.SourcePrefix) - 1 + quotedLen(rec.Topic) - 1 +
		len(`,"type":`) + quotedLen(pl.eventType) + len(`}`)
	if rec.Timestamp >= 0 {
		if y := time.UnixMilli(rec.Timestamp).UTC().Year(); y <= 9999 {
			pl.time = true
			n += len(`,"time":"2006-01-02T15:04:05.000Z"`)
		}
	}
	if len(rec.Key) > 0 && utf8.Valid(rec.Key) {
		pl.key = true
		n += len(`,"partitionkey":`) + quotedLen(rec.Key)
	}
	if rec.Value == nil {
		n += len(`,"tombstone":true`)
	} else {
		pl.data = planValue(rec.Value, p.Value)
		n += len(`,"datacontenttype":"",`) + len(contentType(pl.data.kind)) +
			len(`"":`) + len(pl.data.field("data", "data_base64")) + pl.data.size
	}
	pl.size = n
	return pl
}

func contentType(kind int) string {
	switch kind {
	case kindJSON:
		return "application/json"
	case kindString:
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

func (pl *eventPlan) appendEvent(dst []byte, rec *Record, p *Payload) []byte {
	dst = append(dst, `{"specversion":"1.0","id":"`...)
	dst = appendEscaped(dst, rec.Topic)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(rec.Partition), 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, rec.Offset, 10)
	dst = append(dst, `","source":"`...)
	dst = appendEscaped(dst, p.SourcePrefix)
	dst = appendEscaped(dst, rec.Topic)
	dst = append(dst, `","type":`...)
	dst = appendQuoted(dst, pl.eventType)
	if pl.time {
		dst = append(dst, `,"time":"`...)
		dst = time.UnixMilli(rec.Timestamp).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
		dst = append(dst, '"')
	}
	if pl.key {
		dst = append(dst, `,"partitionkey":`...)
		dst = appendQuoted(dst, rec.Key)
	}
	if rec.Value == nil {
		dst = append(dst, `,"tombstone":true`...)
	} else {
		dst = append(dst, `,"datacontenttype":"`...)
		dst = append(dst, contentType(pl.data.kind)...)
		dst = append(dst, `","`...)
		dst = append(dst, pl.data.field("data", "data_base64")...)
		dst = append(dst, `":`...)
		dst = pl.data.append(dst)
	}
	return append(dst, '}')
}

// escLen is the escaped length of each byte in a JSON string: 1, 2 for the
// short escapes, 6 for \u00XX. Bytes of 0x80 and above count 1 here; the
// string functions handle invalid UTF-8 themselves.
var escLen = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			t[c] = 2
		case c < 0x20:
			t[c] = 6
		default:
			t[c] = 1
		}
	}
	return t
}()

// quotedLen is the length of appendQuoted's output.
func quotedLen[S ~string | ~[]byte](s S) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			n += int(escLen[c])
			i++
			continue
		}
		size := runeSize(s[i:])
		if size == 0 {
			n += len(`\ufffd`)
			i++
			continue
		}
		n += size
		i += size
	}
	return n
}

// appendQuoted appends s as a JSON string. Valid UTF-8 is copied; each byte
// of invalid UTF-8 (possible only in a topic name, which Kafka keeps ASCII)
// becomes \ufffd, as encoding/json writes it.
func appendQuoted[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

func appendEscaped[S ~string | ~[]byte](dst []byte, s S) []byte {
	const hexDigits = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if escLen[c] == 1 {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			start = i
			continue
		}
		size := runeSize(s[i:])
		if size == 0 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// runeSize is the length of the valid UTF-8 sequence at the start of s, or
// 0 if there is none.
func runeSize[S ~string | ~[]byte](s S) int {
	var b [utf8.UTFMax]byte
	n := copy(b[:], s[:min(len(s), utf8.UTFMax)])
	r, size := utf8.DecodeRune(b[:n])
	if r == utf8.RuneError && size <= 1 {
		return 0
	}
	return size
}

// intLen is the number of characters of n in decimal.
func intLen(n int64) int {
	if n < 0 {
		if n == -1<<63 {
			return 20
		}
		return 1 + intLen(-n)
	}
	l := 1
	for n >= 10 {
		n /= 10
		l++
	}
	return l
}
