package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var sampleRecord = Record{
	Topic: "orders", Partition: 3, Offset: 42, Timestamp: 1700000000123, TimestampType: TimestampLogAppendTime,
	Key:   []byte("user-1"),
	Value: []byte(` {"id":1,"note":"a\"b"}` + "\n"),
	Headers: []Header{
		{Key: "trace", Value: []byte("abc")},
		{Key: "bin", Value: []byte{0x00, 0xff}},
		{Key: "n"},
		{Key: "trace", Value: []byte("dup\t")},
	},
}

func TestAppendEnvelopeShape(t *testing.T) {
	t.Parallel()
	got := string(AppendEnvelope(nil, &sampleRecord))
	want := `{"topic":"orders","partition":3,"offset":42,"timestamp":1700000000123,"timestampType":"LOG_APPEND_TIME",` +
		`"key":"user-1","headers":[{"key":"trace","value":"abc"},{"key":"bin","valueBase64":"AP8="},{"key":"n","value":null},` +
		`{"key":"trace","value":"dup\t"}],"value":{"id":1,"note":"a\"b"}}`
	if got != want {
		t.Fatalf("envelope:\n got %s\nwant %s", got, want)
	}
	tomb := Record{Topic: "t", Key: []byte{0xfe}, Timestamp: -1, TimestampType: TimestampNone}
	got = string(AppendEnvelope(nil, &tomb))
	want = `{"topic":"t","partition":0,"offset":0,"timestamp":-1,"timestampType":"NO_TIMESTAMP_TYPE",` +
		`"keyBase64":"/g==","headers":[],"value":null,"tombstone":true}`
	if got != want {
		t.Fatalf("tombstone:\n got %s\nwant %s", got, want)
	}
}

func TestEnvelopeValueModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		mode  ValueMode
		value []byte
		want  string
	}{
		{name: "auto json", mode: ValueAuto, value: []byte(`[1, 2]`), want: `"value":[1, 2]}`},
		{name: "auto json string", mode: ValueAuto, value: []byte(`"x"`), want: `"value":"x"}`},
		{name: "auto json null is not a tombstone", mode: ValueAuto, value: []byte(`null`), want: `"value":null}`},
		{name: "auto text", mode: ValueAuto, value: []byte(`hello`), want: `"valueBase64":"aGVsbG8="}`},
		{name: "auto json with invalid utf-8", mode: ValueAuto, value: []byte("\"\xff\""), want: `"valueBase64":"Iv8i"}`},
		{name: "auto empty", mode: ValueAuto, value: []byte{}, want: `"valueBase64":""}`},
		{name: "string", mode: ValueString, value: []byte("héllo\n\x01"), want: `"value":"héllo\n\u0001"}`},
		{name: "string binary", mode: ValueString, value: []byte{0xff}, want: `"valueBase64":"/w=="}`},
		{name: "string empty", mode: ValueString, value: []byte{}, want: `"value":""}`},
		{name: "base64 json", mode: ValueBase64, value: []byte(`{}`), want: `"valueBase64":"e30="}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Payload{Format: FormatEnvelope, Value: tc.mode}
			rec := &Record{Topic: "t", Value: tc.value}
			got := p.Append(nil, rec)
			if !strings.HasSuffix(string(got), `"headers":[],`+tc.want) {
				t.Fatalf("envelope %s, want it to end in %s", got, tc.want)
			}
			if len(got) != p.Size(rec) {
				t.Fatalf("Size = %d, output is %d bytes", p.Size(rec), len(got))
			}
		})
	}
}

// TestEnvelopeRoundTrip decodes envelopes with encoding/json and gets the
// records back: binary keys and values, headers in order with repeats and
// nulls, null and empty kept apart, tombstones.
func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	recs := map[string]Record{
		"sample":           sampleRecord,
		"binary key":       {Topic: "t", Key: []byte{0xff, 0x00, 'k'}, Value: []byte{0x80, 0x81}},
		"empty key":        {Topic: "t", Key: []byte{}, Value: []byte(`1`)},
		"tombstone":        {Topic: "t", Key: []byte("k"), Headers: []Header{{Key: "h", Value: []byte{}}}},
		"binary header":    {Topic: "t", Value: []byte(`"s"`), Headers: []Header{{Key: "\xffbad-name", Value: []byte{0xc3}}}},
		"escapes":          {Topic: "t", Key: []byte("\"\\\u2028\x7f\x00"), Value: []byte("text \"quoted\"\r\n")},
		"negative numbers": {Topic: "t", Partition: -1, Offset: -2, Timestamp: -1 << 63, Value: []byte{}},
	}
	for name, rec := range recs {
		for _, mode := range []ValueMode{ValueAuto, ValueBase64, ValueString} {
			t.Run(fmt.Sprintf("%s/%s", name, mode), func(t *testing.T) {
				t.Parallel()
				checkEnvelopeRoundTrip(t, &rec, mode)
			})
		}
	}
}

func checkEnvelopeRoundTrip(t *testing.T, rec *Record, mode ValueMode) {
	t.Helper()
	p := Payload{Format: FormatEnvelope, Value: mode}
	out := p.Append([]byte("prefix"), rec)
	if !bytes.HasPrefix(out, []byte("prefix")) {
		t.Fatal("Append overwrote dst")
	}
	out = out[len("prefix"):]
	if len(out) != p.Size(rec) {
		t.Fatalf("Size = %d, output is %d bytes: %s", p.Size(rec), len(out), out)
	}
	got, err := decodeEnvelope(out, mode)
	if err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	want := *rec
	if mode == ValueAuto && want.Value != nil {
		if t := trimJSONSpace(want.Value); json.Valid(t) && utf8.Valid(t) {
			want.Value = t // JSON comes back without the whitespace around it
		}
	}
	if len(want.Headers) == 0 {
		want.Headers = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip of %s:\n got %#v\nwant %#v", out, got, want)
	}
}

// decodeEnvelope is a consumer's decoder, by the documented shape.
func decodeEnvelope(data []byte, mode ValueMode) (Record, error) {
	var e struct {
		Topic         string
		Partition     int32
		Offset        int64
		Timestamp     int64
		TimestampType string
		Key           json.RawMessage // a pointer would decode null as nil
		KeyBase64     []byte
		Headers       []map[string]json.RawMessage
		Value         json.RawMessage
		ValueBase64   []byte
		Tombstone     bool
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Record{}, err
	}
	rec := Record{Topic: e.Topic, Partition: e.Partition, Offset: e.Offset, Timestamp: e.Timestamp}
	switch e.TimestampType {
	case "CREATE_TIME":
		rec.TimestampType = TimestampCreateTime
	case "LOG_APPEND_TIME":
		rec.TimestampType = TimestampLogAppendTime
	default:
		rec.TimestampType = TimestampNone
	}
	var err error
	if rec.Key, err = textOrBase64(e.Key, e.KeyBase64); err != nil {
		return Record{}, err
	}
	for _, h := range e.Headers {
		var hd Header
		var k []byte
		if raw, ok := h["key"]; ok {
			k, err = textOrBase64(raw, nil)
		} else {
			err = json.Unmarshal(h["keyBase64"], &k)
		}
		if err != nil {
			return Record{}, err
		}
		hd.Key = string(k)
		if raw, ok := h["value"]; ok {
			hd.Value, err = textOrBase64(raw, nil)
		} else {
			err = json.Unmarshal(h["valueBase64"], &hd.Value)
		}
		if err != nil {
			return Record{}, err
		}
		rec.Headers = append(rec.Headers, hd)
	}
	switch {
	case e.Tombstone:
		if string(e.Value) != "null" {
			return Record{}, fmt.Errorf("tombstone with value %s", e.Value)
		}
	case e.Value != nil && mode == ValueAuto:
		rec.Value = []byte(e.Value)
	case e.Value != nil:
		rec.Value, err = textOrBase64(e.Value, nil)
	default:
		rec.Value = e.ValueBase64
		if rec.Value == nil {
			rec.Value = []byte{}
		}
	}
	return rec, err
}

// textOrBase64 decodes a JSON string (or null) field, or else takes the
// decoded base64 one.
func textOrBase64(text json.RawMessage, b64 []byte) ([]byte, error) {
	if text == nil {
		if b64 == nil {
			return []byte{}, nil // "keyBase64":"" decodes to nil
		}
		return b64, nil
	}
	if string(text) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(text, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

func TestCloudEvents(t *testing.T) {
	t.Parallel()
	p := Payload{Format: FormatCloudEvents}
	got := string(p.Append(nil, &sampleRecord))
	want := `{"specversion":"1.0","id":"orders/3/42","source":"orders","type":"ferry.kafka.record",` +
		`"time":"2023-11-14T22:13:20.123Z","partitionkey":"user-1","datacontenttype":"application/json","data":{"id":1,"note":"a\"b"}}`
	if got != want {
		t.Fatalf("event:\n got %s\nwant %s", got, want)
	}
	p = Payload{Format: FormatCloudEvents, Value: ValueString, EventType: "com.example.order", SourcePrefix: "kafka://prod/"}
	rec := Record{Topic: "t", Partition: 1, Offset: 2, Timestamp: -1, Key: []byte{0xff}, Value: []byte("plain")}
	got = string(p.Append(nil, &rec))
	want = `{"specversion":"1.0","id":"t/1/2","source":"kafka://prod/t","type":"com.example.order",` +
		`"datacontenttype":"text/plain; charset=utf-8","data":"plain"}`
	if got != want {
		t.Fatalf("event:\n got %s\nwant %s", got, want)
	}
	tomb := Record{Topic: "t", Timestamp: 253402300800000} // year 10000: no RFC 3339 time
	got = string(p.Append(nil, &tomb))
	want = `{"specversion":"1.0","id":"t/0/0","source":"kafka://prod/t","type":"com.example.order","tombstone":true}`
	if got != want {
		t.Fatalf("tombstone:\n got %s\nwant %s", got, want)
	}
}

// checkCloudEvent decodes an event as a CloudEvents consumer would and
// compares it with the record.
func checkCloudEvent(t *testing.T, p *Payload, rec *Record) {
	t.Helper()
	out := p.Append(nil, rec)
	if len(out) != p.Size(rec) {
		t.Fatalf("Size = %d, output is %d bytes: %s", p.Size(rec), len(out), out)
	}
	var ev struct {
		SpecVersion     string           `json:"specversion"`
		ID              string           `json:"id"`
		Source          string           `json:"source"`
		Type            string           `json:"type"`
		Time            *time.Time       `json:"time"`
		PartitionKey    *string          `json:"partitionkey"`
		DataContentType string           `json:"datacontenttype"`
		Data            *json.RawMessage `json:"data"`
		DataBase64      []byte           `json:"data_base64"`
		Tombstone       bool             `json:"tombstone"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
	if !utf8.ValidString(rec.Topic) {
		return // the topic came back with U+FFFD: nothing more to compare
	}
	if ev.SpecVersion != "1.0" || ev.ID != fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset) ||
		ev.Source != p.SourcePrefix+rec.Topic || ev.Type == "" {
		t.Fatalf("attributes of %s", out)
	}
	if ev.Time != nil && ev.Time.UnixMilli() != rec.Timestamp {
		t.Fatalf("time %v, want %d ms", ev.Time, rec.Timestamp)
	}
	if (ev.PartitionKey != nil) != (len(rec.Key) > 0 && utf8.Valid(rec.Key)) ||
		(ev.PartitionKey != nil && *ev.PartitionKey != string(rec.Key)) {
		t.Fatalf("partitionkey of %s", out)
	}
	var data []byte
	switch {
	case ev.Tombstone:
		if rec.Value != nil || ev.Data != nil || ev.DataBase64 != nil || ev.DataContentType != "" {
			t.Fatalf("tombstone %s", out)
		}
		return
	case ev.DataContentType == "application/json":
		data = []byte(*ev.Data)
		if !bytes.Equal(data, trimJSONSpace(rec.Value)) {
			t.Fatalf("data %s", data)
		}
		return
	case ev.DataContentType == "text/plain; charset=utf-8":
		var s string
		if err := json.Unmarshal(*ev.Data, &s); err != nil {
			t.Fatal(err)
		}
		data = []byte(s)
	case ev.DataContentType == "application/octet-stream" && ev.Data == nil:
		data = ev.DataBase64
	default:
		t.Fatalf("content type %q in %s", ev.DataContentType, out)
	}
	if !bytes.Equal(data, rec.Value) {
		t.Fatalf("data %q, want %q", data, rec.Value)
	}
}

func TestCloudEventsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, mode := range []ValueMode{ValueAuto, ValueBase64, ValueString} {
		p := &Payload{Format: FormatCloudEvents, Value: mode}
		for _, rec := range []Record{sampleRecord, {Topic: "t\"", Value: []byte{0xff}}, {Topic: "t", Value: []byte{}}, {Topic: "t"}} {
			checkCloudEvent(t, p, &rec)
		}
	}
}

func TestPayloadAppendAllocatesOnlyTheOutput(t *testing.T) {
	for _, p := range []Payload{{Format: FormatEnvelope}, {Format: FormatEnvelope, Value: ValueString}, {Format: FormatCloudEvents}} {
		buf := make([]byte, 0, 4096)
		if n := testing.AllocsPerRun(100, func() { buf = p.Append(buf[:0], &sampleRecord) }); n != 0 {
			t.Errorf("%s: %v allocations into a big enough buffer, want 0", p.Format, n)
		}
		if n := testing.AllocsPerRun(100, func() { p.Append(nil, &sampleRecord) }); n != 1 {
			t.Errorf("%s: %v allocations into nil, want 1 (the output)", p.Format, n)
		}
		if out := p.Append(nil, &sampleRecord); cap(out) > len(out)+len(out)/8 {
			t.Errorf("%s: output of %d bytes in a buffer of %d", p.Format, len(out), cap(out))
		}
	}
}

