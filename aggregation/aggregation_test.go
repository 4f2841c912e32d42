package aggregation

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// aggregate adds every record (all must fit) and encodes the aggregate.
func aggregate(t testing.TB, maxBytes int, recs []Record) (data []byte, pk, ehk string) {
	t.Helper()
	a := NewAggregator(maxBytes)
	for i, r := range recs {
		if !a.Add(r) {
			t.Fatalf("record %d did not fit in %d bytes (size %d)", i, maxBytes, a.Size())
		}
	}
	if a.Len() != len(recs) {
		t.Fatalf("Len = %d, want %d", a.Len(), len(recs))
	}
	size := a.Size()
	data, pk, ehk = a.Encode(nil)
	if len(data) != size {
		t.Fatalf("Size = %d, Encode returned %d bytes", size, len(data))
	}
	if ks := a.KinesisSize(); len(recs) > 0 && ks != len(data)+len(pk) {
		t.Fatalf("KinesisSize = %d, want %d", ks, len(data)+len(pk))
	}
	return data, pk, ehk
}

// equalRecords fails t unless got and want hold the same user records.
func equalRecords(t testing.TB, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("record %d = {%q %q %d bytes}, want {%q %q %d bytes}", i,
				g.PartitionKey, g.ExplicitHashKey, len(g.Data), w.PartitionKey, w.ExplicitHashKey, len(w.Data))
		}
	}
}

// roundTrip aggregates recs, checks the encoded size and de-aggregates them
// back, returning the encoded data.
func roundTrip(t testing.TB, recs []Record) []byte {
	t.Helper()
	data, pk, ehk := aggregate(t, 1<<30, recs)
	if len(recs) > 0 && (pk != recs[0].PartitionKey || ehk != recs[0].ExplicitHashKey) {
		t.Fatalf("Encode keys = %q, %q; want the first record's %q, %q", pk, ehk, recs[0].PartitionKey, recs[0].ExplicitHashKey)
	}
	got, err := Deaggregate(data, "outer")
	if err != nil {
		t.Fatalf("Deaggregate: %v", err)
	}
	equalRecords(t, got, recs)
	return data
}

func keys(n int, format string) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{PartitionKey: fmt.Sprintf(format, i), Data: []byte{byte(i)}}
	}
	return recs
}

