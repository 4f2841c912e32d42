package connector

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/kinesiscodec"
	"github.com/ferrylabs/ferry/offsets"
)

// benchBatcher is a batcher on a bare connector, for measuring the cut.
func benchBatcher(b *testing.B, ordering string) *batcher {
	b.Helper()
	cfg := config.Default()
	cfg.Delivery.Ordering = ordering
	return bareBatcher(cfg)
}

// bareBatcher is a batcher of stream "s" on a connector with no Kafka and
// no Kinesis, for driving cuts and pacing directly.
func bareBatcher(cfg config.Config) *batcher {
	c := &Connector{cfg: cfg, m: NewMetrics(prometheus.NewRegistry()), sem: make(chan struct{}, 1), drained: make(chan struct{}, 1)}
	return newBatcher(c, "s")
}

// BenchmarkBatchCut measures add + cut + release per record: 10,000 keys,
// 256-byte records, full batches of 500.
func BenchmarkBatchCut(b *testing.B) {
	for _, ordering := range []string{"none", "key"} {
		b.Run(ordering, func(b *testing.B) {
			bt := benchBatcher(b, ordering)
			p := &partition{tracker: offsets.NewTracker()}
			keys := make([]string, 10_000)
			for i := range keys {
				keys[i] = "user-" + strconv.Itoa(i)
			}
			data := make([]byte, 256)
			entries := make([]entry, 500)
			var n int
			b.ReportAllocs()
			for b.Loop() {
				for i := range entries {
					entries[i] = entry{part: p, offset: int64(n), key: keys[n%len(keys)], data: data, size: 256 + len(keys[n%len(keys)])}
					bt.add(&entries[i])
					n++
				}
				batch, _ := bt.next()
				if len(batch) == 0 {
					b.Fatal("no batch cut")
				}
				p.inflight.Add(-int64(len(batch)))
				bt.release(batch)
				if rest, _ := bt.next(); len(rest) > 0 { // keys that collided in the first cut
					p.inflight.Add(-int64(len(rest)))
					bt.release(rest)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// cannedTransport answers every PutRecords with success for 500 entries,
// without a network: what is left is the SDK's serializer, signer and
// deserializer, the cost of the SDK path per record.
type cannedTransport struct{ body []byte }

func (t cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body: io.NopCloser(bytes.NewReader(t.body)), ContentLength: int64(len(t.body)), Request: r}, nil
}

// BenchmarkPutRecordsSDKPath measures one PutRecords of 500 x 256-byte
// records through aws-sdk-go-v2 (JSON + base64 encoding, SigV4 signing,
// response decoding), per record: "sdk" with the SDK's own protocol, "ferry"
// with ferry's client (the kinesiscodec protocol).
func BenchmarkPutRecordsSDKPath(b *testing.B) {
	var resp strings.Builder
	resp.WriteString(`{"FailedRecordCount":0,"Records":[`)
	for i := range 500 {
		if i > 0 {
			resp.WriteByte(',')
		}
		fmt.Fprintf(&resp, `{"SequenceNumber":"4960000000000000000000000000000000000000000000%05d","ShardId":"shardId-000000000000"}`, i)
	}
	resp.WriteString(`]}`)
	kin, err := NewKinesisClient(context.Background(), config.Kinesis{Region: "us-east-1", Endpoint: "http://127.0.0.1:1",
		AccessKeyID: "a", SecretAccessKey: "b"}, 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]types.PutRecordsRequestEntry, 500)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{Data: make([]byte, 256), PartitionKey: aws.String("user-" + strconv.Itoa(i))}
	}
	sdkProtocol := kin.Options().Protocol.(*kinesiscodec.Protocol).ClientProtocol
	for _, name := range []string{"sdk", "ferry"} {
		b.Run(name, func(b *testing.B) {
			opt := func(o *kinesis.Options) {
				o.HTTPClient = &http.Client{Transport: cannedTransport{body: []byte(resp.String())}}
				if name == "sdk" {
					o.Protocol = sdkProtocol
				}
			}
			b.ReportAllocs()
			b.SetBytes(500 * 256)
			for b.Loop() {
				if _, err := kin.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs}, opt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkHotPath measures ferry's own per-record work, fetch to
// acknowledgement, without Kafka or the SDK: dispatch (track, map, size,
// queue), the batch cut, the PutRecords entries, and the acknowledgement
// that releases the offsets. 10,000 repeating keys, 256-byte values, batches
// of 500. allocs/op is per 500 records.
func BenchmarkHotPath(b *testing.B) {
	for _, ordering := range []string{"none", "key"} {
		b.Run(ordering, func(b *testing.B) {
			c, _ := dispatchConnector(b, func(cfg *config.Config) { cfg.Delivery.Ordering = ordering })
			bt := c.batchers["s"]
			keys := make([][]byte, 10_000)
			for i := range keys {
				keys[i] = []byte("user-" + strconv.Itoa(i))
			}
			value := make([]byte, 256)
			recs := make([]kgo.Record, 500)
			reqs := make([]types.PutRecordsRequestEntry, 0, 500)
			var n int64
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			b.SetBytes(500 * 256)
			for b.Loop() {
				for i := range recs {
					recs[i] = kgo.Record{Topic: "t", Offset: n, Key: keys[n%int64(len(keys))], Value: value}
					if err := c.dispatch(b.Context(), &recs[i]); err != nil {
						b.Fatal(err)
					}
					n++
				}
				for queued(bt) > 0 {
					batch, _ := bt.next()
					if len(batch) == 0 {
						b.Fatal("no batch cut")
					}
					reqs, _, _ = requestEntries(reqs[:0], batch)
					c.acknowledge(bt, batch)
				}
			}
			runtime.ReadMemStats(&after)
			if c.buffered.Load() != 0 {
				b.Fatalf("%d bytes still buffered", c.buffered.Load())
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n), "allocs/record")
		})
	}
}

// queued is how many entries wait in the batcher.
func queued(b *batcher) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue) - b.head
}
