package fastsink

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const (
	benchRecords    = 500
	benchRecordSize = 256
)

// benchBatch is a 500-record batch of 256-byte records with ids "bench|<batch*500+i>|".
func benchBatch(batch int) []types.PutRecordsRequestEntry {
	recs := make([]types.PutRecordsRequestEntry, benchRecords)
	for i := range recs {
		n := batch*benchRecords + i
		d := make([]byte, benchRecordSize)
		for j := range d {
			d[j] = byte(n + j*7)
		}
		copy(d, fmt.Sprintf("bench|%d|", n))
		recs[i] = types.PutRecordsRequestEntry{Data: d, PartitionKey: aws.String("key-" + strconv.Itoa(n%4096))}
	}
	return recs
}

// sdkBodies captures the request bodies the real SDK client sends for n distinct batches.
func sdkBodies(b *testing.B, n int) [][]byte {
	b.Helper()
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"FailedRecordCount":0,"Records":[]}`))
	}))
	defer srv.Close()
	c := client(srv.URL)
	for i := range n {
		_, _ = c.PutRecords(b.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("bench"), Records: benchBatch(i)})
	}
	if len(bodies) != n {
		b.Fatalf("captured %d bodies", len(bodies))
	}
	return bodies
}

// BenchmarkPutRecords measures the sink's PutRecords throughput for 500-record requests of 256-byte
// records, as the real SDK client serializes them (64 distinct batches, 32,000 ids).
//
//   - handler: the http.Handler called directly (parser, counting, response), one goroutine; every
//     id is new (the sink is reset, off the clock, when the batches run out).
//   - handler-parallel: the same from GOMAXPROCS goroutines, without resets (mostly duplicates).
//   - sdk-loopback: the real SDK client over loopback HTTP/1.1, 2*GOMAXPROCS concurrent callers;
//     the client's own serialization, SigV4 signing and response parsing share the CPUs.
func BenchmarkPutRecords(b *testing.B) {
	const batches = 64
	bodies := sdkBodies(b, batches)
	newReq := func(body []byte) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecords")
		return req
	}
	report := func(b *testing.B, start time.Time, records int64) {
		b.Helper()
		b.ReportMetric(float64(records)/time.Since(start).Seconds(), "records/s")
	}

	b.Run("handler", func(b *testing.B) {
		s, err := newSink()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(bodies[0])))
		var elapsed time.Duration
		var records int64
		for i := 0; b.Loop(); i++ {
			if i%batches == 0 && i > 0 {
				s.Reset()
			}
			req, rec := newReq(bodies[i%batches]), httptest.NewRecorder()
			t0 := time.Now()
			s.ServeHTTP(rec, req)
			elapsed += time.Since(t0)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			records += benchRecords
		}
		b.ReportMetric(float64(records)/elapsed.Seconds(), "records/s")
	})

	b.Run("handler-parallel", func(b *testing.B) {
		s, err := newSink()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(bodies[0])))
		var next, records atomic.Int64
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, rec := newReq(bodies[next.Add(1)%batches]), httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Errorf("status %d: %s", rec.Code, rec.Body)
					return
				}
				records.Add(benchRecords)
			}
		})
		report(b, start, records.Load())
		if st := s.Stats(); st.Records != records.Load() {
			b.Errorf("stats %+v", st)
		}
	})

	b.Run("sdk-loopback", func(b *testing.B) {
		s := startSink(b)
		c := client(s.URL())
		inputs := make([]*kinesis.PutRecordsInput, batches)
		for i := range inputs {
			inputs[i] = &kinesis.PutRecordsInput{StreamName: aws.String("bench"), Records: benchBatch(i)}
		}
		b.ReportAllocs()
		b.SetParallelism(2) // 2*GOMAXPROCS callers
		var next, records atomic.Int64
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				out, err := c.PutRecords(b.Context(), inputs[next.Add(1)%batches])
				if err != nil || len(out.Records) != benchRecords {
					b.Errorf("put: %v", err)
					return
				}
				records.Add(benchRecords)
			}
		})
		report(b, start, records.Load())
		if st := s.Stats(); st.Records != records.Load() {
			b.Errorf("stats %+v", st)
		}
	})
}