func TestParsePayloadSettings(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]Format{"": FormatRaw, "raw": FormatRaw, "envelope": FormatEnvelope, "cloudevents": FormatCloudEvents} {
		if f, err := ParseFormat(s); err != nil || f != want || (s != "" && f.String() != s) {
			t.Errorf("ParseFormat(%q) = %v, %v", s, f, err)
		}
	}
	for s, want := range map[string]ValueMode{"": ValueAuto, "auto": ValueAuto, "base64": ValueBase64, "string": ValueString} {
		if v, err := ParseValueMode(s); err != nil || v != want || (s != "" && v.String() != s) {
			t.Errorf("ParseValueMode(%q) = %v, %v", s, v, err)
		}
	}
	if _, err := ParseFormat("json"); err == nil {
		t.Error("ParseFormat(json) succeeded")
	}
	if _, err := ParseValueMode("hex"); err == nil {
		t.Error("ParseValueMode(hex) succeeded")
	}
	for _, p := range []Payload{
		{Format: FormatRaw, Value: ValueBase64}, {Format: FormatEnvelope, EventType: "x"}, {Format: 9}, {Value: 9},
		{Format: FormatCloudEvents, SourcePrefix: "\xff"},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) succeeded", p)
		}
	}
}

// FuzzEnvelope encodes arbitrary records in every format and value mode:
// the output is valid JSON of exactly Size bytes, and decodes back to the
// record.
func FuzzEnvelope(f *testing.F) {
	f.Add("orders", []byte("k"), []byte(`{"a":1}`), "h", []byte("v"), int64(42), uint8(0))
	f.Add("t", []byte{0xff}, []byte{0x00, 0x01}, "\xfe", []byte{0xc3}, int64(-1), uint8(7))
	f.Add("t\"\\\n", []byte("\u2028"), []byte(" \"x\"\t"), "", []byte{}, int64(1)<<62, uint8(2))
	f.Fuzz(func(t *testing.T, topic string, key, value []byte, hk string, hv []byte, ts int64, flags uint8) {
		rec := Record{Topic: topic, Partition: int32(ts), Offset: ts >> 3, Timestamp: ts, Key: key, Value: value,
			TimestampType: TimestampType(int8(flags>>4)%3 - 1),
			Headers:       []Header{{Key: hk, Value: hv}, {Key: "second", Value: key}}}
		if flags&1 != 0 {
			rec.Key = nil
		}
		if flags&2 != 0 {
			rec.Value = nil
		}
		if flags&4 != 0 {
			rec.Headers[0].Value = nil
		}
		if flags&8 != 0 {
			rec.Headers = nil
		}
		for _, mode := range []ValueMode{ValueAuto, ValueBase64, ValueString} {
			p := &Payload{Format: FormatEnvelope, Value: mode}
			out := p.Append(nil, &rec)
			if !json.Valid(out) || len(out) != p.Size(&rec) {
				t.Fatalf("envelope %q: valid %v, %d bytes, Size %d", out, json.Valid(out), len(out), p.Size(&rec))
			}
			if utf8.ValidString(topic) {
				checkEnvelopeRoundTrip(t, &rec, mode)
			}
			checkCloudEvent(t, &Payload{Format: FormatCloudEvents, Value: mode, SourcePrefix: "kafka:"}, &rec)
		}
	})
}

func TestAppendQuotedMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "\x00\x1f\"\\/\b\f\n\r\t", "é😀", "\xff", "a\xe2\x82", "\u2028<>&"} {
		got := string(appendQuoted(nil, s))
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Fatalf("%q: %v", got, err)
		}
		want, _ := json.Marshal(s) // encoding/json turns invalid UTF-8 into U+FFFD too
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack || quotedLen(s) != len(got) || quotedLen([]byte(s)) != len(got) {
			t.Fatalf("appendQuoted(%q) = %s (%d by quotedLen), decodes to %q, want %q", s, got, quotedLen(s), back, wantBack)
		}
	}
}
