package main

// The latency variants: ferry into the fast sink while benchrun produces to an empty topic at a
// steady rate, and the end-to-end latency read from ferry's own histogram.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// latencyMetric is ferry's histogram of Kafka record timestamp to Kinesis acknowledgement.
const latencyMetric = "ferry_end_to_end_latency_seconds"

// minAchieved is the share of the target rate the producer must reach for a latency run to
// count: below it the machine, not ferry, set the load.
const minAchieved = 0.9

// latencyResult is what one latency run measured.
type latencyResult struct {
	linger           string  // delivery.batch.linger ferry ran with
	target, achieved float64 // records/s asked of the producer, and what it produced
	dropped          int64   // records the pacing dropped because the producer fell behind
	samples          uint64  // latencies observed between the two scrapes
	window           float64 // seconds between the two scrapes
	p50, p99, mean   float64 // seconds
	maxLE            float64 // upper bound of the highest bucket with a sample (+Inf possible)
	cpuPct           float64 // ferry's CPU between the scrapes, % of one core
	ackP50, ackP99   float64 // seconds from Produce to the broker's acknowledgement, after the warm-up
}

// maxRate is the median records/s of the successful ferry/key runs (0 if none).
func maxRate(results []result) float64 {
	var rates []float64
	for _, r := range results {
		if r.variant == "ferry/key" && r.err == "" && r.na == "" {
			rates = append(rates, r.perSec())
		}
	}
	return median(rates)
}

// defaultLinger is ferry's own delivery.batch.linger.
func defaultLinger() time.Duration { return config.Default().Delivery.Batch.Linger }