func TestRoundTrip(t *testing.T) {
	data := func(n int) []byte { return bytes.Repeat([]byte{0xAB}, n) }
	// dataForInner returns data whose Record message (index 0, no explicit
	// hash key) is exactly inner bytes long.
	dataForInner := func(inner int) []byte {
		for n := inner; n >= 0; n-- {
			if 2+fieldSize(n) == inner {
				return data(n)
			}
		}
		t.Fatalf("no data length gives a %d-byte Record", inner)
		return nil
	}
	oneKey := keys(1000, "same")
	for i := range oneKey {
		oneKey[i].PartitionKey = "same"
	}
	tests := []struct {
		name string
		recs []Record
	}{
		{"empty aggregate", nil},
		{"empty data", []Record{{PartitionKey: "k", Data: []byte{}}}},
		{"nil data", []Record{{PartitionKey: "k"}, {PartitionKey: "k", Data: data(3)}}},
		{"empty partition key", []Record{{PartitionKey: "", Data: data(3)}}},
		{"data 127", []Record{{PartitionKey: "k", Data: data(127)}}},
		{"data 128", []Record{{PartitionKey: "k", Data: data(128)}}},
		{"data 16383", []Record{{PartitionKey: "k", Data: data(16383)}}},
		{"data 16384", []Record{{PartitionKey: "k", Data: data(16384)}}},
		{"data 2097152", []Record{{PartitionKey: "k", Data: data(1 << 21)}}},
		{"record 127", []Record{{PartitionKey: "k", Data: dataForInner(127)}}},
		{"record 128", []Record{{PartitionKey: "k", Data: dataForInner(128)}}},
		{"record 16383", []Record{{PartitionKey: "k", Data: dataForInner(16383)}}},
		{"record 16384", []Record{{PartitionKey: "k", Data: dataForInner(16384)}}},
		{"key 127", []Record{{PartitionKey: strings.Repeat("p", 127), Data: data(1)}}},
		{"key 128", []Record{{PartitionKey: strings.Repeat("p", 128), Data: data(1)}}},
		{"key index 127/128", keys(129, "k%d")},
		{"key index 16383/16384", keys(16385, "k%d")},
		{"many keys", keys(1000, "key-%04d")},
		{"one key", oneKey},
		{"unicode keys", []Record{{PartitionKey: "clé-ключ-键-🔑", Data: data(5)}, {PartitionKey: "ключ", Data: data(0)}}},
		{"explicit hash keys", []Record{
			{PartitionKey: "a", ExplicitHashKey: "0", Data: data(1)},
			{PartitionKey: "b", ExplicitHashKey: "340282366920938463463374607431768211455", Data: data(2)},
			{PartitionKey: "a", ExplicitHashKey: "0", Data: data(3)},
			{PartitionKey: "c", Data: data(4)},
			{PartitionKey: "c", ExplicitHashKey: "170141183460469231731687303715884105728", Data: data(5)},
		}},
		{"first without explicit hash key", []Record{
			{PartitionKey: "a", Data: data(1)},
			{PartitionKey: "a", ExplicitHashKey: "7", Data: data(2)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			roundTrip(t, tc.recs)
		})
	}
}

func TestDeduplicatedKeysCostOnlyTheirIndex(t *testing.T) {
	a := NewAggregator(1 << 20)
	a.Add(Record{PartitionKey: "key", Data: []byte("x")})
	before := a.Size()
	a.Add(Record{PartitionKey: "key", Data: []byte("x")})
	// key 0x1A, length, then 08 00 1A 01 'x'.
	if got := a.Size() - before; got != 7 {
		t.Fatalf("repeated key added %d bytes, want 7", got)
	}
	before = a.Size()
	a.Add(Record{PartitionKey: "other", Data: []byte("x")})
	if got := a.Size() - before; got != 7+7 { // plus 0A 05 "other"
		t.Fatalf("new key added %d bytes, want 14", got)
	}

	many, one := roundTrip(t, keys(1000, "key-%04d")), roundTrip(t, func() []Record {
		r := keys(1000, "k%d")
		for i := range r {
			r[i].PartitionKey = "key-0000"
		}
		return r
	}())
	// 999 more table entries of 10 bytes, and 1000-128 indexes of 2 bytes.
	if want := 999*10 + (1000 - 128); len(many)-len(one) != want {
		t.Fatalf("1000 keys take %d bytes more than one key, want %d", len(many)-len(one), want)
	}
}

func TestEncodeGolden(t *testing.T) {
	a := NewAggregator(1 << 10)
	a.Add(Record{PartitionKey: "a", Data: []byte("x")})
	a.Add(Record{PartitionKey: "bc", ExplicitHashKey: "1", Data: nil})
	pb := []byte{
		0x0A, 0x01, 'a', // partition_key_table
		0x0A, 0x02, 'b', 'c',
		0x12, 0x01, '1', // explicit_hash_key_table
		0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, 'x', // records
		0x1A, 0x06, 0x08, 0x01, 0x10, 0x00, 0x1A, 0x00,
	}
	sum := md5.Sum(pb)
	want := append(append([]byte{0xF3, 0x89, 0x9A, 0xC2}, pb...), sum[:]...)
	got, pk, ehk := a.Encode([]byte("prefix"))
	if !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("Encode =\n% x\nwant\n% x", got, want)
	}
	if pk != "a" || ehk != "" {
		t.Fatalf("keys = %q, %q; want \"a\", \"\"", pk, ehk)
	}
	if a.Size() != len(want) {
		t.Fatalf("Size = %d, want %d", a.Size(), len(want))
	}
}

