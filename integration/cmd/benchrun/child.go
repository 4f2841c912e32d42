package main

// The baselines run as child processes of benchrun (benchrun -mode consume|sdk), so that their CPU
// and memory are their own. Each prints one JSON line (childReport) on stdout when it is done.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/connector"
)

// childReport is what a child prints when done.
type childReport struct {
	Records       int64   // records consumed, or acknowledged by PutRecords
	Seconds       float64 // from the child's start to done
	SteadyPerSec  float64 // records/s after the first steadyAfter, 0 when the run was too short
	CPUSeconds    float64 // user+system CPU of the child until done
	PeakRSSKiB    int64   // VmHWM
	Errors        int64   // failed PutRecords calls (sdk)
	FailedEntries int64   // entries a PutRecords response marked as failed (sdk)
	FirstError    string  `json:",omitempty"`
}

// childArgs are the flags of the child modes.
type childArgs struct {
	brokers, topic, group                string
	endpoint, stream, prefix             string
	n, keys, valueSize, concurrency, per int
}

const steadyAfter = 2 * time.Second

// progress samples a counter at steadyAfter, for the steady-state rate.
type progress struct {
	start  time.Time
	count  atomic.Int64
	mu     sync.Mutex
	t2     time.Duration
	c2     int64
	sample *time.Timer
}

func newProgress() *progress {
	p := &progress{start: time.Now()}
	p.sample = time.AfterFunc(steadyAfter, func() {
		p.mu.Lock()
		p.t2, p.c2 = time.Since(p.start), p.count.Load()
		p.mu.Unlock()
	})
	return p
}

func (p *progress) report(n int64) childReport {
	p.sample.Stop()
	el := time.Since(p.start)
	r := childReport{Records: n, Seconds: el.Seconds()}
	p.mu.Lock()
	if p.t2 > 0 && el-p.t2 >= time.Second {
		r.SteadyPerSec = float64(n-p.c2) / (el - p.t2).Seconds()
	}
	p.mu.Unlock()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.CPUSeconds = tv(ru.Utime) + tv(ru.Stime)
	}
	r.PeakRSSKiB, _ = vmHWM("/proc/self/status")
	return r
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func printReport(r childReport) {
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

// consumeMain is the consume-only ceiling: a franz-go group consumer (cooperative-sticky,
// read_committed, 1 MiB per partition as ferry; 50 MiB per fetch, more than ferry's
// buffer_bytes/32, so the ceiling is not lowered by ferry's memory bound) that only counts records
// until it has n of them. It commits nothing.
func consumeMain(ctx context.Context, a childArgs) error {
	prog := newProgress()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(a.brokers, ",")...),
		kgo.ConsumerGroup(a.group),
		kgo.ConsumeTopics(a.topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(50<<20),
		kgo.FetchMaxPartitionBytes(1<<20),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	var n int64
	for n < int64(a.n) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		fs.EachError(func(t string, p int32, err error) {
			fmt.Fprintf(os.Stderr, "fetch %s[%d]: %v\n", t, p, err)
		})
		n += int64(fs.NumRecords())
		prog.count.Store(n)
	}
	printReport(prog.report(n))
	return nil
}

// sdkMain is the SDK-only figure: aws-sdk-go-v2 PutRecords of per-record batches, concurrency
// requests at a time, of n records made like the Kafka ones (value "prefix|i|" padded with random
// letters to valueSize, partition key "key-(i mod keys)"). The client is set up as ferry's: one
// attempt, no retry quota, enough idle connections, and the request body's WriteTo hidden (the
// duplicate-on-success workaround, connector.EarlyAnswerSafe); nothing is re-sent.
func sdkMain(ctx context.Context, a childArgs) error {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = 2 * a.concurrency
		t.MaxIdleConnsPerHost = 2 * a.concurrency
	})
	c := kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("bench", "bench", ""),
		BaseEndpoint: aws.String(a.endpoint),
		HTTPClient:   connector.EarlyAnswerSafe(httpClient),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 1
			o.RateLimiter = ratelimit.None
		}),
	})
	pool := randomLetters(max(64<<10, 2*a.valueSize))
	batches := (a.n + a.per - 1) / a.per
	prog := newProgress()
	var (
		next, errs, failed atomic.Int64
		firstErr           atomic.Value
		wg                 sync.WaitGroup
	)
	for range a.concurrency {
		wg.Go(func() {
			for {
				b := int(next.Add(1) - 1)
				if b >= batches || ctx.Err() != nil {
					return
				}
				lo, hi := b*a.per, min((b+1)*a.per, a.n)
				recs := make([]types.PutRecordsRequestEntry, 0, hi-lo)
				for i := lo; i < hi; i++ {
					recs = append(recs, types.PutRecordsRequestEntry{
						Data:         value(a.prefix, i, a.valueSize, pool),
						PartitionKey: aws.String("key-" + strconv.Itoa(i%a.keys)),
					})
				}
				out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(a.stream), Records: recs})
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				f := int64(aws.ToInt32(out.FailedRecordCount))
				failed.Add(f)
				prog.count.Add(int64(hi-lo) - f)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	r := prog.report(prog.count.Load())
	r.Errors, r.FailedEntries = errs.Load(), failed.Load()
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
	}
	printReport(r)
	return nil
}

// randomLetters returns n random lowercase letters, the padding of every value.
func randomLetters(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rand.IntN(26))
	}
	return b
}

// value returns record i's value: "prefix|i|" padded to size bytes with letters from pool (at an
// offset that depends on i, so values differ).
func value(prefix string, i, size int, pool []byte) []byte {
	v := make([]byte, 0, max(size, len(prefix)+22))
	v = append(v, prefix...)
	v = append(v, '|')
	v = strconv.AppendInt(v, int64(i), 10)
	v = append(v, '|')
	if pad := size - len(v); pad > 0 {
		off := (i * 7919) % (len(pool) - pad)
		v = append(v, pool[off:off+pad]...)
	}
	return v
}

// jsonValue is value as a JSON object of size bytes, {"id":KEY,"v":"topic|i|letters"}: its
// history.DefaultID ({"id":..."v":"topic|i|) is as unique as value's.
func jsonValue(key, prefix string, i, size int, pool []byte) []byte {
	head := `{"id":"` + key + `","v":"`
	v := value(prefix, i, max(size-len(head)-2, 0), pool)
	out := make([]byte, 0, len(head)+len(v)+2)
	out = append(out, head...)
	out = append(out, v...)
	return append(out, '"', '}')
}
