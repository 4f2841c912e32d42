//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/ferrylabs/ferry/connector"
	"github.com/ferrylabs/ferry/integration/internal/harness"
)

const srAvroSchema = `{"type":"record","name":"Order","namespace":"shop","fields":[
	{"name":"id","type":"long"},
	{"name":"email","type":["null","string"],"default":null},
	{"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
	{"name":"total","type":"double"}]}`

const srJSONSchema = `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
	"properties":{"id":{"type":"integer"},"kind":{"type":"string"}},"required":["id"]}`

const srProtoSchema = `syntax = "proto3";
package shop;
message Ping { string x = 1; }
message Payment {
  int64 id = 1;
  string currency = 2;
  Line line = 3;
  message Line { string sku = 1; int32 qty = 2; }
}
`

// srSchemas registers the three schemas under subjects of this test's own
// names in the real registry and returns their ids.
func srSchemas(t *testing.T, reg *harness.Registry, prefix string) (avro, jsonSchema, protobuf int) {
	t.Helper()
	cl := reg.Client()
	ids := make([]int, 3)
	for i, s := range []sr.Schema{
		{Schema: srAvroSchema, Type: sr.TypeAvro},
		{Schema: srJSONSchema, Type: sr.TypeJSON},
		{Schema: srProtoSchema, Type: sr.TypeProtobuf},
	} {
		ss, err := cl.CreateSchema(t.Context(), fmt.Sprintf("%s-%d-value", prefix, i), s)
		if err != nil {
			t.Fatalf("register %s schema: %v", s.Type, err)
		}
		ids[i] = ss.ID
	}
	if ids[0] == ids[1] || ids[1] == ids[2] {
		t.Fatalf("registry ids %v are not distinct", ids)
	}
	return ids[0], ids[1], ids[2]
}

func srAvro(t *testing.T, id int, native map[string]any) []byte {
	t.Helper()
	codec, err := goavro.NewCodec(srAvroSchema)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := codec.BinaryFromNative(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	return framed(uint32(id), bin)
}

// srPayment frames a shop.Payment (message index [1]) as the Confluent
// protobuf serializer does.
func srPayment(t *testing.T, id int, paymentID int64, currency, sku string, qty int32) []byte {
	t.Helper()
	c := protocompile.Compiler{Resolver: &protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"p.proto": srProtoSchema}),
	}}
	files, err := c.Compile(t.Context(), "p.proto")
	if err != nil {
		t.Fatal(err)
	}
	md := files[0].Messages().ByName("Payment")
	m := dynamicpb.NewMessage(md)
	m.Set(md.Fields().ByName("id"), protoreflect.ValueOfInt64(paymentID))
	m.Set(md.Fields().ByName("currency"), protoreflect.ValueOfString(currency))
	line := m.Mutable(md.Fields().ByName("line")).Message()
	line.Set(line.Descriptor().Fields().ByName("sku"), protoreflect.ValueOfString(sku))
	line.Set(line.Descriptor().Fields().ByName("qty"), protoreflect.ValueOfInt32(qty))
	bin, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return framed(uint32(id), append([]byte{2, 2}, bin...)) // message indexes [1]: count 1, index 1, zigzag varints
}