func TestAddMaxBytes(t *testing.T) {
	r := Record{PartitionKey: "key", Data: make([]byte, 100)}
	probe := NewAggregator(1 << 20)
	probe.Add(r)
	probe.Add(r)
	two := probe.Size()

	t.Run("exactly hit", func(t *testing.T) {
		a := NewAggregator(two)
		for i := range 2 {
			if !a.Add(r) {
				t.Fatalf("record %d of two filling exactly maxBytes did not fit", i)
			}
		}
		if a.Size() != two {
			t.Fatalf("Size = %d, want %d", a.Size(), two)
		}
		if a.Add(Record{PartitionKey: "key"}) {
			t.Fatal("a third record fit past maxBytes")
		}
		if a.Len() != 2 || a.Size() != two {
			t.Fatalf("rejected Add changed the aggregate: Len %d Size %d", a.Len(), a.Size())
		}
		data, _, _ := a.Encode(nil)
		if len(data) != two {
			t.Fatalf("encoded %d bytes, want %d", len(data), two)
		}
	})
	t.Run("one byte short", func(t *testing.T) {
		a := NewAggregator(two - 1)
		if !a.Add(r) {
			t.Fatal("first record did not fit")
		}
		if a.Add(r) {
			t.Fatal("second record fit past maxBytes")
		}
		if a.Len() != 1 {
			t.Fatalf("Len = %d, want 1", a.Len())
		}
	})
	t.Run("oversized record into empty aggregator", func(t *testing.T) {
		a := NewAggregator(50)
		if !a.Add(r) {
			t.Fatal("an oversized record was refused by an empty aggregator")
		}
		if a.Size() <= 50 {
			t.Fatalf("Size = %d, want > 50", a.Size())
		}
		if a.Add(Record{PartitionKey: "key"}) {
			t.Fatal("a record fit after an oversized one")
		}
		a.Reset()
		if a.Len() != 0 || a.Size() != Overhead || a.KinesisSize() != 0 {
			t.Fatalf("after Reset: Len %d Size %d KinesisSize %d", a.Len(), a.Size(), a.KinesisSize())
		}
		if !a.Add(Record{PartitionKey: "key"}) {
			t.Fatal("a small record did not fit after Reset")
		}
	})
	t.Run("new key counted", func(t *testing.T) {
		// The second record fits with a repeated key but not with a new one.
		a := NewAggregator(two)
		a.Add(r)
		if a.Add(Record{PartitionKey: "kez", Data: r.Data}) {
			t.Fatal("a record with a new key fit past maxBytes")
		}
		if !a.Add(r) {
			t.Fatal("a record with a repeated key did not fit")
		}
	})
}

func TestEncodeReuse(t *testing.T) {
	a := NewAggregator(1 << 20)
	recs := keys(300, "k%d")
	for _, r := range recs {
		a.Add(r)
	}
	first, _, _ := a.Encode(nil)
	again, _, _ := a.Encode(make([]byte, 0, 10))
	if !bytes.Equal(first, again) {
		t.Fatal("two Encodes of the same aggregate differ")
	}
	a.Reset()
	for _, r := range recs[:2] {
		a.Add(r)
	}
	data, pk, _ := a.Encode(first[:0])
	if pk != "k0" {
		t.Fatalf("partition key after Reset = %q, want k0", pk)
	}
	got, err := Deaggregate(data, "")
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, recs[:2])
}

func TestAddEncodeDoNotAllocate(t *testing.T) {
	recs := make([]Record, 10000)
	payload := make([]byte, 256)
	for i := range recs {
		recs[i] = Record{PartitionKey: fmt.Sprintf("key-%05d", i%1000), Data: payload}
		if i%3 == 0 {
			recs[i].ExplicitHashKey = fmt.Sprint(i % 7)
		}
	}
	a := NewAggregator(50 << 10)
	var buf []byte
	next := 0
	cycle := func() {
		for a.Add(recs[next%len(recs)]) {
			next++
		}
		buf, _, _ = a.Encode(buf[:0])
		a.Reset()
	}
	for range 100 {
		cycle()
	}
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Fatalf("Add+Encode+Reset allocated %v times per aggregate", n)
	}
}

// encodeRaw wraps a protobuf message in magic and digest.
func encodeRaw(pb []byte) []byte {
	sum := md5.Sum(pb)
	return append(append(append([]byte{}, magic[:]...), pb...), sum[:]...)
}

