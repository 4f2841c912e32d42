package aggregation

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
)

// fuzzRecords turns fuzz input into user records: each record takes a control
// byte (key choice, explicit hash key choice) and a length byte, then that
// many data bytes.
func fuzzRecords(in []byte) []Record {
	var recs []Record
	for len(in) >= 2 {
		ctl, n := in[0], int(in[1])
		in = in[2:]
		if ctl&0x80 != 0 {
			n *= 67 // reach the two-byte length varints
		}
		n = min(n, len(in))
		r := Record{Data: in[:n]}
		in = in[n:]
		switch k := ctl & 0x0F; {
		case k < 12:
			r.PartitionKey = "pk" + strconv.Itoa(int(k))
		case k < 15:
			r.PartitionKey = string(r.Data[:min(len(r.Data), 300)])
		default:
			r.PartitionKey = ""
		}
		if e := (ctl >> 4) & 0x07; e != 0 {
			r.ExplicitHashKey = strconv.Itoa(int(e) * 1000003)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkAggregate encodes a's aggregate and checks it against want.
func checkAggregate(t *testing.T, a *Aggregator, want []Record) {
	t.Helper()
	size := a.Size()
	if a.Len() > 1 && size > a.MaxBytes() {
		t.Fatalf("%d records take %d bytes, over maxBytes %d", a.Len(), size, a.MaxBytes())
	}
	data, pk, ehk := a.Encode(nil)
	if len(data) != size {
		t.Fatalf("Size = %d, Encode returned %d bytes", size, len(data))
	}
	if len(want) > 0 {
		if pk != want[0].PartitionKey || ehk != want[0].ExplicitHashKey {
			t.Fatalf("Encode keys %q, %q; want %q, %q", pk, ehk, want[0].PartitionKey, want[0].ExplicitHashKey)
		}
		if a.KinesisSize() != size+len(pk) {
			t.Fatalf("KinesisSize = %d, want %d", a.KinesisSize(), size+len(pk))
		}
	}
	got, err := Deaggregate(data, "outer")
	if err != nil {
		t.Fatalf("Deaggregate: %v", err)
	}
	equalRecords(t, got, want)
}

func FuzzAggregate(f *testing.F) {
	f.Add([]byte{}, uint32(1024))
	f.Add([]byte{0x01, 3, 'a', 'b', 'c', 0x11, 0, 0x8E, 2, 'x', 'y'}, uint32(64))
	f.Add(bytes.Repeat([]byte{0x21, 7, 1, 2, 3, 4, 5, 6, 7, 0x05, 1, 9}, 60), uint32(200))
	f.Add(bytes.Repeat([]byte{0xFC, 200}, 10), uint32(1<<20))
	f.Fuzz(func(t *testing.T, in []byte, maxBytes uint32) {
		recs := fuzzRecords(in)
		limit := int(maxBytes % (1 << 21))
		a := NewAggregator(limit)
		start := 0
		for i, r := range recs {
			if a.Add(r) {
				continue
			}
			if i == start {
				t.Fatalf("record %d refused by an empty aggregator", i)
			}
			if a.Len() != i-start {
				t.Fatalf("Len = %d after a refused Add, want %d", a.Len(), i-start)
			}
			checkAggregate(t, a, recs[start:i])
			a.Reset()
			start = i
			if !a.Add(r) {
				t.Fatalf("record %d refused after Reset", i)
			}
		}
		checkAggregate(t, a, recs[start:])
	})
}

func FuzzDeaggregate(f *testing.F) {
	for _, recs := range [][]Record{
		nil,
		{{PartitionKey: "a", Data: []byte("x")}},
		{{PartitionKey: "a", ExplicitHashKey: "12", Data: []byte("xyz")}, {PartitionKey: "b"}, {PartitionKey: "a", Data: []byte{0}}},
	} {
		a := NewAggregator(1 << 20)
		for _, r := range recs {
			a.Add(r)
		}
		data, _, _ := a.Encode(nil)
		f.Add(data)
		f.Add(data[magicLen : len(data)-digestLen]) // protobuf only: the fuzzer wraps it too
	}
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, encodeRaw(data)} {
			recs, err := Deaggregate(in, "outer")
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrChecksum) {
					t.Fatalf("unexpected error type: %v", err)
				}
				continue
			}
			if !IsAggregated(in) {
				equalRecords(t, recs, []Record{{PartitionKey: "outer", Data: in}})
				continue
			}
			// What decoded re-encodes (canonically) to the same records.
			a := NewAggregator(1 << 30)
			for _, r := range recs {
				a.Add(r)
			}
			checkAggregate(t, a, recs)
		}
	})
}
