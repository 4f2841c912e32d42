package aggregation

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

const (
	benchRecordSize = 256
	benchKeys       = 10000
)

// benchRecords returns n records of benchRecordSize random bytes over
// benchKeys partition keys.
func benchRecords(n int) []Record {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("partition-key-%08d", rng.Uint32())
	}
	recs := make([]Record, n)
	for i := range recs {
		data := make([]byte, benchRecordSize)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		recs[i] = Record{PartitionKey: keys[rng.IntN(len(keys))], Data: data}
	}
	return recs
}

func reportThroughput(b *testing.B, records int) {
	b.Helper()
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(records)/s, "records/s")
	b.ReportMetric(float64(records*benchRecordSize)/s/1e6, "MB/s")
}

// BenchmarkAggregate measures Add and Encode per user record, with one Reset
// and Encode per full aggregate, over one reused Aggregator and buffer.
func BenchmarkAggregate(b *testing.B) {
	recs := benchRecords(1 << 14)
	for _, maxBytes := range []int{50 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("max=%dKiB", maxBytes>>10), func(b *testing.B) {
			a := NewAggregator(maxBytes)
			buf := make([]byte, 0, maxBytes)
			aggregates := 0
			flush := func() {
				buf, _, _ = a.Encode(buf[:0])
				a.Reset()
				aggregates++
			}
			i := 0
			for b.Loop() {
				r := recs[i%len(recs)]
				i++
				if !a.Add(r) {
					flush()
					a.Add(r)
				}
			}
			flush()
			reportThroughput(b, i)
			b.ReportMetric(float64(i)/float64(aggregates), "records/aggregate")
		})
	}
}

// BenchmarkDeaggregate measures Deaggregate per user record.
func BenchmarkDeaggregate(b *testing.B) {
	for _, maxBytes := range []int{50 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("max=%dKiB", maxBytes>>10), func(b *testing.B) {
			a := NewAggregator(maxBytes)
			for _, r := range benchRecords(1 << 14) {
				if !a.Add(r) {
					break
				}
			}
			data, pk, _ := a.Encode(nil)
			n := a.Len()
			records := 0
			for b.Loop() {
				recs, err := Deaggregate(data, pk)
				if err != nil || len(recs) != n {
					b.Fatalf("Deaggregate = %d records, %v; want %d", len(recs), err, n)
				}
				records += n
			}
			reportThroughput(b, records)
			b.ReportMetric(float64(n), "records/aggregate")
		})
	}
}