func TestDeaggregateCorrupt(t *testing.T) {
	valid, _, _ := aggregate(t, 1<<20, []Record{
		{PartitionKey: "a", ExplicitHashKey: "5", Data: []byte("hello")},
		{PartitionKey: "b", Data: []byte("world")},
	})
	pb := valid[magicLen : len(valid)-digestLen]
	flip := func(i int) []byte {
		b := bytes.Clone(valid)
		b[i] ^= 1
		return b
	}
	v := binary.AppendUvarint

	passthrough := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"short", []byte{0xF3, 0x89}},
		{"bad magic", flip(0)},
		{"plain", []byte("just a payload")},
	}
	for _, tc := range passthrough {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Deaggregate(tc.data, "pk")
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, got, []Record{{PartitionKey: "pk", Data: tc.data}})
		})
	}

	errs := []struct {
		name string
		data []byte
		want error
	}{
		{"bad md5", flip(len(valid) - 1), ErrChecksum},
		{"flipped protobuf byte", flip(magicLen + 3), ErrChecksum},
		{"magic only", magic[:], ErrMalformed},
		{"shorter than digest", valid[:Overhead-1], ErrMalformed},
		{"truncated (digest cut)", valid[:len(valid)-1], ErrChecksum},
		{"truncated protobuf", encodeRaw(pb[:len(pb)-1]), ErrMalformed},
		{"truncated varint", encodeRaw([]byte{0x1A, 0x80}), ErrMalformed},
		{"overlong varint", encodeRaw(bytes.Repeat([]byte{0xFF}, 11)), ErrMalformed},
		{"field number 0", encodeRaw([]byte{0x02, 0x00}), ErrMalformed},
		{"group wire type", encodeRaw([]byte{0x0B}), ErrMalformed},
		{"table with varint wire type", encodeRaw([]byte{0x08, 0x01}), ErrMalformed},
		{"missing partition key index", encodeRaw([]byte{0x0A, 0x01, 'a', 0x1A, 0x02, 0x1A, 0x00}), ErrMalformed},
		{"missing data", encodeRaw([]byte{0x0A, 0x01, 'a', 0x1A, 0x02, 0x08, 0x00}), ErrMalformed},
		{"partition key index out of range", encodeRaw([]byte{0x0A, 0x01, 'a', 0x1A, 0x04, 0x08, 0x01, 0x1A, 0x00}), ErrMalformed},
		{"explicit hash key index out of range", encodeRaw([]byte{0x0A, 0x01, 'a', 0x1A, 0x06, 0x08, 0x00, 0x10, 0x00, 0x1A, 0x00}), ErrMalformed},
		{"huge index", encodeRaw(append(v([]byte{0x0A, 0x01, 'a', 0x1A, 0x0D, 0x08}, 1<<63), 0x1A, 0x00)), ErrMalformed},
		{"data with varint wire type", encodeRaw([]byte{0x0A, 0x01, 'a', 0x1A, 0x04, 0x08, 0x00, 0x18, 0x00}), ErrMalformed},
		{"tags with varint wire type", encodeRaw([]byte{0x0A, 0x01, 'a', 0x1A, 0x06, 0x08, 0x00, 0x1A, 0x00, 0x20, 0x00}), ErrMalformed},
		{"record length past end", encodeRaw([]byte{0x1A, 0x7F, 0x08, 0x00}), ErrMalformed},
		{"huge length", encodeRaw(v([]byte{0x0A}, 1<<63)), ErrMalformed},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Deaggregate(tc.data, "pk")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Deaggregate = %d records, %v; want %v", len(got), err, tc.want)
			}
		})
	}

	// Every truncation and every single-byte change fails cleanly.
	for i := range valid {
		if _, err := Deaggregate(valid[:i], "pk"); i >= magicLen && err == nil {
			t.Fatalf("truncation to %d bytes decoded", i)
		}
		for _, bit := range []byte{1, 0x80} {
			b := bytes.Clone(valid)
			b[i] ^= bit
			if _, err := Deaggregate(b, "pk"); i >= magicLen && err == nil {
				t.Fatalf("flipping bit %#x of byte %d went unnoticed", bit, i)
			}
		}
	}
	for i := range pb {
		_, _ = Deaggregate(encodeRaw(pb[:i]), "pk") // must not panic
	}
}

func TestDeaggregateLenient(t *testing.T) {
	v := binary.AppendUvarint
	// Records before the tables, unknown fields of every wire type, tags,
	// and a repeated scalar field (the last value wins).
	var pb []byte
	pb = append(pb, 0x1A, 0x11)
	pb = append(pb, 0x08, 0x05, 0x08, 0x01) // partition_key_index 5 then 1
	pb = append(pb, 0x10, 0x00)             // explicit_hash_key_index 0
	pb = append(pb, 0x22, 0x03, 0x0A, 0x01, 't')
	pb = append(pb, 0x28, 0x07) // unknown field 5, varint
	pb = append(pb, 0x1A, 0x02, 'h', 'i')
	pb = append(pb, 0x0A, 0x01, 'a', 0x0A, 0x01, 'b')
	pb = append(pb, 0x12, 0x02, '4', '2')
	pb = append(pb, 0x31, 1, 2, 3, 4, 5, 6, 7, 8) // unknown field 6, fixed64
	pb = append(pb, 0x3D, 1, 2, 3, 4)             // unknown field 7, fixed32
	pb = v(append(pb, 0x42), 3)                   // unknown field 8, bytes
	pb = append(pb, 'x', 'y', 'z')
	got, err := Deaggregate(encodeRaw(pb), "outer")
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, []Record{{PartitionKey: "b", ExplicitHashKey: "42", Data: []byte("hi")}})

	got, err = Deaggregate(encodeRaw(nil), "outer")
	if err != nil || len(got) != 0 {
		t.Fatalf("empty aggregate = %v, %v; want no records", got, err)
	}
}