// runLatency starts ferry on a fresh, empty topic, produces to it at b.latRate for
// -latency-duration, and reads the latency histogram from ferry's /metrics after -latency-warmup
// and once more when the sink has every record, so the window's latencies are the bucket deltas.
// Waiting for the sink matters: the records still in flight when the producer stops are the ones
// that would show a backlog, and leaving them out would flatter ferry.
func (b *bench) runLatency(ctx context.Context, v variant, id string, res *result) error {
	o := b.o
	nan := math.NaN()
	lat := &latencyResult{target: b.latRate, linger: defaultLinger().String() + " (default)", p50: nan, p99: nan, mean: nan, maxLE: nan}
	res.lat = lat
	linger := ""
	if v.linger {
		linger = o.linger.String()
		lat.linger = linger
	}
	if b.latRate <= 0 {
		return errors.New("no rate to produce at: no ferry/key run succeeded (or give -latency-rate)")
	}
	name := "bench-latency-" + id
	if err := harness.CreateTopic(ctx, b.brokers, name, int32(o.partitions)); err != nil {
		return err
	}
	// The topic is as large as the run's records (about a GiB at 200,000 records/s for 15 s).
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = b.adm.DeleteTopics(dctx, name)
	}()
	d, err := b.newDestination(ctx, v, id)
	if err != nil {
		return err
	}
	defer d.release()
	cfg, err := b.ferryConfig(v, id, &topic{name: name}, "bench-"+id, d.endpoint, d.stream, linger)
	if err != nil {
		return err
	}
	args := []string{"run", "--config", cfg, "--set", "delivery.ordering=" + v.ordering,
		"--set", "delivery.rate_limit.enabled=" + strconv.FormatBool(o.rateLimit)}
	p, err := startProc("ferry", filepath.Join(b.dir, "ferry-"+id+".log"), b.ferryBin, args, ferryEnv(), false)
	if err != nil {
		return err
	}
	defer p.kill()
	addr, err := waitReady(ctx, p, 60*time.Second)
	if err != nil {
		return err
	}

	// Produce; ferry has joined its group, so the first records wait for nothing but ferry.
	pctx, stopProducer := context.WithCancel(ctx)
	prod := make(chan paced, 1)
	start := time.Now()
	go func() {
		prod <- pacedProduce(pctx, b.brokers, name, b.latRate, o.latDuration, start.Add(o.latWarmup), o.keys, o.valueSize)
	}()
	var pr paced
	produced := false
	defer func() { // before the topic goes
		stopProducer()
		if !produced {
			<-prod
		}
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case pr = <-prod:
		produced = true
		return fmt.Errorf("producer stopped before the warm-up ended: %w", pr.err)
	case <-time.After(time.Until(start.Add(o.latWarmup))):
	}
	h0, err := scrapeLatency(ctx, addr, d.stream)
	if err != nil {
		return err
	}
	t0 := time.Now()
	u0, err := readUsage(p.pid())
	if err != nil {
		return fmt.Errorf("ferry usage: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case pr = <-prod:
		produced = true
	}
	res.records, res.seconds = int(pr.acked), pr.seconds
	lat.dropped = pr.dropped
	lat.ackP50, lat.ackP99 = pr.acks.quantile(0.5), pr.acks.quantile(0.99)
	if pr.seconds > 0 {
		lat.achieved = float64(pr.acked) / pr.seconds
	}
	if pr.err != nil {
		return fmt.Errorf("producer: %w", pr.err)
	}

	// Wait until the sink has every record; ferry that kept up needs well under a second.
	drain := max(30*time.Second, o.latDuration)
	deadline := time.Now().Add(drain)
	for sinkRecords(ctx, d.endpoint+"/progress") < pr.acked {
		if p.exited() {
			code, _ := p.wait(time.Second)
			return fmt.Errorf("ferry exited %d; last lines:\n%s", code, p.tail(20))
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("the sink had %d of %d records %v after the producer stopped: ferry did not keep up",
				sinkRecords(ctx, d.endpoint+"/progress"), pr.acked, drain)
			if diag := b.diagnose(p, d, id); diag != "" {
				err = fmt.Errorf("%w (%s)", err, diag)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	h1, err := scrapeLatency(ctx, addr, d.stream)
	if err != nil {
		return err
	}
	t1 := time.Now()
	u1, err := readUsage(p.pid())
	if err != nil {
		return fmt.Errorf("ferry usage: %w", err)
	}
	res.cpu, res.rssKiB = u1.cpu, u1.hwmKiB
	lat.window = t1.Sub(t0).Seconds()
	lat.cpuPct = 100 * (u1.cpu - u0.cpu) / lat.window
	delta := h1.sub(h0)
	lat.samples = delta.count
	if delta.count == 0 {
		return errors.New("ferry observed no latency in the window")
	}
	lat.p50, lat.p99 = delta.quantile(0.5), delta.quantile(0.99)
	lat.mean, lat.maxLE = delta.sum/float64(delta.count), delta.maxLE()

	code, err := p.stop(60 * time.Second)
	if err != nil || code != 0 {
		res.notes = append(res.notes, fmt.Sprintf("ferry exited %d on SIGTERM (%v)", code, err))
	}
	if _, err := d.verify(ctx, res); err != nil {
		return err
	}
	if res.distinct != pr.acked {
		return fmt.Errorf("the destination has %d distinct records of %d", res.distinct, pr.acked)
	}
	if lat.achieved < minAchieved*lat.target {
		res.na = fmt.Sprintf("the producer reached only %s of %s records/s on this machine (under %.0f %%)",
			fmtInt(lat.achieved), fmtInt(lat.target), 100*minAchieved)
	}
	return nil
}

// waitReady waits for ferry to log its metrics address and then for /readyz to answer 200 (the
// group is joined), and returns the address.
func waitReady(ctx context.Context, p *proc, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	addr := ""
	for {
		if addr == "" {
			addr = metricsAddr(p.logPath)
		}
		if addr != "" && httpStatus(ctx, "http://"+addr+"/readyz") == http.StatusOK {
			return addr, nil
		}
		if p.exited() {
			code, _ := p.wait(time.Second)
			return "", fmt.Errorf("ferry exited %d before it was ready; last lines:\n%s", code, p.tail(20))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("ferry not ready after %v (metrics address %q); last lines:\n%s", timeout, addr, p.tail(20))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metricsAddr is the address of ferry's health and metrics listener, from the JSON log line
// "serving health and metrics" ("" until it is there).
func metricsAddr(logPath string) string {
	data, _ := os.ReadFile(logPath)
	for line := range strings.SplitSeq(string(data), "\n") {
		var l struct{ Msg, Listen string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving health and metrics" && l.Listen != "" {
			return l.Listen
		}
	}
	return ""
}

func httpStatus(ctx context.Context, url string) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// paced is what pacedProduce did.
type paced struct {
	acked, dropped int64
	seconds        float64   // from the start to the last slice
	acks           histogram // Produce to acknowledgement, of the records produced after from
	err            error
}

// pacedProduce produces to topic at rate records/s for d, in 10 ms slices: each slice tops the
// records produced up to rate × the time since the start, so a late tick is made up at the next
// one. A backlog of more than five slices (benchrun was descheduled, or Produce blocked on a full
// buffer) is dropped rather than sent as one burst: the load stays steady, and a producer that
// cannot keep up shows as a lower achieved rate. Records are made as produce's (key
// "key-(i mod keys)", value "topic|i|" padded to size), and franz-go stamps each with the time of
// its Produce call (CreateTime). The producer does not linger: a slice's records reach it
// together and are batched anyway, and lingering would add up to its linger to every latency.
// The time from Produce to the broker's acknowledgement of the records produced after from goes
// into a histogram with ferry's buckets: the Kafka leg's share of the end-to-end latency.
func pacedProduce(ctx context.Context, brokers []string, topic string, rate float64, d time.Duration, from time.Time, keys, size int) paced {
	const slice = 10 * time.Millisecond
	var out paced
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ProducerLinger(0),
		// A second's worth: Produce blocking on a full buffer would stamp records late and hide
		// the wait, where waiting in the buffer counts in the latency.
		kgo.MaxBufferedRecords(max(50_000, int(rate))),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordRetries(10))
	if err != nil {
		out.err = err
		return out
	}
	defer cl.Close()
	pool := randomLetters(max(64<<10, 2*size))
	keyBytes := make([][]byte, keys)
	for i := range keyBytes {
		keyBytes[i] = []byte("key-" + strconv.Itoa(i))
	}
	bounds := append(prometheus.ExponentialBucketsRange(0.001, 300, 32), math.Inf(1)) // ferry's
	inBucket := make([]atomic.Uint64, len(bounds))
	var (
		acked    atomic.Int64
		mu       sync.Mutex
		firstErr error
	)
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return
		}
		acked.Add(1)
		if !r.Timestamp.Before(from) {
			i, _ := slices.BinarySearch(bounds, time.Since(r.Timestamp).Seconds())
			inBucket[i].Add(1)
		}
	}
	maxBacklog := int64(math.Ceil(rate * 5 * slice.Seconds()))
	tick := time.NewTicker(slice)
	defer tick.Stop()
	start := time.Now()
	var scheduled, produced int64 // scheduled counts the dropped ones too
	for ctx.Err() == nil {
		el := min(time.Since(start), d)
		want := int64(rate * el.Seconds())
		if back := want - scheduled; back > maxBacklog {
			out.dropped += back - maxBacklog
			scheduled = want - maxBacklog
		}
		for ; scheduled < want; scheduled++ {
			i := int(produced)
			produced++
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: keyBytes[i%keys], Value: value(topic, i, size, pool)}, promise)
		}
		if el >= d {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	out.seconds = time.Since(start).Seconds()
	if err := cl.Flush(ctx); err != nil {
		out.err = err
	}
	out.acked = acked.Load()
	out.acks = histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
	for i := range inBucket {
		out.acks.count += inBucket[i].Load()
		out.acks.counts[i] = out.acks.count
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		out.err = firstErr
	}
	return out
}

// histogram is a cumulative Prometheus histogram: counts[i] samples at or below bounds[i]; the
// last bound is +Inf.
type histogram struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
}

// scrapeLatency reads ferry's /metrics and returns the latency histogram of stream, summed over
// its timestamp types (benchrun's records are all CreateTime). A histogram not yet exported is
// empty.
func scrapeLatency(ctx context.Context, addr, stream string) (histogram, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return histogram{}, fmt.Errorf("scrape ferry's metrics: %w", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return histogram{}, fmt.Errorf("parse ferry's metrics: %w", err)
	}
	return latencyOf(mfs[latencyMetric], stream)
}

func latencyOf(mf *dto.MetricFamily, stream string) (histogram, error) {
	var h histogram
	if mf == nil {
		return h, nil
	}
	for _, m := range mf.GetMetric() {
		if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "stream" && l.GetValue() == stream }) {
			continue
		}
		mh := m.GetHistogram()
		bounds := make([]float64, 0, len(mh.GetBucket())+1)
		counts := make([]uint64, 0, len(mh.GetBucket())+1)
		for _, bk := range mh.GetBucket() {
			bounds = append(bounds, bk.GetUpperBound())
			counts = append(counts, bk.GetCumulativeCount())
		}
		if len(bounds) == 0 || !math.IsInf(bounds[len(bounds)-1], 1) {
			bounds = append(bounds, math.Inf(1))
			counts = append(counts, mh.GetSampleCount())
		}
		if h.bounds == nil {
			h.bounds, h.counts = bounds, make([]uint64, len(counts))
		} else if !slices.Equal(h.bounds, bounds) {
			return h, fmt.Errorf("%s: series with different buckets", latencyMetric)
		}
		for i, c := range counts {
			h.counts[i] += c
		}
		h.count += mh.GetSampleCount()
		h.sum += mh.GetSampleSum()
	}
	return h, nil
}