// srConfig is the env's config with decoding against registryURL, a route
// keyed by json:/id writing envelopes, and extra delivery lines.
func (e *env) srConfig(registryURL, extraDelivery, extraDecode string) string {
	e.t.Helper()
	path := e.withRoutes(e.config(extraDelivery), e.route("    partition_key: json:/id\n    format: envelope\n"))
	b, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := string(b) + fmt.Sprintf("decode:\n  value: auto\n  registry:\n    url: %s\n%s", registryURL, extraDecode)
	if extraDecode == "" {
		cfg += "    timeout: 10s\n" // under the env's kafka.rebalance_timeout of 20s
	}
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// Avro, JSON Schema and Protobuf values framed with ids from a real
// registry (Apicurio, through its Confluent-compatible API), mixed with
// unframed JSON and one value whose id the registry does not have, on a
// real broker into kinesis-mock: every decodable record arrives as an
// envelope with the decoded JSON embedded and its partition key taken from
// the decoded /id; the undecodable one goes to the dead-letter topic with
// its original bytes, and ferry carries on and commits everything.
func TestSchemaRegistryDecodesToKinesis(t *testing.T) {
	reg, err := harness.SharedRegistry(t.Context())
	harness.Require(t, err)
	e := newEnv(t, harness.KindMock, 1, 2, 2)
	topic := e.topics[0]
	dlq := topic + ".dlq"
	if err := harness.CreateTopic(t.Context(), e.brokers, dlq, 1); err != nil {
		t.Fatal(err)
	}
	avroID, jsonID, protoID := srSchemas(t, reg, e.name)
	const unknownID = 987654

	type want struct {
		key   string // the partition key: the decoded /id
		value string // the envelope's value, re-serialised
	}
	var recs []*kgo.Record
	var wants []*want // nil for the undecodable record
	for i := range 40 {
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%5)}
		var w *want
		switch i % 5 {
		case 0, 1:
			email := any(nil)
			wantEmail := "null"
			if i%2 == 0 {
				email, wantEmail = goavro.Union("string", fmt.Sprintf("u%d@example.com", i)), fmt.Sprintf("%q", fmt.Sprintf("u%d@example.com", i))
			}
			r.Value = srAvro(t, avroID, map[string]any{"id": int64(1000 + i), "email": email, "status": "PAID", "total": 12.5})
			w = &want{strconv.Itoa(1000 + i), fmt.Sprintf(`{"email":%s,"id":%d,"status":"PAID","total":12.5}`, wantEmail, 1000+i)}
		case 2:
			r.Value = framed(uint32(jsonID), fmt.Appendf(nil, `{"id":%d,"kind":"json-schema"}`, 2000+i))
			w = &want{strconv.Itoa(2000 + i), fmt.Sprintf(`{"id":%d,"kind":"json-schema"}`, 2000+i)}
		case 3:
			r.Value = srPayment(t, protoID, int64(3000+i), "EUR", "S"+strconv.Itoa(i), int32(i))
			// protojson writes an int64 as a string; json:/id takes its text.
			w = &want{strconv.Itoa(3000 + i), fmt.Sprintf(`{"currency":"EUR","id":"%d","line":{"qty":%d,"sku":"S%d"}}`, 3000+i, i, i)}
		case 4:
			if i == 19 {
				r.Value = framed(unknownID, []byte{2, 'x'})
			} else {
				r.Value = fmt.Appendf(nil, `{"id":%d,"plain":true}`, 4000+i) // not framed: passes as is
				w = &want{strconv.Itoa(4000 + i), fmt.Sprintf(`{"id":%d,"plain":true}`, 4000+i)}
			}
		}
		recs = append(recs, r)
		wants = append(wants, w)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	acked, err := harness.Produce(ctx, e.brokers, recs)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.srConfig(reg.URL(), fmt.Sprintf("  on_invalid: dlq\n  dlq_topic: %s\n", dlq), "")

	if code, out, _ := e.exec(t, "check", cfg); code != 0 || !strings.Contains(out, "[ok  ] schema registry "+reg.URL()+" answers") {
		t.Fatalf("ferry check: exit %d\n%s", code, out)
	}

	// ferry preview decodes the same way: partition keys from the decoded
	// values, the unknown id undecodable.
	out, err := exec.CommandContext(ctx, e.bin, "preview", "--config", cfg, "--limit", "40", "--json").Output()
	if err != nil {
		t.Fatalf("ferry preview: %v", err)
	}
	byOffset := map[string]connector.PreviewRecord{}
	for line := range strings.Lines(string(out)) {
		var r connector.PreviewRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("preview line %q: %v", line, err)
		}
		byOffset[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = r
	}
	for i, a := range acked {
		r := byOffset[fmt.Sprintf("%d/%d", a.Partition, a.Offset)]
		if w := wants[i]; w == nil && (r.Verdict != connector.VerdictUndecodable || !strings.Contains(r.Reason, "unknown_schema")) ||
			w != nil && (r.Verdict != connector.VerdictSent || r.PartitionKey != w.key) {
			t.Errorf("preview of record %d: %+v", i, r)
		}
	}

	p := e.start(cfg, "ferry")
	e.waitCommitted(-1, time.Minute, p)
	// One fetch per schema id: three found, the unknown one not found.
	body := scrapeAll(t, "http://"+metricsAddr(t, p)+"/metrics")
	if got := metric(body, "ferry_decode_errors_total", `topic="`+topic+`"`, `reason="unknown_schema"`); got != 1 {
		t.Errorf("ferry_decode_errors_total{reason=unknown_schema} = %v, want 1", got)
	}
	if ok, nf := metric(body, "ferry_schema_registry_requests_total", `result="ok"`),
		metric(body, "ferry_schema_registry_requests_total", `result="not_found"`); ok != 3 || nf != 1 {
		t.Errorf("ferry_schema_registry_requests_total ok %v, not_found %v; want 3 and 1", ok, nf)
	}
	e.stop(p)

	read, err := harness.ReadAll(ctx, e.kc, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	type envelope struct {
		Topic     string          `json:"topic"`
		Partition int32           `json:"partition"`
		Offset    int64           `json:"offset"`
		Value     json.RawMessage `json:"value"`
	}
	got := map[string]harness.StreamRecord{} // by topic/partition/offset
	values := map[string]string{}
	for _, r := range read {
		var env envelope
		if err := json.Unmarshal(r.Data, &env); err != nil {
			t.Fatalf("stream record %q is not an envelope: %v", r.Data, err)
		}
		var v any
		if err := json.Unmarshal(env.Value, &v); err != nil {
			t.Fatalf("envelope value %s: %v", env.Value, err)
		}
		canon, _ := json.Marshal(v) // sorted keys, to compare with want
		k := fmt.Sprintf("%s/%d/%d", env.Topic, env.Partition, env.Offset)
		got[k], values[k] = r, string(canon)
	}
	for i, a := range acked {
		k := fmt.Sprintf("%s/%d/%d", a.Topic, a.Partition, a.Offset)
		r, ok := got[k]
		w := wants[i]
		switch {
		case w == nil && ok:
			t.Errorf("record %d (unknown schema id) reached the stream: %s", i, r.Data)
		case w == nil:
		case !ok:
			t.Errorf("record %d (%s) missing from the stream", i, k)
		case r.PartitionKey != w.key || values[k] != w.value:
			t.Errorf("record %d: partition key %q value %s; want %q %s", i, r.PartitionKey, values[k], w.key, w.value)
		}
	}
	if len(got) != len(acked)-1 {
		t.Errorf("the stream holds %d distinct records, want %d", len(got), len(acked)-1)
	}

	dl := consumeTopic(t, e.brokers, dlq, 1)
	h := map[string]string{}
	for _, kv := range dl[0].Headers {
		h[kv.Key] = string(kv.Value)
	}
	bad := acked[19]
	if string(dl[0].Value) != string(bad.Value) || h[connector.HeaderErrClass] != "decode_failed" ||
		h[connector.HeaderOffset] != strconv.FormatInt(bad.Offset, 10) ||
		!strings.Contains(h[connector.HeaderErrMsg], fmt.Sprintf("schema id %d is not in the registry", unknownID)) {
		t.Errorf("dead-letter record %x, headers %v", dl[0].Value, h)
	}
}

// With delivery.on_invalid: fail, a value whose schema id the registry does
// not have stops ferry with an error naming the record and the cause, and
// nothing from it on is committed. A registry that cannot be reached at all
// is not a bad record: ferry retries it for decode.registry.timeout, then
// stops, naming the registry.
func TestSchemaRegistryFailures(t *testing.T) {
	reg, err := harness.SharedRegistry(t.Context())
	harness.Require(t, err)

	t.Run("unknown schema id fails", func(t *testing.T) {
		e := newEnv(t, harness.KindMock, 1, 1, 1)
		topic := e.topics[0]
		avroID, _, _ := srSchemas(t, reg, e.name)
		recs := []*kgo.Record{
			{Topic: topic, Value: srAvro(t, avroID, map[string]any{"id": int64(1), "email": nil, "status": "NEW", "total": 1.0})},
			{Topic: topic, Value: framed(987655, []byte{0})},
			{Topic: topic, Value: srAvro(t, avroID, map[string]any{"id": int64(3), "email": nil, "status": "NEW", "total": 1.0})},
		}
		if _, err := harness.Produce(t.Context(), e.brokers, recs); err != nil {
			t.Fatal(err)
		}
		p := e.start(e.srConfig(reg.URL(), "", ""), "ferry")
		code, err := p.Wait(time.Minute)
		if err != nil || code != 1 {
			t.Fatalf("ferry exit %d, %v; want 1", code, err)
		}
		want := fmt.Sprintf("record %s/0@1: decoding its value: unknown_schema: schema id 987655 is not in the registry (delivery.on_invalid: fail", topic)
		if !strings.Contains(p.Tail(), want) {
			t.Fatalf("ferry's output lacks %q:\n%s", want, p.Tail())
		}
		if c := e.committed()[topic][0]; c > 1 {
			t.Fatalf("committed offset %d, past the undecodable record at 1", c)
		}
	})

	t.Run("registry unreachable stops after the timeout", func(t *testing.T) {
		e := newEnv(t, harness.KindMock, 1, 1, 1)
		topic := e.topics[0]
		if _, err := harness.Produce(t.Context(), e.brokers, []*kgo.Record{{Topic: topic, Value: framed(5, []byte{0})}}); err != nil {
			t.Fatal(err)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/apis/ccompat/v7", harness.FreePort())
		cfg := e.srConfig(url, "", "    timeout: 3s\n")
		if code, out, _ := e.exec(t, "check", cfg); code == 0 || !strings.Contains(out, "[FAIL] schema registry "+url+": list schema types") {
			t.Fatalf("ferry check: exit %d\n%s", code, out)
		}
		start := time.Now()
		p := e.start(cfg, "ferry")
		code, err := p.Wait(time.Minute)
		if err != nil || code != 1 {
			t.Fatalf("ferry exit %d, %v; want 1", code, err)
		}
		want := "schema registry " + url + ": fetching schema id 5 failed for 3s (decode.registry.timeout)"
		if !strings.Contains(p.Tail(), want) {
			t.Fatalf("ferry's output lacks %q:\n%s", want, p.Tail())
		}
		// Waits of 0.2, 0.4 and 0.8 s; the next, 1.6 s, would end past the
		// 3 s, so ferry stops then rather than sleep for nothing.
		if took := time.Since(start); took < 1400*time.Millisecond || !strings.Contains(p.Tail(), "schema registry request failed; retrying") {
			t.Fatalf("ferry stopped after %s, without retrying for decode.registry.timeout:\n%s", took, p.Tail())
		}
		if c := e.committed()[topic][0]; c > 0 {
			t.Fatalf("committed offset %d for a record never decoded", c)
		}
	})
}

// A protobuf schema importing another one through a registry reference (as
// the Confluent serializer registers imports): ferry fetches the imported
// subject version from the real registry and decodes messages that use its
// types.
func TestSchemaRegistryProtobufImports(t *testing.T) {
	reg, err := harness.SharedRegistry(t.Context())
	harness.Require(t, err)
	e := newEnv(t, harness.KindMock, 1, 1, 1)
	topic := e.topics[0]
	const common = "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; int64 units = 2; }\n"
	const pay = "syntax = \"proto3\";\npackage shop;\nimport \"shop/common.proto\";\nmessage Pay { int64 id = 1; common.Money amount = 2; }\n"
	cl := reg.Client()
	commonSubject := e.name + "-common"
	if _, err := cl.CreateSchema(t.Context(), commonSubject, sr.Schema{Schema: common, Type: sr.TypeProtobuf}); err != nil {
		t.Fatal(err)
	}
	ss, err := cl.CreateSchema(t.Context(), topic+"-value", sr.Schema{Schema: pay, Type: sr.TypeProtobuf,
		References: []sr.SchemaReference{{Name: "shop/common.proto", Subject: commonSubject, Version: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	c := protocompile.Compiler{Resolver: &protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"pay.proto": pay, "shop/common.proto": common}),
	}}
	files, err := c.Compile(t.Context(), "pay.proto")
	if err != nil {
		t.Fatal(err)
	}
	md := files[0].Messages().ByName("Pay")
	var recs []*kgo.Record
	for i := range 5 {
		m := dynamicpb.NewMessage(md)
		m.Set(md.Fields().ByName("id"), protoreflect.ValueOfInt64(int64(100+i)))
		amount := m.Mutable(md.Fields().ByName("amount")).Message()
		amount.Set(amount.Descriptor().Fields().ByName("currency"), protoreflect.ValueOfString("EUR"))
		amount.Set(amount.Descriptor().Fields().ByName("units"), protoreflect.ValueOfInt64(int64(i)))
		bin, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Value: append(framed(uint32(ss.ID), []byte{0}), bin...)})
	}
	got := e.replicateValues(reg.URL(), recs)
	for i := range 5 {
		key := strconv.Itoa(100 + i)
		want := fmt.Sprintf(`{"id":"%d","amount":{"currency":"EUR","units":"%d"}}`, 100+i, i)
		if i == 0 {
			want = `{"id":"100","amount":{"currency":"EUR"}}` // proto3 leaves a zero out
		}
		if got[key] != want {
			t.Errorf("record with id %s: %s, want %s", key, got[key], want)
		}
	}
}

// An Avro schema naming a record type that another subject defines (an
// Avro schema reference, by the type's full name): ferry fetches the
// referenced version from the real registry, inlines it and decodes.
func TestSchemaRegistryAvroReferences(t *testing.T) {
	reg, err := harness.SharedRegistry(t.Context())
	harness.Require(t, err)
	e := newEnv(t, harness.KindMock, 1, 1, 1)
	topic := e.topics[0]
	const address = `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"}]}`
	const order = `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"long"},{"name":"ship","type":"Address"}]}`
	cl := reg.Client()
	addrSubject := e.name + "-address"
	if _, err := cl.CreateSchema(t.Context(), addrSubject, sr.Schema{Schema: address}); err != nil {
		t.Fatal(err)
	}
	ss, err := cl.CreateSchema(t.Context(), topic+"-value", sr.Schema{Schema: order,
		References: []sr.SchemaReference{{Name: "com.acme.Address", Subject: addrSubject, Version: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	// What the producer's serializer does: the same record, written with
	// the referenced type in place.
	codec, err := goavro.NewCodec(strings.Replace(order, `"type":"Address"`, `"type":`+address, 1))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 5 {
		bin, err := codec.BinaryFromNative(nil, map[string]any{"id": int64(200 + i), "ship": map[string]any{"city": fmt.Sprintf("c%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Value: framed(uint32(ss.ID), bin)})
	}
	got := e.replicateValues(reg.URL(), recs)
	for i := range 5 {
		key := strconv.Itoa(200 + i)
		if want := fmt.Sprintf(`{"id":%d,"ship":{"city":"c%d"}}`, 200+i, i); got[key] != want {
			t.Errorf("record with id %s: %s, want %s", key, got[key], want)
		}
	}
}

// replicateValues produces recs, runs ferry with the registry at url until
// every offset is committed, and returns each envelope's value read back from
// the stream, by partition key.
func (e *env) replicateValues(url string, recs []*kgo.Record) map[string]string {
	e.t.Helper()
	if _, err := harness.Produce(e.t.Context(), e.brokers, recs); err != nil {
		e.t.Fatal(err)
	}
	p := e.start(e.srConfig(url, "", ""), "ferry")
	e.waitCommitted(-1, time.Minute, p)
	e.stop(p)
	read, err := harness.ReadAll(e.t.Context(), e.kc, e.stream)
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range read {
		var env struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(r.Data, &env); err != nil {
			e.t.Fatal(err)
		}
		got[r.PartitionKey] = string(env.Value)
	}
	return got
}

// scrapeAll returns the body of a /metrics URL.
func scrapeAll(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// framed writes the Confluent wire format by hand (magic byte 0, the schema
// id big-endian, the payload), apart from ferry's own encoder, so that a
// mistake shared by ferry's framing and its parsing cannot pass.
func framed(id uint32, payload []byte) []byte {
	return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, payload...)
}
