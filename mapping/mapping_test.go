package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

func TestPartitionKey(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 257)
	tests := []struct {
		name      string
		key       []byte
		partition int32
		want      string // "" means: expect a hashed key
	}{
		{name: "plain", key: []byte("user-42"), want: "user-42"},
		{name: "null key falls back to partition", key: nil, partition: 7, want: "7"},
		{name: "empty key falls back to partition", key: []byte{}, partition: 300, want: "300"},
		{name: "256 ascii chars kept", key: []byte(strings.Repeat("a", 256)), want: strings.Repeat("a", 256)},
		{name: "256 multi-byte chars kept", key: []byte(strings.Repeat("é", 256)), want: strings.Repeat("é", 256)},
		{name: "257 chars hashed", key: []byte(long)},
		{name: "129 astral chars hashed (258 UTF-16 units)", key: []byte(strings.Repeat("😀", 129))},
		{name: "128 astral chars kept", key: []byte(strings.Repeat("😀", 128)), want: strings.Repeat("😀", 128)},
		{name: "invalid utf-8 hashed", key: []byte{0xff, 0xfe, 'a'}},
		{name: "reserved prefix hashed", key: []byte("ferry~sha256~abc")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := PartitionKey(tc.key, tc.partition)
			if tc.want != "" {
				if got != tc.want {
					t.Fatalf("PartitionKey = %q, want %q", got, tc.want)
				}
				return
			}
			if !strings.HasPrefix(got, HashPrefix) || len(got) != len(HashPrefix)+64 {
				t.Fatalf("PartitionKey = %q, want a hashed key", got)
			}
		})
	}
}

func TestPartitionKeyBinaryKeysStayDistinct(t *testing.T) {
	t.Parallel()
	// These collapse to one string if invalid UTF-8 is replaced by U+FFFD.
	a := PartitionKey([]byte{0xff, 0xfe, 'a'}, 0)
	b := PartitionKey([]byte{0xfe, 0xff, 'a'}, 0)
	if a == b {
		t.Fatalf("distinct binary keys mapped to the same partition key %q", a)
	}
}

func FuzzPartitionKey(f *testing.F) {
	f.Add([]byte("k"), []byte("k2"), int32(0))
	f.Add([]byte{0xff}, []byte{0xfe}, int32(3))
	f.Add([]byte(""), []byte("ferry~sha256~"), int32(1))
	f.Fuzz(func(t *testing.T, a, b []byte, p int32) {
		ka := PartitionKey(a, p)
		if ka != PartitionKey(a, p) {
			t.Fatal("not deterministic")
		}
		if !utf8.ValidString(ka) {
			t.Fatalf("invalid UTF-8 key %q", ka)
		}
		units := len(utf16.Encode([]rune(ka)))
		if units < 1 || units > MaxKeyChars {
			t.Fatalf("key %q has %d UTF-16 units", ka, units)
		}
		if len(a) > 0 && len(b) > 0 && string(a) != string(b) && ka == PartitionKey(b, p) {
			t.Fatalf("distinct keys %q and %q share partition key %q", a, b, ka)
		}
		// A small cache (it overflows and forgets) answers as PartitionKey.
		kc := NewKeyCache(300)
		for range 2 {
			for _, k := range [][]byte{a, b, a} {
				if got, want := kc.PartitionKey(k, p), PartitionKey(k, p); got != want {
					t.Fatalf("KeyCache(%q) = %q, want %q", k, got, want)
				}
			}
		}
	})
}