// sub returns h minus an earlier scrape of the same histogram (empty if it was not exported yet).
func (h histogram) sub(earlier histogram) histogram {
	out := histogram{bounds: h.bounds, counts: slices.Clone(h.counts), count: h.count, sum: h.sum}
	if earlier.bounds == nil {
		return out
	}
	for i := range out.counts {
		out.counts[i] -= earlier.counts[i]
	}
	out.count -= earlier.count
	out.sum -= earlier.sum
	return out
}

// quantile estimates the q-quantile as PromQL's histogram_quantile does: find the bucket that
// holds the sample of rank q × count and interpolate linearly within it, from the previous bound
// (0 for the first bucket) to its own. A quantile in the +Inf bucket is the highest finite bound.
// The estimate is only as fine as the buckets (ferry's grow 1.5× each).
func (h histogram) quantile(q float64) float64 {
	n := len(h.counts)
	if n < 2 || h.counts[n-1] == 0 {
		return math.NaN()
	}
	rank := q * float64(h.counts[n-1])
	b, _ := slices.BinarySearchFunc(h.counts[:n-1], rank, func(c uint64, r float64) int {
		if float64(c) >= r {
			return 1 // at or past the first bucket with count >= rank
		}
		return -1
	})
	if b == n-1 {
		return h.bounds[n-2]
	}
	if b == 0 && h.bounds[0] <= 0 {
		return h.bounds[0]
	}
	lo, below := 0.0, 0.0
	if b > 0 {
		lo, below = h.bounds[b-1], float64(h.counts[b-1])
	}
	in := float64(h.counts[b]) - below
	return lo + (h.bounds[b]-lo)*(rank-below)/in
}

// maxLE is the upper bound of the highest bucket with a sample (+Inf if one is above the last
// finite bound; NaN if empty).
func (h histogram) maxLE() float64 {
	for i := range h.counts {
		if h.counts[i] == h.count && h.count > 0 {
			return h.bounds[i]
		}
	}
	return math.NaN()
}
