package mapping

import (
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
