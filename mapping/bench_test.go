package mapping

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// json256 is a 256-byte JSON value shaped like an event, with the pointer
// /user/id in the middle of it.
var json256 = func() []byte {
	doc := `{"type":"order.created","ts":1700000000123,"user":{"id":"u-12345","name":"Zoë Example","tier":"gold"},` +
		`"items":[{"sku":"A-1","qty":2,"price":9.99},{"sku":"B-22","qty":1,"price":19.5}],"note":"leave at the door, \"ring twice\""`
	doc += `,"pad":"` + strings.Repeat("x", 256-len(doc)-len(`,"pad":""}`)) + `"}`
	if len(doc) != 256 || !json.Valid([]byte(doc)) {
		panic(fmt.Sprintf("json256 is %d bytes", len(doc)))
	}
	return []byte(doc)
}()

var binary256 = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

func benchRecord(value []byte) Record {
	return Record{Topic: "orders", Partition: 3, Offset: 123456789, Timestamp: 1700000000123,
		Key: []byte("user-12345"), Value: value,
		Headers: []Header{{Key: "trace-id", Value: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}, {Key: "source", Value: []byte("web")}}}
}

func reportRecords(b *testing.B) {
	b.Helper()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkMapTo is the connector's hot path through MapTo: a raw route, a
// static stream, the Kafka key through a cache, into a reused buffer.
func BenchmarkMapTo(b *testing.B) {
	m, _ := New([]Rule{{Regex: ".*", Stream: "s"}})
	kc := NewKeyCache(8 << 20)
	keys := make([][]byte, 10_000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user-%d", i)
	}
	rec := Record{Topic: "t", Partition: 1, Value: make([]byte, 256)}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Value)))
	n := 0
	for b.Loop() {
		rec.Key = keys[n%len(keys)]
		n++
		if _, err := m.MapTo(buf[:0], &rec, kc, 0); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b)
}

// BenchmarkPayload encodes one record per op into a reused buffer.
func BenchmarkPayload(b *testing.B) {
	for _, bc := range []struct {
		name  string
		p     Payload
		value []byte
	}{
		{"envelope/json-256", Payload{Format: FormatEnvelope}, json256},
		{"envelope/binary-256", Payload{Format: FormatEnvelope}, binary256},
		{"envelope/string-256", Payload{Format: FormatEnvelope, Value: ValueString}, json256},
		{"envelope/base64-256", Payload{Format: FormatEnvelope, Value: ValueBase64}, json256},
		{"cloudevents/json-256", Payload{Format: FormatCloudEvents}, json256},
		{"cloudevents/binary-256", Payload{Format: FormatCloudEvents}, binary256},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rec := benchRecord(bc.value)
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.value)))
			for b.Loop() {
				buf = bc.p.Append(buf[:0], &rec)
			}
			b.ReportMetric(float64(len(buf)), "out-bytes")
			reportRecords(b)
		})
	}
	// What a caller keeping each record pays: one exact allocation.
	b.Run("envelope/json-256-new-buffer", func(b *testing.B) {
		rec := benchRecord(json256)
		b.ReportAllocs()
		for b.Loop() {
			AppendEnvelope(nil, &rec)
		}
		reportRecords(b)
	})
}

func BenchmarkTemplateExpand(b *testing.B) {
	re := regexp.MustCompile(`^(?P<env>\w+)\.(\w+)$`)
	rec := benchRecord(json256)
	rec.Topic = "prod.orders"
	rec.Headers = append(rec.Headers, Header{Key: "region", Value: []byte("eu-west-1")})
	match := re.FindStringSubmatchIndex(rec.Topic)
	for _, bc := range []struct{ name, tmpl string }{
		{"static", "orders-stream"},
		{"groups", "${env}-$2-stream"},
		{"header", "${env}-orders-${header:region}"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tm, err := ParseTemplate(bc.tmpl, re)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 128)
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = tm.Expand(buf[:0], &rec, match); err != nil {
					b.Fatal(err)
				}
			}
			reportRecords(b)
		})
	}
	// The whole mapping of a header-routed record, its stream interned.
	b.Run("map-header-stream", func(b *testing.B) {
		m, _ := New([]Rule{{Regex: re.String(), Stream: "${env}-orders-${header:region}"}})
		kc := NewKeyCache(1 << 20)
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.MapTo(buf[:0], &rec, kc, 0); err != nil {
				b.Fatal(err)
			}
		}
		reportRecords(b)
	})
}

// BenchmarkKeySource derives partition keys from a 256-byte JSON record,
// through a warm cache (the connector's case).
func BenchmarkKeySource(b *testing.B) {
	rec := benchRecord(json256)
	rec.Headers = append(rec.Headers, Header{Key: "tenant", Value: []byte("acme")})
	for _, src := range []string{"key", "header:tenant", "json:/user/id", "json:/pad", "${header:tenant}-${json:/user/id}", "random"} {
		b.Run(src, func(b *testing.B) {
			k, err := ParseKeySpec(src, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			kc := NewKeyCache(1 << 20)
			b.ReportAllocs()
			b.SetBytes(int64(len(rec.Value)))
			for b.Loop() {
				if _, err := k.PartitionKey(&rec, nil, kc, 42); err != nil {
					b.Fatal(err)
				}
			}
			reportRecords(b)
		})
	}
}

// BenchmarkValidJSON compares the scanner behind Pointer and ValueAuto with
// encoding/json's.
func BenchmarkValidJSON(b *testing.B) {
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(int64(len(json256)))
		for b.Loop() {
			validJSON(json256)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(json256)))
		for b.Loop() {
			json.Valid(json256)
		}
	})
}
