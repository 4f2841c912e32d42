package connector

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/mapping"
)

const testAvroSchema = `{"type":"record","name":"Order","namespace":"shop","fields":[
	{"name":"id","type":"long"},
	{"name":"email","type":["null","string"],"default":null},
	{"name":"qty","type":["int","string"]},
	{"name":"raw","type":"bytes"},
	{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
	{"name":"tags","type":{"type":"array","items":"string"}},
	{"name":"big","type":"long"},
	{"name":"note","type":"string"}]}`

const testProtoSchema = `syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
message Other { string x = 1; }
message Order {
  int64 order_id = 1;
  string email = 2;
  repeated string tags = 3;
  Line line = 4;
  google.protobuf.Timestamp at = 5;
  message Line { string sku = 1; int32 qty = 2; }
}`

func avroValue(t testing.TB, id uint32, schema string, native map[string]any) []byte {
	t.Helper()
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := codec.BinaryFromNative(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	return mapping.AppendWireFormat(nil, id, bin)
}

func testOrder(id int64, email any) map[string]any {
	return map[string]any{
		"id": id, "email": email, "qty": goavro.Union("int", int32(3)), "raw": []byte{0, 'a', 0xff},
		"at": time.UnixMilli(1700000000123).UTC(), "status": "PAID", "tags": []any{"x", "y"},
		"big": int64(1<<62 + 1), "note": "<tag> & café",
	}
}

// protoValue frames a message of the test schema at index path idx, filled by set.
func protoValue(t testing.TB, id uint32, idx []int, set func(protoreflect.MessageDescriptor, *dynamicpb.Message)) []byte {
	t.Helper()
	ps, err := compileProto(sr.Schema{Schema: testProtoSchema, Type: sr.TypeProtobuf}, nil)
	if err != nil {
		t.Fatal(err)
	}
	md, err := ps.message(idx)
	if err != nil {
		t.Fatal(err)
	}
	msg := dynamicpb.NewMessage(md)
	set(md, msg)
	bin, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return append(mapping.AppendMessageIndexes(mapping.AppendWireFormat(nil, id, nil), idx), bin...)
}

// seededDecoder has its schemas cached already, as prefetch leaves them, so
// these tests exercise decoding alone; the registry itself is exercised by
// integration/schema_registry_test.go against a real one.
func seededDecoder(t testing.TB, schemas map[uint32]sr.Schema, unknown ...uint32) *decoder {
	t.Helper()
	d := newDecoderWith(nil, "http://registry.invalid", time.Second, quietLogger(), nil)
	for id, s := range schemas {
		d.schemas[id] = compileSchema(id, s, nil)
	}
	for _, id := range unknown {
		d.schemas[id] = &valueSchema{err: badValue(reasonUnknownSchema, "schema id %d is not in the registry", id)}
	}
	return d
}

func TestDecodeValues(t *testing.T) {
	t.Parallel()
	d := seededDecoder(t, map[uint32]sr.Schema{
		1: {Schema: testAvroSchema},
		2: {Schema: `{"type":"object"}`, Type: sr.TypeJSON},
		3: {Schema: testProtoSchema, Type: sr.TypeProtobuf},
	})
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"not framed passes", []byte(`{"a":1}`), `{"a":1}`},
		{"short passes", []byte{0, 0, 0, 1}, "\x00\x00\x00\x01"},
		{
			// Keys sorted, the union bare, bytes as code points (U+00FF for
			// 0xff), non-ASCII escaped, the timestamp as milliseconds, a
			// long above 2^53 exact, no HTML escaping.
			"avro", avroValue(t, 1, testAvroSchema, testOrder(42, goavro.Union("string", "a@b.c"))),
			`{"at":1700000000123,"big":4611686018427387905,"email":"a@b.c","id":42,"note":"<tag> & caf\u00E9",` +
				`"qty":3,"raw":"\u0000a\u00FF","status":"PAID","tags":["x","y"]}`,
		},
		{
			"avro null union", avroValue(t, 1, testAvroSchema, testOrder(7, nil)),
			`{"at":1700000000123,"big":4611686018427387905,"email":null,"id":7,"note":"<tag> & caf\u00E9",` +
				`"qty":3,"raw":"\u0000a\u00FF","status":"PAID","tags":["x","y"]}`,
		},
		{"json schema", mapping.AppendWireFormat(nil, 2, []byte(`{"id": 5}`)), `{"id": 5}`},
		{
			"protobuf nested message", protoValue(t, 3, []int{1}, func(md protoreflect.MessageDescriptor, m *dynamicpb.Message) {
				m.Set(md.Fields().ByName("order_id"), protoreflect.ValueOfInt64(9))
				m.Set(md.Fields().ByName("email"), protoreflect.ValueOfString("a@b.c"))
				line := m.Mutable(md.Fields().ByName("line")).Message()
				line.Set(line.Descriptor().Fields().ByName("sku"), protoreflect.ValueOfString("S1"))
				line.Set(line.Descriptor().Fields().ByName("qty"), protoreflect.ValueOfInt32(2))
				at := m.Mutable(md.Fields().ByName("at")).Message()
				at.Set(at.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(1700000000))
			}),
			`{"order_id":"9","email":"a@b.c","line":{"sku":"S1","qty":2},"at":"2023-11-14T22:13:20Z"}`,
		},
		{
			"protobuf first message shorthand", protoValue(t, 3, []int{0}, func(md protoreflect.MessageDescriptor, m *dynamicpb.Message) {
				m.Set(md.Fields().ByName("x"), protoreflect.ValueOfString("y"))
			}),
			`{"x":"y"}`,
		},
		{
			"protobuf index into a nested message", protoValue(t, 3, []int{1, 0}, func(md protoreflect.MessageDescriptor, m *dynamicpb.Message) {
				m.Set(md.Fields().ByName("sku"), protoreflect.ValueOfString("S2"))
			}),
			`{"sku":"S2"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.decode(tc.in)
			if err != nil || string(got) != tc.want {
				t.Fatalf("decode = %s, %v\n want %s", got, err, tc.want)
			}
			// The same record gives the same bytes every time.
			again, _ := d.decode(tc.in)
			if string(again) != tc.want {
				t.Fatalf("second decode = %s", again)
			}
		})
	}
}

func TestDecodeBadValues(t *testing.T) {
	t.Parallel()
	d := seededDecoder(t, map[uint32]sr.Schema{
		1: {Schema: testAvroSchema},
		2: {Schema: `{"type":"object"}`, Type: sr.TypeJSON},
		3: {Schema: testProtoSchema, Type: sr.TypeProtobuf},
		4: {Schema: `{"type":"record","name":"R","fields":[{"name":"x","type":"Missing"}]}`},
		5: {Schema: `{"type":"record","name":"R","fields":[{"name":"x","type":"other.R"}]}`,
			References: []sr.SchemaReference{{Name: "other.R", Subject: "other", Version: 1}}},
		6: {Schema: `message {`, Type: sr.TypeProtobuf},
		7: {Schema: `x`, Type: sr.SchemaType(9)},
	}, 99)
	good := avroValue(t, 1, testAvroSchema, testOrder(1, nil))
	tests := []struct {
		name, reason, msg string
		in                []byte
	}{
		{"unknown id", reasonUnknownSchema, "schema id 99 is not in the registry", mapping.AppendWireFormat(nil, 99, []byte("x"))},
		{"avro truncated", reasonCorrupt, "does not match schema id 1", good[:len(good)-3]},
		{"avro trailing bytes", reasonCorrupt, "2 bytes past the end", append(slices.Clone(good), 1, 2)},
		{"json not json", reasonCorrupt, "not JSON", mapping.AppendWireFormat(nil, 2, []byte(`{"id":`))},
		{"protobuf no indexes", reasonCorrupt, "message indexes", mapping.AppendWireFormat(nil, 3, nil)},
		{"protobuf index out of range", reasonCorrupt, "no message 5", mapping.AppendWireFormat(nil, 3, []byte{2, 10})},
		{"protobuf bad wire data", reasonCorrupt, "does not match message shop.Order", mapping.AppendWireFormat(nil, 3, []byte{2, 2, 0xff, 0xff})},
		{"avro schema rejected", reasonUnsupportedSchema, "avro schema id 4", mapping.AppendWireFormat(nil, 4, nil)},
		{"avro reference not fetched", reasonUnsupportedSchema, `reference "other.R" (subject other version 1) was not fetched`, mapping.AppendWireFormat(nil, 5, nil)},
		{"protobuf schema rejected", reasonUnsupportedSchema, "protobuf schema id 6", mapping.AppendWireFormat(nil, 6, nil)},
		{"unknown schema type", reasonUnsupportedSchema, "which ferry does not decode", mapping.AppendWireFormat(nil, 7, nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.decode(tc.in)
			var de *decodeError
			if !errors.As(err, &de) || de.reason != tc.reason || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("decode = %v; want a %s error containing %q", err, tc.reason, tc.msg)
			}
		})
	}
}

// registryFunc answers SchemaByID with fn: a stand-in for the registry's
// failures, to test the retry policy; the answers of a real registry are
// checked by the integration test.
type registryFunc func(ctx context.Context, id int) (sr.Schema, error)

func (f registryFunc) SchemaByID(ctx context.Context, id int) (sr.Schema, error) { return f(ctx, id) }

func (registryFunc) SchemaByVersion(context.Context, string, int) (sr.SubjectSchema, error) {
	return sr.SubjectSchema{}, errors.New("no subjects")
}

func TestResolveRetriesUntilTimeout(t *testing.T) {
	t.Parallel()
	down := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	notFoundErr := &sr.ResponseError{StatusCode: http.StatusNotFound, ErrorCode: 40403, Message: "Schema not found"}
	wrongPath := &sr.ResponseError{StatusCode: http.StatusNotFound, Message: "RESTEASY003210: Could not find resource"}
	tests := []struct {
		name     string
		fails    int   // answers of err before the schema
		err      error // what the failing answers are
		wantErr  string
		wantCall int
		reason   string // cached error reason, "" for a usable schema
	}{
		{"ok at once", 0, nil, "", 1, ""},
		{"down then up", 3, down, "", 4, ""},
		{"not found is final", 100, notFoundErr, "", 1, reasonUnknownSchema},
		{"down for good", 100, down, "failed for 10s (decode.registry.timeout): dial tcp", 6, ""},
		{"bare 404 is the registry failing", 100, wrongPath, "Could not find resource", 6, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				reg := registryFunc(func(ctx context.Context, id int) (sr.Schema, error) {
					if calls.Add(1) <= int32(tc.fails) {
						return sr.Schema{}, tc.err
					}
					return sr.Schema{Schema: `{"type":"string"}`}, nil
				})
				m := newDecodeMetrics(nil)
				d := newDecoderWith(reg, "http://registry:8081", 10*time.Second, quietLogger(), m)
				// Waits of 0.2, 0.4, 0.8, 1.6 and 3.2 s end at 6.2 s; the next, 5 s,
				// would pass the 10 s: six calls.
				start := time.Now()
				err := d.prefetchValue(t.Context(), mapping.AppendWireFormat(nil, 7, []byte{2, 'a'}))
				if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrFatal)) {
					t.Fatalf("prefetch = %v; want %q", err, tc.wantErr)
				}
				if got := int(calls.Load()); got != tc.wantCall {
					t.Fatalf("%d registry calls, want %d", got, tc.wantCall)
				}
				if tc.wantErr != "" {
					if took := time.Since(start); took > 10*time.Second {
						t.Fatalf("gave up after %s, past decode.registry.timeout", took)
					}
					return
				}
				if s := d.schemas[7]; tc.reason == "" && s.err != nil || tc.reason != "" && (s.err == nil || s.err.reason != tc.reason) {
					t.Fatalf("cached %+v, want reason %q", s, tc.reason)
				}
				// Cached: a second value of the id asks nothing.
				if err := d.prefetchValue(t.Context(), mapping.AppendWireFormat(nil, 7, nil)); err != nil || int(calls.Load()) != tc.wantCall {
					t.Fatalf("second prefetch = %v after %d calls", err, calls.Load())
				}
			})
		})
	}
}

func TestResolveStopsWithContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		reg := registryFunc(func(context.Context, int) (sr.Schema, error) { return sr.Schema{}, errors.New("503") })
		d := newDecoderWith(reg, "http://registry:8081", time.Hour, quietLogger(), nil)
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		err := d.prefetchValue(ctx, mapping.AppendWireFormat(nil, 1, nil))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("prefetch = %v, want the context's error", err)
		}
	})
}

// A value that cannot be decoded follows delivery.on_invalid in the running
// connector: skip and dlq pass it (dlq with the original bytes and a
// decode_failed class) and deliver the rest decoded; fail stops ferry
// naming the record. The schemas are cached before Run, so no registry is
// involved.
func TestUndecodableValuePolicies(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"fail", "skip", "dlq"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			topic := "decode-" + policy
			brokers := startCluster(t, topic, 1)
			cl := producer(t, brokers, topic, policy == "dlq")
			bad := mapping.AppendWireFormat(nil, 99, []byte("?"))
			recs := []*kgo.Record{
				{Key: []byte("k"), Value: avroValue(t, 1, testAvroSchema, testOrder(1, nil))},
				{Key: []byte("k"), Value: bad},
				{Key: []byte("k"), Value: []byte(`{"id":3}`)}, // not framed: passes as is
				{Key: []byte("k"), Value: avroValue(t, 1, testAvroSchema, testOrder(4, goavro.Union("string", "x")))},
			}
			if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			kin := newFakeKinesis()
			cfg := testConfig(brokers, topic)
			cfg.Routes[0].PartitionKey = "json:/id"
			cfg.Decode = config.Decode{Value: config.DecodeAuto, Registry: config.Registry{URL: "http://127.0.0.1:1", Timeout: time.Second}}
			cfg.Delivery.OnInvalid = policy
			cfg.Delivery.DLQTopic = topic + "-dlq"
			c, err := New(cfg, kin, WithLogger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			c.dec.schemas[1] = compileSchema(1, sr.Schema{Schema: testAvroSchema}, nil)
			c.dec.schemas[99] = &valueSchema{err: badValue(reasonUnknownSchema, "schema id 99 is not in the registry")}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			if policy == "fail" {
				select {
				case err := <-done:
					if !errors.Is(err, ErrFatal) || !strings.Contains(err.Error(), "record "+topic+"/0@1: decoding its value: unknown_schema") {
						t.Fatalf("Run = %v", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("ferry did not stop")
				}
				if got := committed(t, brokers, cfg.Kafka.Group, topic); got[0] > 1 {
					t.Fatalf("committed %v past the undecodable record", got)
				}
				return
			}
			waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 4}, 20*time.Second)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			kin.mu.Lock()
			got := map[string][]string{}
			for k, v := range kin.order {
				got[k] = slices.Clone(v)
			}
			kin.mu.Unlock()
			if len(got) != 3 || len(got["1"]) != 1 || !strings.Contains(got["1"][0], `"email":null,"id":1,`) ||
				!slices.Equal(got["3"], []string{`{"id":3}`}) || !strings.Contains(got["4"][0], `"email":"x","id":4,`) {
				t.Fatalf("stored %q", got)
			}
			if n := testutil.ToFloat64(c.dec.m.errors.WithLabelValues(topic, reasonUnknownSchema)); n != 1 {
				t.Fatalf("ferry_decode_errors_total = %v, want 1", n)
			}
			if policy == "dlq" {
				dl := consumeAll(t, brokers, topic+"-dlq", 1)
				h := map[string]string{}
				for _, kv := range dl[0].Headers {
					h[kv.Key] = string(kv.Value)
				}
				if string(dl[0].Value) != string(bad) || h[HeaderErrClass] != errClassDecode || h[HeaderOffset] != "1" ||
					!strings.Contains(h[HeaderErrMsg], "schema id 99 is not in the registry") {
					t.Fatalf("dead-letter record %x headers %v", dl[0].Value, h)
				}
			}
		})
	}
}

// FuzzDecode feeds arbitrary payloads, framed with each test schema's id,
// to the decoder: it must return valid JSON or a *decodeError, never panic,
// and give the same answer twice (the scratch buffers carry nothing over).
func FuzzDecode(f *testing.F) {
	d := seededDecoder(f, map[uint32]sr.Schema{
		1: {Schema: testAvroSchema},
		2: {Schema: `{"type":"object"}`, Type: sr.TypeJSON},
		3: {Schema: testProtoSchema, Type: sr.TypeProtobuf},
	})
	f.Add(uint8(1), avroValue(f, 1, testAvroSchema, testOrder(1, nil))[5:])
	f.Add(uint8(2), []byte(`{"id":1}`))
	f.Add(uint8(3), []byte{2, 2, 8, 9, 18, 1, 'a'})
	f.Add(uint8(1), []byte{2, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f}) // a huge string length
	// id 7, email null, qty 3, raw "", at 0, status NEW, then a tags block
	// claiming 2^31-1 items: refused before anything is allocated for it.
	f.Add(uint8(1), []byte{14, 0, 0, 6, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, id uint8, payload []byte) {
		v := mapping.AppendWireFormat(nil, uint32(id%4), payload)
		out, err := d.decode(v)
		var de *decodeError
		switch {
		case err != nil && !errors.As(err, &de):
			t.Fatalf("decode error %v is not a *decodeError", err)
		case err == nil && !json.Valid(out):
			t.Fatalf("decode gave invalid JSON %q", out)
		}
		first := string(out)
		out2, err2 := d.decode(v)
		if string(out2) != first || (err == nil) != (err2 == nil) {
			t.Fatalf("second decode differs: %q, %v then %q, %v", first, err, out2, err2)
		}
	})
}

// A corrupt Avro value claiming a huge array block is refused, not
// allocated: goavro would size a 32 GiB slice for it by default.
func TestDecodeAvroHugeBlockRefused(t *testing.T) {
	t.Parallel()
	d := seededDecoder(t, map[uint32]sr.Schema{1: {Schema: testAvroSchema}})
	v := mapping.AppendWireFormat(nil, 1, []byte{14, 0, 0, 6, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f})
	_, err := d.decode(v)
	var de *decodeError
	if !errors.As(err, &de) || de.reason != reasonCorrupt || !strings.Contains(err.Error(), "MaxBlockCount") {
		t.Fatalf("decode = %v, want a corrupt_payload error from the block bound", err)
	}
}

// A protobuf schema that imports another file (a registry reference)
// compiles with that file's text and decodes messages that use its types.
func TestDecodeProtobufImports(t *testing.T) {
	t.Parallel()
	const common = "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; int64 units = 2; }\n"
	const pay = "syntax = \"proto3\";\npackage shop;\nimport \"shop/common.proto\";\nmessage Pay { int64 id = 1; common.Money amount = 2; }\n"
	refs := []sr.SchemaReference{{Name: "shop/common.proto", Subject: "common", Version: 1}}
	s := compileSchema(4, sr.Schema{Schema: pay, Type: sr.TypeProtobuf, References: refs}, map[string]string{"shop/common.proto": common})
	if s.err != nil {
		t.Fatal(s.err)
	}
	d := seededDecoder(t, nil)
	d.schemas[4] = s
	md, err := s.proto.message([]int{0})
	if err != nil {
		t.Fatal(err)
	}
	m := dynamicpb.NewMessage(md)
	m.Set(md.Fields().ByName("id"), protoreflect.ValueOfInt64(5))
	amount := m.Mutable(md.Fields().ByName("amount")).Message()
	amount.Set(amount.Descriptor().Fields().ByName("currency"), protoreflect.ValueOfString("EUR"))
	amount.Set(amount.Descriptor().Fields().ByName("units"), protoreflect.ValueOfInt64(250))
	bin, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.decode(append(mapping.AppendWireFormat(nil, 4, []byte{0}), bin...))
	if want := `{"id":"5","amount":{"currency":"EUR","units":"250"}}`; err != nil || string(got) != want {
		t.Fatalf("decode = %s, %v; want %s", got, err, want)
	}
	// Without the imported file's text the schema is unusable.
	if s := compileSchema(4, sr.Schema{Schema: pay, Type: sr.TypeProtobuf, References: refs}, nil); s.err == nil || s.err.reason != reasonUnsupportedSchema {
		t.Fatalf("compile without the import = %+v", s.err)
	}
}

// BenchmarkDecode measures decoding alone, per schema type, on the test
// schemas' records (a few hundred bytes of JSON each).
func BenchmarkDecode(b *testing.B) {
	d := seededDecoder(b, map[uint32]sr.Schema{
		1: {Schema: testAvroSchema},
		2: {Schema: `{"type":"object"}`, Type: sr.TypeJSON},
		3: {Schema: testProtoSchema, Type: sr.TypeProtobuf},
	})
	values := map[string][]byte{
		"avro": avroValue(b, 1, testAvroSchema, testOrder(42, goavro.Union("string", "a@b.c"))),
		"json": mapping.AppendWireFormat(nil, 2, []byte(`{"id":42,"email":"a@b.c","tags":["x","y"],"note":"hello"}`)),
		"protobuf": protoValue(b, 3, []int{1}, func(md protoreflect.MessageDescriptor, m *dynamicpb.Message) {
			m.Set(md.Fields().ByName("order_id"), protoreflect.ValueOfInt64(9))
			m.Set(md.Fields().ByName("email"), protoreflect.ValueOfString("a@b.c"))
		}),
	}
	for _, name := range []string{"avro", "json", "protobuf"} {
		b.Run(name, func(b *testing.B) {
			v := values[name]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.decode(v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// An Avro schema naming types defined by the schemas it references compiles
// with their definitions inlined at the first use, in whatever namespace
// the name is written, and decodes.
func TestDecodeAvroReferences(t *testing.T) {
	t.Parallel()
	const address = `{"type":"record","name":"Address","namespace":"com.acme","fields":[
		{"name":"city","type":"string"},{"name":"country","type":"com.acme.Country"}]}`
	const country = `{"type":"enum","name":"Country","namespace":"com.acme","symbols":["FR","DE"]}`
	const order = `{"type":"record","name":"Order","namespace":"com.acme","fields":[
		{"name":"id","type":"long"},
		{"name":"ship","type":"Address"},
		{"name":"bill","type":["null","com.acme.Address"]},
		{"name":"from","type":{"type":"array","items":"Country"}}]}`
	refs := map[string]string{"com.acme.Address": address, "com.acme.Country": country}
	inlined, err := inlineAvroRefs(order, refs)
	if err != nil {
		t.Fatal(err)
	}
	s := compileSchema(8, sr.Schema{Schema: order, References: []sr.SchemaReference{
		{Name: "com.acme.Address", Subject: "address", Version: 1}, {Name: "com.acme.Country", Subject: "country", Version: 2},
	}}, refs)
	if s.err != nil {
		t.Fatalf("compile %s: %v", inlined, s.err)
	}
	d := seededDecoder(t, nil)
	d.schemas[8] = s
	v := avroValue(t, 8, inlined, map[string]any{
		"id": int64(1), "ship": map[string]any{"city": "Lyon", "country": "FR"},
		"bill": goavro.Union("com.acme.Address", map[string]any{"city": "Köln", "country": "DE"}), "from": []any{"DE", "FR"},
	})
	got, err := d.decode(v)
	want := `{"bill":{"city":"K\u00F6ln","country":"DE"},"from":["DE","FR"],"id":1,"ship":{"city":"Lyon","country":"FR"}}`
	if err != nil || string(got) != want {
		t.Fatalf("decode = %s, %v; want %s", got, err, want)
	}
	// Address is defined once, at ship; bill names it.
	if n := strings.Count(inlined, `"name":"Address"`); n != 1 {
		t.Fatalf("Address defined %d times in %s", n, inlined)
	}
}

// FuzzInlineAvroRefs: any schema text either fails to parse or comes back
// as JSON, with a referenced type defined at most once; it never panics.
func FuzzInlineAvroRefs(f *testing.F) {
	f.Add(`{"type":"record","name":"R","fields":[{"name":"a","type":"T"},{"name":"b","type":["null","T"]}]}`)
	f.Add(`{"type":{"type":"array","items":{"type":"map","values":"x.T"}}}`)
	f.Add(`["T",{"type":"T"},"T"]`)
	f.Add(`"L"`)
	refs := map[string]string{
		"T": `{"type":"fixed","name":"T","size":2}`, "x.T": `{"type":"enum","name":"T","namespace":"x","symbols":["A"]}`,
		"L": `["L","L",{"type":"array","items":"L"}]`, // names itself: unfolded once, not 2^depth times
	}
	f.Fuzz(func(t *testing.T, schema string) {
		out, err := inlineAvroRefs(schema, refs)
		if err != nil {
			return
		}
		if !json.Valid([]byte(out)) {
			t.Fatalf("%q gave invalid JSON %q", schema, out)
		}
		if n := strings.Count(out, `"size":2`); n > 1+strings.Count(schema, `"size":2`) {
			t.Fatalf("%q: T defined %d times in %q", schema, n, out)
		}
	})
}
