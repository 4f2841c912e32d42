package mapping

import (
	"crypto/md5"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

func TestKeySpec(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^(\w+)\.events$`)
	full := &Record{Topic: "shop.events", Partition: 5, Key: []byte("k1"),
		Value:   []byte(`{"user":{"id":42,"name":"Zoë","tags":[]},"bin":"\u0000"}`),
		Headers: []Header{{Key: "tenant", Value: []byte("acme")}, {Key: "raw", Value: []byte{0xff, 0x00}}}}
	bare := &Record{Topic: "shop.events", Partition: 5, Value: []byte(`not json`)}
	hashed := func(b []byte) string { return PartitionKey(b, 0) }
	tests := []struct {
		name      string
		source    string
		onMissing []string
		rec       *Record
		want      string
		policy    MissingPolicy // expect a *MissingKeyError
	}{
		{name: "default is the kafka key", rec: full, want: "k1"},
		{name: "null key falls back to partition", rec: bare, want: "5"},
		{name: "partition", source: "partition", rec: full, want: "5"},
		{name: "header", source: "header:tenant", rec: full, want: "acme"},
		{name: "binary header is hashed", source: "header:raw", rec: full, want: hashed([]byte{0xff, 0x00})},
		{name: "json number", source: "json:/user/id", rec: full, want: "42"},
		{name: "json string", source: "json:/user/name", rec: full, want: "Zoë"},
		{name: "json control character is kept (valid UTF-8)", source: "json:/bin", rec: full, want: "\x00"},
		{name: "json array is missing", source: "json:/user/tags", rec: full, want: "5"},
		{name: "json on a non-json value is missing", source: "json:/user/id", rec: bare, want: "5"},
		{name: "template", source: "${topic}:${key}", rec: full, want: "shop.events:k1"},
		{name: "template with group and json", source: "$1/${header:tenant}-${json:/user/id}", rec: full, want: "shop/acme-42"},
		{name: "template missing a part is missing", source: "${topic}:${key}", rec: bare, want: "5"},
		{name: "fallback chain", source: "header:user", onMissing: []string{"header:tenant", "key"}, rec: full, want: "acme"},
		{name: "fallback to key", source: "header:user", onMissing: []string{"header:none", "key"}, rec: full, want: "k1"},
		{name: "chain exhausted ends in partition", source: "header:user", onMissing: []string{"key"}, rec: bare, want: "5"},
		{name: "fail", source: "header:user", onMissing: []string{"key", "fail"}, rec: bare, policy: MissingFail},
		{name: "dlq", source: "json:/id", onMissing: []string{"dlq"}, rec: bare, policy: MissingDLQ},
		{name: "skip", onMissing: []string{"skip"}, rec: bare, policy: MissingSkip},
		{name: "present key with a policy", onMissing: []string{"fail"}, rec: full, want: "k1"},
		{name: "random", source: "random", rec: full, want: "00000000000000ff"},
		{name: "random fallback", onMissing: []string{"random"}, rec: bare, want: "00000000000000ff"},
		{name: "reserved prefix from a header is hashed", source: "${header:tenant}", rec: &Record{Headers: []Header{{Key: "tenant", Value: []byte("ferry~x")}}},
			want: hashed([]byte("ferry~x"))},
		{name: "over-long template result is hashed", source: "${key}${key}", rec: &Record{Key: []byte(strings.Repeat("a", 200))},
			want: hashed([]byte(strings.Repeat("a", 400)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := ParseKeySpec(tc.source, tc.onMissing, re)
			if err != nil {
				t.Fatal(err)
			}
			for _, kc := range []*KeyCache{nil, NewKeyCache(1 << 10)} {
				for range 2 { // the second time from the cache
					got, err := k.PartitionKey(tc.rec, re.FindStringSubmatchIndex(tc.rec.Topic), kc, 0xff)
					if tc.policy != 0 {
						var mk *MissingKeyError
						if !errors.As(err, &mk) || mk.Policy != tc.policy || !errors.Is(err, ErrMissingKey) {
							t.Fatalf("PartitionKey = %q, %v; want a *MissingKeyError with policy %v", got, err, tc.policy)
						}
						continue
					}
					if err != nil || got != tc.want {
						t.Fatalf("PartitionKey = %q, %v; want %q", got, err, tc.want)
					}
				}
			}
		})
	}
}

func TestParseKeySpecErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, source string
		onMissing    []string
		re           *regexp.Regexp
		msg          string
	}{
		{name: "unknown source", source: "value", msg: "unknown partition key source"},
		{name: "fixed key", source: "fixed", msg: "unknown partition key source"},
		{name: "empty header", source: "header:", msg: "empty header name"},
		{name: "bad pointer", source: "json:user", msg: "must be empty or start with /"},
		{name: "bad template", source: "${topic", msg: "unterminated"},
		{name: "template without variables", source: "a$$b", msg: "needs a variable"},
		{name: "group without regex", source: "$1", msg: "needs a route matched by regex"},
		{name: "policy not last", source: "header:a", onMissing: []string{"fail", "key"}, msg: "must come last"},
		{name: "unreachable after partition", source: "header:a", onMissing: []string{"partition", "key"}, msg: "never used"},
		{name: "on_missing on partition", source: "partition", onMissing: []string{"key"}, msg: "never used"},
		{name: "on_missing on random", source: "random", onMissing: []string{"fail"}, msg: "never used"},
		{name: "empty entry", source: "header:a", onMissing: []string{""}, msg: "is empty"},
		{name: "bad entry", source: "header:a", onMissing: []string{"nope"}, msg: "on_missing[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ParseKeySpec(tc.source, tc.onMissing, tc.re); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("ParseKeySpec = %v, want an error with %q", err, tc.msg)
			}
		})
	}
}

func TestKeySpecCachedKeysDoNotAllocate(t *testing.T) {
	rec := &Record{Topic: "t", Partition: 1, Key: []byte("k"), Value: []byte(`{"user":{"id":"u-1"}}`),
		Headers: []Header{{Key: "tenant", Value: []byte("acme")}}}
	for _, src := range []string{"key", "partition", "header:tenant", "json:/user/id", "${header:tenant}-${json:/user/id}"} {
		k, err := ParseKeySpec(src, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		kc := NewKeyCache(1 << 20)
		if n := testing.AllocsPerRun(100, func() {
			if _, err := k.PartitionKey(rec, nil, kc, 0); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per key, want 0", src, n)
		}
	}
}

func TestRandomKeysSpreadEvenly(t *testing.T) {
	t.Parallel()
	k, _ := ParseKeySpec("random", nil, nil)
	if !k.UsesRandom() {
		t.Fatal("UsesRandom = false")
	}
	// Kinesis places a key by the top bits of its MD5; 16 buckets of 64k
	// random keys should each hold 1/16 within a few percent.
	var buckets [16]int
	x := uint64(1)
	const n = 1 << 16
	for range n {
		x ^= x << 13 // xorshift: the caller's random source
		x ^= x >> 7
		x ^= x << 17
		pk, _ := k.PartitionKey(&Record{}, nil, nil, x)
		buckets[md5Top4(pk)]++
	}
	for i, c := range buckets {
		if c < n/16*9/10 || c > n/16*11/10 {
			t.Fatalf("bucket %d has %d of %d keys", i, c, n)
		}
	}
}

func TestSpreadDiffersByOffset(t *testing.T) {
	t.Parallel()
	seen := make(map[uint64]bool)
	for off := range int64(1000) {
		seen[spread(&Record{Topic: "t", Offset: off})] = true
	}
	if len(seen) != 1000 {
		t.Fatalf("%d distinct numbers for 1000 offsets", len(seen))
	}
}

// FuzzParseKeySpec parses any source and fallback, and checks every key a
// spec yields against PartitionKey's invariants: valid UTF-8 of 1 to 256
// UTF-16 units, deterministic, the same with and without a cache.
func FuzzParseKeySpec(f *testing.F) {
	for _, s := range []string{"key", "partition", "random", "header:h", "json:/a", "${topic}:${key}", "$1", "${json:/a/0}-${header:h}"} {
		f.Add(s, "header:h", []byte("k"), []byte(`{"a":["x"]}`), "v")
	}
	f.Add("json:", "fail", []byte{}, []byte(`"ferry~"`), "\xff")
	re := regexp.MustCompile(`^(.)`)
	f.Fuzz(func(t *testing.T, source, fallback string, key, value []byte, header string) {
		k, err := ParseKeySpec(source, []string{fallback}, re)
		if err != nil {
			return
		}
		rec := &Record{Topic: "topic", Partition: 3, Key: key, Value: value, Headers: []Header{{Key: "h", Value: []byte(header)}}}
		match := re.FindStringSubmatchIndex(rec.Topic)
		got, err := k.PartitionKey(rec, match, nil, 42)
		if err != nil {
			if !errors.Is(err, ErrMissingKey) {
				t.Fatalf("error %v is not ErrMissingKey", err)
			}
			return
		}
		if !utf8.ValidString(got) {
			t.Fatalf("key %q is not UTF-8", got)
		}
		if units := len(utf16.Encode([]rune(got))); units < 1 || units > MaxKeyChars {
			t.Fatalf("key %q has %d UTF-16 units", got, units)
		}
		kc := NewKeyCache(4 << 10)
		for range 2 {
			if again, err := k.PartitionKey(rec, match, kc, 42); err != nil || again != got {
				t.Fatalf("cached key %q, %v; want %q", again, err, got)
			}
		}
	})
}

func ExampleParseKeySpec() {
	k, _ := ParseKeySpec("${header:tenant}-${json:/user/id}", []string{"key", "dlq"}, nil)
	rec := &Record{Topic: "orders", Value: []byte(`{"user":{"id":42}}`), Headers: []Header{{Key: "tenant", Value: []byte("acme")}}}
	pk, _ := k.PartitionKey(rec, nil, nil, 0)
	fmt.Println(pk)
	_, err := k.PartitionKey(&Record{Topic: "orders"}, nil, nil, 0)
	fmt.Println(err)
	// Output:
	// acme-42
	// no partition key: ${header:tenant}-${json:/user/id} is missing and so is every on_missing fallback (on_missing ends in dlq)
}

// md5Top4 is the shard bucket of a partition key among 16 equal ranges.
func md5Top4(pk string) int {
	sum := md5.Sum([]byte(pk))
	return int(sum[0] >> 4)
}