func TestKeyCacheIsBoundedAndAllocatesNothingOnHits(t *testing.T) {
	kc := NewKeyCache(64 << 10)
	keys := make([][]byte, 10_000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user-%d", i)
		if i%10 == 0 {
			keys[i] = append([]byte{0xff}, keys[i]...) // binary: hashed
		}
	}
	for _, k := range keys {
		if got, want := kc.PartitionKey(k, 7), PartitionKey(k, 7); got != want {
			t.Fatalf("KeyCache(%q) = %q, want %q", k, got, want)
		}
		if kc.bytes > kc.maxBytes {
			t.Fatalf("cache holds %d bytes, limit %d", kc.bytes, kc.maxBytes)
		}
	}
	hot := keys[len(keys)-100:] // the latest keys are cached
	allocs := testing.AllocsPerRun(100, func() {
		for _, k := range hot {
			kc.PartitionKey(k, 7)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 100 cached keys, want 0", allocs)
	}
	if kc.PartitionKey(nil, 3) != "3" {
		t.Fatal("a null key must map to the partition number")
	}
}

func TestMapRoutes(t *testing.T) {
	t.Parallel()
	m, err := New([]Rule{
		{Topics: []string{"orders"}, Stream: "orders-stream"},
		{Regex: `^audit\.`, Stream: "audit-stream", Key: KeyFromPartition},
		{Regex: `.*`, Stream: "catch-all"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, topic, stream, key string
	}{
		{name: "listed topic", topic: "orders", stream: "orders-stream", key: "k"},
		{name: "regex with partition key", topic: "audit.login", stream: "audit-stream", key: "3"},
		{name: "first match wins", topic: "audit.orders", stream: "audit-stream", key: "3"},
		{name: "catch all", topic: "misc", stream: "catch-all", key: "k"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := m.Map(Record{Topic: tc.topic, Partition: 3, Key: []byte("k"), Value: []byte("v")})
			if err != nil {
				t.Fatal(err)
			}
			if got.Stream != tc.stream || got.PartitionKey != tc.key || string(got.Data) != "v" {
				t.Fatalf("Map = %+v, want stream %q key %q", got, tc.stream, tc.key)
			}
			if got.Size() != len("v")+len(tc.key) {
				t.Fatalf("Size = %d", got.Size())
			}
		})
	}
}

func TestMapNoRoute(t *testing.T) {
	t.Parallel()
	m, err := New([]Rule{{Topics: []string{"a"}, Stream: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Map(Record{Topic: "b"}); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("Map(b) = %v, want ErrNoRoute", err)
	}
}

func TestNewRejectsBadRules(t *testing.T) {
	t.Parallel()
	for name, rules := range map[string][]Rule{
		"none":      nil,
		"no stream": {{Topics: []string{"a"}}},
		"bad regex": {{Regex: "(", Stream: "s"}},
	} {
		if _, err := New(rules); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// BenchmarkMapCached maps records of 10,000 repeating keys through a key
// cache, as the connector does: no allocation per record.
func BenchmarkMapCached(b *testing.B) {
	m, _ := New([]Rule{{Regex: ".*", Stream: "s"}})
	kc := NewKeyCache(8 << 20)
	keys := make([][]byte, 10_000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user-%d", i)
	}
	rec := Record{Topic: "t", Partition: 1, Value: make([]byte, 256)}
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Value)))
	n := 0
	for b.Loop() {
		rec.Key = keys[n%len(keys)]
		n++
		if _, err := m.MapCached(rec, kc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkMap(b *testing.B) {
	m, _ := New([]Rule{{Regex: ".*", Stream: "s"}})
	rec := Record{Topic: "t", Partition: 1, Key: []byte("user-1234"), Value: make([]byte, 256)}
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Value)))
	for b.Loop() {
		if _, err := m.Map(rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func TestMapToRoutes(t *testing.T) {
	t.Parallel()
	m, err := New([]Rule{
		{Topics: []string{"orders"}, When: &HeaderMatch{Name: "region", Equals: "eu"}, Stream: "orders-eu",
			PartitionKey: "header:customer", OnMissing: []string{"key"}},
		{Topics: []string{"orders"}, Stream: "orders", Payload: Payload{Format: FormatEnvelope},
			Filters: []Filter{{Tombstone: true}}},
		{Regex: `^(?P<env>prod|dev)\.(\w+)$`, Stream: "${env}-$2", PartitionKey: "${2}:${key}"},
		{Regex: `^tenant\.`, Stream: "t-${header:tenant}", PartitionKey: "random", Filters: []Filter{{Topic: `\.test$`}}},
		{Regex: `^bad`, Stream: "${topic}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	eu := []Header{{Key: "region", Value: []byte("eu")}, {Key: "customer", Value: []byte("c-9")}}
	tests := []struct {
		name                 string
		rec                  Record
		stream, key, dropped string
		data                 string // "" means the raw value
		err                  error
	}{
		{name: "when matches", rec: Record{Topic: "orders", Key: []byte("k"), Value: []byte("v"), Headers: eu},
			stream: "orders-eu", key: "c-9"},
		{name: "when fails: next route", rec: Record{Topic: "orders", Partition: 2, Offset: 7, Key: []byte("k"), Value: []byte("1")},
			stream: "orders", key: "k", data: `{"topic":"orders","partition":2,"offset":7,"timestamp":0,"timestampType":"CREATE_TIME","key":"k","headers":[],"value":1}`},
		{name: "route filter drops", rec: Record{Topic: "orders"}, dropped: "tombstone"},
		{name: "regex groups in stream and key", rec: Record{Topic: "prod.users", Key: []byte("u1"), Value: []byte("v")},
			stream: "prod-users", key: "users:u1"},
		{name: "key template missing falls back to partition", rec: Record{Topic: "dev.users", Partition: 4, Value: []byte("v")},
			stream: "dev-users", key: "4"},
		{name: "header stream", rec: Record{Topic: "tenant.a", Value: []byte("v"), Headers: []Header{{Key: "tenant", Value: []byte("acme")}}},
			stream: "t-acme", key: "00000000000000ff"},
		{name: "header stream missing", rec: Record{Topic: "tenant.a", Value: []byte("v")}, err: ErrInvalidStream},
		{name: "topic filter", rec: Record{Topic: "tenant.test", Value: []byte("v")}, dropped: `topic ~ \.test$`},
		{name: "topic makes an invalid stream", rec: Record{Topic: "bad:topic"}, err: ErrInvalidStream},
		{name: "no route", rec: Record{Topic: "other"}, err: ErrNoRoute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kc := NewKeyCache(1 << 20)
			for range 2 { // the second time from the caches
				got, err := m.MapTo(nil, &tc.rec, kc, 0xff)
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("MapTo = %+v, %v; want %v", got, err, tc.err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				data := tc.data
				if data == "" && tc.dropped == "" {
					data = string(tc.rec.Value)
				}
				if got.Stream != tc.stream || got.PartitionKey != tc.key || got.Dropped != tc.dropped || string(got.Data) != data {
					t.Fatalf("MapTo = %+v (data %s), want stream %q key %q dropped %q data %s",
						got, got.Data, tc.stream, tc.key, tc.dropped, data)
				}
			}
		})
	}
}

func TestMapToOwnsItsData(t *testing.T) {
	t.Parallel()
	m, _ := New([]Rule{{Regex: ".", Stream: "s"}})
	rec := Record{Topic: "t", Value: []byte("value")}
	got, err := m.MapTo(nil, &rec, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec.Value[0] = 'X'
	if string(got.Data) != "value" {
		t.Fatalf("Data %q aliases the record's value", got.Data)
	}
	if got, _ := m.MapTo(nil, &Record{Topic: "t", Value: []byte{}}, nil, 0); got.Data == nil {
		t.Fatal("an empty value mapped to nil data, the tombstone's")
	}
	if got, _ := m.MapTo(nil, &Record{Topic: "t"}, nil, 0); got.Data != nil {
		t.Fatal("a tombstone mapped to non-nil data")
	}
	if got, _ := m.Map(rec); &got.Data[0] != &rec.Value[0] {
		t.Fatal("Map copied a raw value")
	}
}

// TestMapToHotPathDoesNotAllocate: a raw route with a static stream and the
// Kafka key, as today, through a cache and into a reused buffer.
func TestMapToHotPathDoesNotAllocate(t *testing.T) {
	m, _ := New([]Rule{{Regex: ".*", Stream: "s"}, {Regex: "x", Stream: "t-${topic}"}})
	kc := NewKeyCache(1 << 20)
	rec := Record{Topic: "t", Partition: 1, Key: []byte("user-1234"), Value: make([]byte, 256)}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := m.MapTo(buf[:0], &rec, kc, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := m.MapCached(rec, kc); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per record, want 0", n)
	}
	// A header-routed stream, once seen, is interned.
	m, _ = New([]Rule{{Regex: ".*", Stream: "s-${header:h}", PartitionKey: "${topic}-${header:h}"}})
	rec.Headers = []Header{{Key: "h", Value: []byte("v")}}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := m.MapTo(buf[:0], &rec, kc, 0); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per header-routed record, want 0", n)
	}
}

func TestStreams(t *testing.T) {
	t.Parallel()
	m, err := New([]Rule{
		{Topics: []string{"a"}, Stream: "s1"},
		{Regex: `^(\w+)\.in$`, Stream: "$1-out"},
		{Topics: []string{"b"}, When: &HeaderMatch{Name: "h", Present: true}, Stream: "s-${header:h}"},
		{Topics: []string{"b", "c"}, Stream: "s1"},
		{Regex: `.`, Stream: "s2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Streams(); strings.Join(got, ",") != "s1,s2" {
		t.Fatalf("Streams = %q", got)
	}
	if !m.Dynamic() {
		t.Fatal("Dynamic = false")
	}
	got, perRecord := m.StreamsFor([]string{"a", "x.in", "y.in", "b", "zz"})
	if strings.Join(got, ",") != "s1,x-out,y-out,s2" || !perRecord {
		t.Fatalf("StreamsFor = %q, %v", got, perRecord)
	}
	if s, err := m.Route("x.in"); err != nil || s != "x-out" {
		t.Fatalf("Route(x.in) = %q, %v", s, err)
	}
	if _, err := m.Route("b"); err == nil {
		t.Fatal("Route(b) succeeded, but its stream depends on headers")
	}
	if _, err := m.Route(""); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("Route(\"\") = %v", err)
	}
	static, _ := New([]Rule{{Topics: []string{"a"}, Stream: "s"}})
	if static.Dynamic() {
		t.Fatal("Dynamic = true for static streams")
	}
}

func TestNewRejectsBadNewRules(t *testing.T) {
	t.Parallel()
	for name, rule := range map[string]Rule{
		"bad template":            {Regex: ".", Stream: "s-${"},
		"group on topic list":     {Topics: []string{"a"}, Stream: "s-$1"},
		"group with topics too":   {Topics: []string{"a"}, Regex: "(.)", Stream: "s-$1"},
		"key group on topic list": {Topics: []string{"a"}, Stream: "s", PartitionKey: "${1}"},
		"key and partition key":   {Topics: []string{"a"}, Stream: "s", Key: KeyFromPartition, PartitionKey: "key"},
		"bad key":                 {Topics: []string{"a"}, Stream: "s", PartitionKey: "nope"},
		"partition with fallback": {Topics: []string{"a"}, Stream: "s", Key: KeyFromPartition, OnMissing: []string{"key"}},
		"bad when":                {Topics: []string{"a"}, Stream: "s", When: &HeaderMatch{Name: "a"}},
		"bad payload":             {Topics: []string{"a"}, Stream: "s", Payload: Payload{Value: ValueBase64}},
		"bad filter":              {Topics: []string{"a"}, Stream: "s", Filters: []Filter{{}}},
		"invalid static stream":   {Topics: []string{"a"}, Stream: "a b"},
	} {
		if _, err := New([]Rule{rule}); err == nil || !strings.HasPrefix(err.Error(), "mapping: route 0: ") {
			t.Errorf("%s: New = %v", name, err)
		}
	}
}

// FuzzMapTo maps arbitrary records through rules using every feature:
// MapTo, MapCached and Map agree, streams are valid names, keys valid
// partition keys, and errors are of the documented kinds.
func FuzzMapTo(f *testing.F) {
	f.Add("orders", []byte("k"), []byte(`{"id":"x"}`), "eu", int32(1))
	f.Add("prod.users", []byte{}, []byte(nil), "", int32(-1))
	f.Add("tenant.a", []byte{0xff}, []byte(`{"id":1}`), "a b", int32(300))
	m, err := New([]Rule{
		{Topics: []string{"orders"}, When: &HeaderMatch{Name: "region", Regex: "^e"}, Stream: "orders-${header:region}",
			PartitionKey: "json:/id", OnMissing: []string{"header:region", "dlq"}},
		{Topics: []string{"orders"}, Stream: "orders", Payload: Payload{Format: FormatEnvelope}, Filters: []Filter{{Tombstone: true}}},
		{Regex: `^(?P<env>\w+)\.(\w*)$`, Stream: "${env}-$2", PartitionKey: "${2}:${key}", Payload: Payload{Format: FormatCloudEvents}},
		{Regex: `.*`, Stream: "all", PartitionKey: "random"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, key, value []byte, region string, partition int32) {
		rec := Record{Topic: topic, Partition: partition, Key: key, Value: value, Headers: []Header{{Key: "region", Value: []byte(region)}}}
		kc := NewKeyCache(1 << 10)
		to, errTo := m.MapTo(nil, &rec, kc, spread(&rec))
		cached, errCached := m.MapCached(rec, kc)
		plain, errPlain := m.Map(rec)
		if (errTo == nil) != (errCached == nil) || (errTo == nil) != (errPlain == nil) {
			t.Fatalf("errors differ: %v, %v, %v", errTo, errCached, errPlain)
		}
		if errTo != nil {
			if !errors.Is(errTo, ErrNoRoute) && !errors.Is(errTo, ErrInvalidStream) && !errors.Is(errTo, ErrMissingKey) {
				t.Fatalf("undocumented error %v", errTo)
			}
			return
		}
		for _, got := range []Target{cached, plain} {
			if got.Stream != to.Stream || got.PartitionKey != to.PartitionKey || got.Dropped != to.Dropped ||
				!bytes.Equal(got.Data, to.Data) {
				t.Fatalf("MapTo = %+v, but %+v", to, got)
			}
		}
		if to.Dropped != "" {
			return
		}
		if !ValidStreamName(to.Stream) {
			t.Fatalf("stream %q", to.Stream)
		}
		if units := len(utf16.Encode([]rune(to.PartitionKey))); !utf8.ValidString(to.PartitionKey) || units < 1 || units > MaxKeyChars {
			t.Fatalf("partition key %q", to.PartitionKey)
		}
	})
}

// ExampleMapper_MapTo is the rule of Rule's documentation.
func ExampleMapper_MapTo() {
	m, err := New([]Rule{{
		Regex:        `^(?P<env>prod|dev)\.(\w+)$`,
		When:         &HeaderMatch{Name: "region", Equals: "eu"},
		Stream:       "${env}-$2-eu",
		PartitionKey: "${header:tenant}-${json:/user/id}",
		OnMissing:    []string{"key", "dlq"},
		Payload:      Payload{Format: FormatEnvelope, Value: ValueAuto},
		Filters:      []Filter{{Tombstone: true}},
	}})
	if err != nil {
		panic(err)
	}
	rec := &Record{Topic: "prod.orders", Partition: 1, Offset: 7, Timestamp: 1700000000000, Value: []byte(`{"user":{"id":42}}`),
		Headers: []Header{{Key: "region", Value: []byte("eu")}, {Key: "tenant", Value: []byte("acme")}}}
	t, _ := m.MapTo(nil, rec, NewKeyCache(1<<20), 0)
	fmt.Printf("%s %s\n%s\n", t.Stream, t.PartitionKey, t.Data)
	rec.Value = nil
	t, _ = m.MapTo(nil, rec, nil, 0)
	fmt.Printf("dropped: %s\n", t.Dropped)
	// Output:
	// prod-orders-eu acme-42
	// {"topic":"prod.orders","partition":1,"offset":7,"timestamp":1700000000000,"timestampType":"CREATE_TIME","key":null,"headers":[{"key":"region","value":"eu"},{"key":"tenant","value":"acme"}],"value":{"user":{"id":42}}}
	// dropped: tombstone
}

func TestHashKeyMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want HashKeyMode
		err  bool
	}{{"", HashKeyNone, false}, {"none", HashKeyNone, false}, {"kafka_partition", HashKeyKafkaPartition, false}, {"partition", 0, true}} {
		got, err := ParseHashKey(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseHashKey(%q) = %v, %v", tc.in, got, err)
		}
		if err == nil && tc.in != "" && got.String() != tc.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	// Both the fast path and the general one carry the pin.
	for _, rule := range []Rule{
		{Topics: []string{"t"}, Stream: "s", HashKey: HashKeyKafkaPartition},
		{Topics: []string{"t"}, Stream: "s", HashKey: HashKeyKafkaPartition, Payload: Payload{Format: FormatEnvelope}},
	} {
		m, err := New([]Rule{rule})
		if err != nil {
			t.Fatal(err)
		}
		tg, err := m.MapTo(nil, &Record{Topic: "t", Key: []byte("k"), Value: []byte("v")}, nil, 0)
		if err != nil || !tg.PinPartition {
			t.Errorf("format %v: PinPartition %t (%v), want true", rule.Payload.Format, tg.PinPartition, err)
		}
	}
}
