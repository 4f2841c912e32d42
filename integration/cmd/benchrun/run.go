package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/aggregation"
	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// topic is a produced topic and its end offsets.
type topic struct {
	name string
	n    int
	ends map[int32]int64
}

type bench struct {
	o                        options
	repo, dir                string
	ferryBin, sinkBin, self  string
	brokers                  []string
	adm                      *kadm.Client
	kin                      *harness.Kinesis
	kc                       *kinesis.Client
	topics                   map[string]*topic // by variant dest: sink, kinesalite
	started                  time.Time
	kafkaVersion, kinesalite string
	loadStart, loadEnd       string  // /proc/loadavg: the machine may be shared
	latRate                  float64 // records/s of the latency runs (0 until known)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// result is one run of one variant.
type result struct {
	variant    string
	run        int
	records    int     // records to move
	seconds    float64 // start to done
	delivered  float64 // ferry into the fast sink: start until the sink had every record; 0 if not measured
	steady     float64 // records/s after the first 2 s; 0 if not measured
	cpu        float64 // CPU-seconds of the measured process
	rssKiB     int64
	dups       int64
	distinct   int64 // -1: not checked (consume-only)
	na         string
	err        string
	notes      []string
	kinesisRec int64 // Kinesis records the destination took (aggregates count once)
	lat        *latencyResult
}

func (r result) perSec() float64 {
	if r.seconds <= 0 {
		return 0
	}
	return float64(r.records) / r.seconds
}

func run(ctx context.Context, o options) (err error) {
	if o.records <= 0 || o.klRecords <= 0 || o.runs <= 0 || o.partitions <= 0 || o.keys <= 0 || o.valueSize < 32 || o.shards <= 0 {
		return errors.New("-records, -kinesalite-records, -runs, -partitions, -keys and -shards must be positive, -value-size at least 32")
	}
	if o.latRate < 0 || o.latFraction <= 0 || o.latDuration <= 0 || o.latWarmup < 0 || o.latWarmup >= o.latDuration {
		return errors.New("-latency-rate must not be negative, -latency-fraction and -latency-duration must be positive, -latency-warmup shorter than -latency-duration")
	}
	variants, err := selectVariants(o)
	if err != nil {
		return err
	}
	repo, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ferry-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || o.keep {
			fmt.Fprintf(os.Stderr, "benchrun: logs and data kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b := &bench{o: o, repo: repo, dir: dir, self: self, topics: map[string]*topic{}, started: time.Now(), loadStart: loadAvg()}
	logf("working folder %s", dir)

	logf("building the fast sink and ferry")
	b.ferryBin = filepath.Join(dir, "ferry")
	b.sinkBin = filepath.Join(dir, "fastsink")
	if o.ferryBin != "" {
		if b.ferryBin, err = filepath.Abs(o.ferryBin); err != nil {
			return err
		}
	} else if err := goBuild(ctx, repo, b.ferryBin, "./cmd/ferry"); err != nil {
		return err
	}
	if err := goBuild(ctx, repo, b.sinkBin, "./integration/cmd/fastsink"); err != nil {
		return err
	}

	logf("starting Kafka")
	k, err := harness.StartKafka(ctx, filepath.Join(dir, "kafka"))
	if err != nil {
		return err
	}
	defer k.Close()
	b.brokers = k.Brokers()
	b.kafkaVersion = kafkaVersion(repo)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	b.adm = kadm.NewClient(cl)

	needs := map[string]bool{}
	for _, v := range variants {
		if v.kind != "latency" { // each latency run makes its own topic
			needs[v.dest] = true
		}
	}
	if needs["kinesalite"] {
		logf("starting kinesalite")
		kin, err := harness.StartKinesis(ctx, harness.KindKinesalite, filepath.Join(dir, "kinesalite"))
		if err != nil {
			return err
		}
		defer kin.Stop()
		b.kin, b.kc = kin, harness.NewKinesisClient(kin.Endpoint())
		b.kinesalite = npmVersion(repo, "kinesalite")
	}
	tag := strconv.Itoa(rand.IntN(1e6))
	for _, dest := range []string{"sink", "kinesalite"} {
		if !needs[dest] {
			continue
		}
		t := &topic{name: "bench-" + tag, n: o.records}
		if dest == "kinesalite" {
			t = &topic{name: "bench-kinesalite-" + tag, n: o.klRecords}
		}
		t0 := time.Now()
		if err := harness.CreateTopic(ctx, b.brokers, t.name, int32(o.partitions)); err != nil {
			return err
		}
		if err := produce(ctx, b.brokers, t.name, t.n, o.keys, o.valueSize); err != nil {
			return err
		}
		if t.ends, err = b.endOffsets(ctx, t.name); err != nil {
			return err
		}
		var sum int64
		for _, e := range t.ends {
			sum += e
		}
		if sum != int64(t.n) {
			return fmt.Errorf("topic %s: end offsets sum to %d, produced %d", t.name, sum, t.n)
		}
		el := time.Since(t0)
		logf("produced %d records of %d bytes to %s (%d partitions) in %.1fs (%.0f records/s)",
			t.n, o.valueSize, t.name, o.partitions, el.Seconds(), float64(t.n)/el.Seconds())
		b.topics[dest] = t
	}

	// Warm up, off the record: the first group creates __consumer_offsets (about a second), and a
	// first read of each topic warms the broker and the page cache.
	for _, dest := range []string{"sink", "kinesalite"} {
		if t := b.topics[dest]; t != nil {
			var res result
			if err := b.runConsume(ctx, t, "warmup-"+dest+"-"+tag, &res); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
			logf("warm-up: consumed %s in %.2fs", t.name, res.seconds)
		}
	}

	// The latency variants come after every run of the others: they need ferry/key's median rate.
	var throughput, latency []variant
	for _, v := range variants {
		if v.kind == "latency" {
			latency = append(latency, v)
		} else {
			throughput = append(throughput, v)
		}
	}
	var results []result
	for _, vs := range [][]variant{throughput, latency} {
		if len(vs) > 0 && vs[0].kind == "latency" {
			b.latRate = o.latRate
			if b.latRate == 0 {
				b.latRate = o.latFraction * maxRate(results)
			}
			logf("latency runs at %s records/s for %v each", fmtInt(b.latRate), o.latDuration)
		}
		for r := 1; r <= o.runs; r++ {
			for _, v := range vs {
				if err := ctx.Err(); err != nil {
					return err
				}
				res := b.runVariant(ctx, v, r)
				if err := ctx.Err(); err != nil {
					return err
				}
				printRun(res)
				results = append(results, res)
			}
		}
	}
	b.loadEnd = loadAvg()
	rows := summarize(variants, results)
	fmt.Println()
	fmt.Print(textTable(rows, o.valueSize))
	if o.writeDoc {
		p := o.doc
		if !filepath.IsAbs(p) {
			p = filepath.Join(repo, p)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(b.document(rows, results)), 0o644); err != nil {
			return err
		}
		logf("wrote %s", p)
	}
	for _, res := range results {
		if res.err != "" {
			return fmt.Errorf("%d run(s) failed, e.g. %s run %d: %s", countFailed(results), res.variant, res.run, res.err)
		}
	}
	return nil
}

func countFailed(rs []result) int {
	n := 0
	for _, r := range rs {
		if r.err != "" {
			n++
		}
	}
	return n
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s benchrun: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func goBuild(ctx context.Context, repo, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = repo
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
	}
	return nil
}

// produce writes n records to topic asynchronously in large batches: key "key-(i mod keys)",
// value a JSON object {"id":"key-N","v":"topic|i|..."} padded with random letters to size bytes
// (JSON so that the json: key variant has a field to read), no compression.
func produce(ctx context.Context, brokers []string, topic string, n, keys, size int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(200_000),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordRetries(10))
	if err != nil {
		return err
	}
	defer cl.Close()
	pool := randomLetters(max(64<<10, 2*size))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		key := "key-" + strconv.Itoa(i%keys)
		rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: jsonValue(key, topic, i, size, pool)}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("produce to %s: %w", topic, firstErr)
	}
	return ctx.Err()
}

func (b *bench) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	resp, err := b.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

func (b *bench) runVariant(ctx context.Context, v variant, run int) result {
	ctx, cancel := context.WithTimeout(ctx, b.o.runTimeout)
	defer cancel()
	id := strings.NewReplacer("/", "-", "+", "-").Replace(v.id) + "-r" + strconv.Itoa(run) + "-" + strconv.Itoa(rand.IntN(1e6))
	if v.kind == "latency" {
		res := result{variant: v.id, run: run, distinct: -1}
		if err := b.runLatency(ctx, v, id, &res); err != nil && res.na == "" {
			res.err = err.Error()
		}
		return res
	}
	t := b.topics[v.dest]
	res := result{variant: v.id, run: run, records: t.n, distinct: -1}
	var err error
	switch v.kind {
	case "consume":
		err = b.runConsume(ctx, t, id, &res)
	case "sdk":
		err = b.runSDK(ctx, v, t, id, &res)
	case "ferry":
		err = b.runFerry(ctx, v, t, id, &res)
	}
	if err != nil && res.na == "" {
		res.err = err.Error()
	}
	return res
}

// destination is where a sdk or ferry run writes: a fresh fast sink process, or a fresh stream
// on kinesalite.
type destination struct {
	b        *bench
	dest     string
	endpoint string
	stream   string
	sink     *proc
}

func (b *bench) newDestination(ctx context.Context, v variant, id string) (*destination, error) {
	d := &destination{b: b, dest: v.dest}
	switch v.dest {
	case "sink":
		shards := b.o.shards
		if v.defaults {
			shards = b.o.defaultsShards
		}
		args := []string{"-shards", strconv.Itoa(shards)}
		if v.agg {
			args = append(args, "-kpl")
		}
		if v.throttle > 0 {
			args = append(args, "-throttle-every", strconv.Itoa(v.throttle))
		}
		p, err := startProc("fastsink", filepath.Join(b.dir, "fastsink-"+id+".log"), b.sinkBin, args, nil, true)
		if err != nil {
			return nil, err
		}
		d.sink = p
		line, err := firstLine(ctx, p, 30*time.Second)
		if err != nil {
			p.kill()
			return nil, fmt.Errorf("fast sink: %w", err)
		}
		d.endpoint, d.stream = line, "bench"
	case "kinesalite":
		d.endpoint, d.stream = b.kin.Endpoint(), "bench-"+id
		if err := harness.CreateStream(ctx, b.kc, d.stream, int32(b.o.shards)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// sinkStats mirrors the fast sink command's Stats.
type sinkStats struct {
	Records, Duplicates, Distinct, LimitViolations, PutRecordsRequests int64
	Aggregated, BadAggregates                                          int64
	UserRecords, UserDistinct, UserDuplicates                          int64
}

// verify fills in the duplicates, the distinct count and the Kinesis record count, and releases
// the destination (stops the sink, deletes the stream).
func (d *destination) verify(ctx context.Context, res *result) (aggregated int64, err error) {
	switch d.dest {
	case "sink":
		defer d.sink.kill()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.endpoint+"/stats", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, fmt.Errorf("sink stats: %w", err)
		}
		defer resp.Body.Close()
		var st sinkStats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return 0, fmt.Errorf("sink stats: %w", err)
		}
		_, _ = d.sink.stop(5 * time.Second)
		res.dups, res.distinct, res.kinesisRec = st.UserDuplicates, st.UserDistinct, st.Records
		if st.LimitViolations > 0 || st.BadAggregates > 0 {
			res.notes = append(res.notes, fmt.Sprintf("%d requests over a Kinesis limit, %d bad aggregates", st.LimitViolations, st.BadAggregates))
		}
		res.notes = append(res.notes, fmt.Sprintf("%d PutRecords", st.PutRecordsRequests))
		return st.Aggregated, nil
	default:
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = d.b.kc.DeleteStream(dctx, &kinesis.DeleteStreamInput{StreamName: aws.String(d.stream)})
		}()
		recs, err := harness.ReadAll(ctx, d.b.kc, d.stream)
		if err != nil {
			return 0, err
		}
		seen := map[string]int{}
		for _, r := range recs {
			if aggregation.IsAggregated(r.Data) {
				aggregated++
				users, err := aggregation.Deaggregate(r.Data, r.PartitionKey)
				if err != nil {
					return aggregated, fmt.Errorf("read back: %w", err)
				}
				for _, u := range users {
					seen[string(userID(u.Data))]++
				}
				continue
			}
			seen[string(userID(r.Data))]++
		}
		res.distinct, res.kinesisRec = int64(len(seen)), int64(len(recs))
		for _, c := range seen {
			res.dups += int64(c - 1)
		}
		return aggregated, nil
	}
}

func (d *destination) release() {
	if d.sink != nil {
		d.sink.kill()
	}
}

// firstLine waits for the first stdout line of p.
func firstLine(ctx context.Context, p *proc, timeout time.Duration) (string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			code, _ := p.wait(5 * time.Second)
			return "", fmt.Errorf("%s exited (%d) without output; last lines:\n%s", p.name, code, p.tail(20))
		}
		return line, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(timeout):
		return "", fmt.Errorf("%s printed nothing within %v", p.name, timeout)
	}
}

// runChild runs benchrun itself in a child mode and returns its report and the time from the
// start to the report's arrival.
func (b *bench) runChild(ctx context.Context, name, id string, args []string) (childReport, time.Duration, error) {
	var rep childReport
	t0 := time.Now()
	p, err := startProc(name, filepath.Join(b.dir, name+"-"+id+".log"), b.self, args, nil, true)
	if err != nil {
		return rep, 0, err
	}
	defer p.kill()
	line, err := firstLine(ctx, p, b.o.runTimeout)
	el := time.Since(t0)
	if err != nil {
		return rep, 0, err
	}
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		return rep, 0, fmt.Errorf("%s: bad report %q: %w", name, line, err)
	}
	if code, err := p.wait(30 * time.Second); err != nil || code != 0 {
		return rep, 0, fmt.Errorf("%s exited %d (%w); last lines:\n%s", name, code, err, p.tail(20))
	}
	return rep, el, nil
}

func (b *bench) runConsume(ctx context.Context, t *topic, id string, res *result) error {
	rep, el, err := b.runChild(ctx, "consume", id, []string{"-mode", "consume",
		"-brokers", strings.Join(b.brokers, ","), "-topic", t.name, "-group", "bench-" + id, "-n", strconv.Itoa(t.n)})
	if err != nil {
		return err
	}
	res.seconds, res.steady, res.cpu, res.rssKiB = el.Seconds(), rep.SteadyPerSec, rep.CPUSeconds, rep.PeakRSSKiB
	if rep.Records != int64(t.n) {
		res.notes = append(res.notes, fmt.Sprintf("consumed %d", rep.Records))
	}
	return nil
}

func (b *bench) runSDK(ctx context.Context, v variant, t *topic, id string, res *result) error {
	d, err := b.newDestination(ctx, v, id)
	if err != nil {
		return err
	}
	defer d.release()
	rep, el, err := b.runChild(ctx, "sdk", id, []string{"-mode", "sdk",
		"-endpoint", d.endpoint, "-stream", d.stream, "-prefix", "sdk-" + id, "-n", strconv.Itoa(t.n),
		"-keys", strconv.Itoa(b.o.keys), "-value-size", strconv.Itoa(b.o.valueSize),
		"-sdk-concurrency", strconv.Itoa(b.o.sdkConcurrency), "-sdk-batch", strconv.Itoa(b.o.sdkBatch)})
	if err != nil {
		return err
	}
	res.seconds, res.steady, res.cpu, res.rssKiB = el.Seconds(), rep.SteadyPerSec, rep.CPUSeconds, rep.PeakRSSKiB
	if rep.Errors > 0 || rep.FailedEntries > 0 {
		res.notes = append(res.notes, fmt.Sprintf("%d failed calls, %d failed entries (not re-sent), first error: %s",
			rep.Errors, rep.FailedEntries, rep.FirstError))
	}
	if _, err := d.verify(ctx, res); err != nil {
		return err
	}
	if res.distinct != int64(t.n) && rep.Errors == 0 && rep.FailedEntries == 0 {
		return fmt.Errorf("the destination has %d distinct records of %d", res.distinct, t.n)
	}
	return nil
}

// ferryConfig writes ferry's configuration for one run. linger is delivery.batch.linger; ""
// leaves ferry's default.
func (b *bench) ferryConfig(v variant, id string, t *topic, group, endpoint, stream, linger string) (string, error) {
	batch := ""
	if linger != "" {
		batch = fmt.Sprintf("\n  batch: {linger: %s}", linger)
	}
	route := ""
	if v.route != "" {
		route = "\n    " + v.route
	}
	// ferry/defaults sets only what a new user must: brokers, topics, the route and the endpoint
	// (the group comes by --set, see runFerry).
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  topics: [%q]
kinesis:
  region: us-east-1
  endpoint: %s
  access_key_id: bench
  secret_access_key: bench
routes:
  - topics: [%q]
    stream: %s%s
`, b.brokers[0], t.name, endpoint, t.name, stream, route)
	if !v.defaults {
		cfg = strings.Replace(cfg, "kafka:\n", "kafka:\n  group: "+group+"\n", 1) + fmt.Sprintf(`delivery:
  max_in_flight: %d%s
  buffer_bytes: %s
commit:
  interval: %s
observability:
  listen: "127.0.0.1:0"
  log_level: info
  log_format: json
`, b.o.maxInFlight, batch, b.o.bufferBytes, b.o.commitInterval)
	}
	p := filepath.Join(b.dir, "ferry-"+id+".yaml")
	return p, os.WriteFile(p, []byte(cfg), 0o600)
}

// ferryEnv is benchrun's environment without FERRY_* variables (ferry refuses unknown ones and
// would take known ones over the file).
func ferryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FERRY_") {
			env = append(env, kv)
		}
	}
	return env
}

func (b *bench) runFerry(ctx context.Context, v variant, t *topic, id string, res *result) error {
	d, err := b.newDestination(ctx, v, id)
	if err != nil {
		return err
	}
	defer d.release()
	group := "bench-" + id
	cfg, err := b.ferryConfig(v, id, t, group, d.endpoint, d.stream, b.o.linger.String())
	if err != nil {
		return err
	}
	args := []string{"run", "--config", cfg, "--set", "delivery.ordering=" + v.ordering,
		"--set", "delivery.rate_limit.enabled=" + strconv.FormatBool(b.o.rateLimit)}
	if v.defaults {
		// The group is ferry's default; benchrun still needs its own per run, and the listener
		// must not collide with a port in use.
		args = []string{"run", "--config", cfg, "--set", "kafka.group=" + group, "--set", "observability.listen=127.0.0.1:0"}
		for _, s := range v.sets {
			args = append(args, "--set", s)
		}
	}
	if v.agg {
		args = append(args, "--set", "delivery.aggregation.enabled=true")
	}
	t0 := time.Now()
	p, err := startProc("ferry", filepath.Join(b.dir, "ferry-"+id+".log"), b.ferryBin, args, ferryEnv(), false)
	if err != nil {
		return err
	}
	defer p.kill()
	progress := ""
	if d.sink != nil {
		progress = d.endpoint + "/progress"
	}
	el, steady, delivered, err := b.waitCommitted(ctx, group, t, p, t0, progress)
	if err != nil {
		if diag := b.diagnose(p, d, id); diag != "" {
			err = fmt.Errorf("%w (%s)", err, diag)
		}
		if p.exited() {
			code, _ := p.wait(time.Second)
			if v.agg && code == 3 {
				res.na = "ferry rejects delivery.aggregation.enabled: " + lastLine(p.tail(5))
				return err
			}
			return fmt.Errorf("ferry exited %d; last lines:\n%s", code, p.tail(20))
		}
		return err
	}
	u, uerr := readUsage(p.pid())
	if uerr != nil {
		return fmt.Errorf("ferry usage: %w", uerr)
	}
	res.seconds, res.steady, res.cpu, res.rssKiB = el.Seconds(), steady, u.cpu, u.hwmKiB
	res.delivered = delivered.Seconds()
	code, err := p.stop(60 * time.Second)
	if err != nil || code != 0 {
		res.notes = append(res.notes, fmt.Sprintf("ferry exited %d on SIGTERM (%v)", code, err))
	}
	aggregated, err := d.verify(ctx, res)
	if err != nil {
		return err
	}
	if v.agg && aggregated == 0 {
		res.na = "ferry ignores delivery.aggregation.enabled (no aggregated record reached Kinesis)"
	}
	if v.agg && aggregated > 0 {
		res.notes = append(res.notes, fmt.Sprintf("%d aggregated Kinesis records", aggregated))
	}
	if res.distinct != int64(t.n) {
		return fmt.Errorf("the destination has %d distinct records of %d", res.distinct, t.n)
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// waitCommitted polls the group's committed offsets every 50 ms until they reach the topic's end
// offsets and returns the time since t0 and the steady-state rate (records committed after the
// first sample at or past 2 s, over the time since that sample; 0 if under 1 s remained). With a
// progress URL (the fast sink's /progress) it also returns when the sink had all the records.
func (b *bench) waitCommitted(ctx context.Context, group string, t *topic, p *proc, t0 time.Time, progress string) (el time.Duration, steady float64, delivered time.Duration, err error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var t2 time.Duration
	var c2 int64
	var last map[int32]int64
	for {
		select {
		case <-ctx.Done():
			return 0, 0, 0, fmt.Errorf("committed offsets %v did not reach %v: %w", last, t.ends, ctx.Err())
		case <-p.done:
			return 0, 0, 0, errors.New("ferry exited before committing everything")
		case <-tick.C:
		}
		if progress != "" && delivered == 0 && sinkRecords(ctx, progress) >= int64(t.n) {
			delivered = time.Since(t0)
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := b.adm.FetchOffsets(qctx, group)
		cancel()
		now := time.Since(t0)
		if err != nil {
			continue // the group may not exist yet
		}
		var sum int64
		done := true
		last = map[int32]int64{}
		for part, end := range t.ends {
			at := int64(0)
			if o, ok := resp.Lookup(t.name, part); ok && o.Err == nil && o.At > 0 {
				at = o.At
			}
			last[part] = at
			sum += at
			done = done && at >= end
		}
		if t2 == 0 && now >= steadyAfter {
			t2, c2 = now, sum
		}
		if done {
			if t2 > 0 && now-t2 >= time.Second {
				steady = float64(int64(t.n)-c2) / (now - t2).Seconds()
			}
			if progress != "" && delivered == 0 {
				delivered = now // reached between two polls
			}
			return now, steady, delivered, nil
		}
	}
}

// sinkRecords asks the fast sink how many user records it accepted (0 on error).
func sinkRecords(ctx context.Context, url string) int64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var p struct{ UserRecords int64 }
	if json.NewDecoder(resp.Body).Decode(&p) != nil {
		return 0
	}
	return p.UserRecords
}

// kafkaVersion is the version of the broker jars (kafka_2.13-VERSION.jar).
func kafkaVersion(repo string) string {
	cache := os.Getenv("FERRY_TEST_CACHE")
	if cache == "" {
		cache = filepath.Join(repo, ".cache")
	}
	jars, _ := filepath.Glob(filepath.Join(cache, "kafka", "libs", "kafka_2.13-*.jar"))
	for _, j := range jars {
		return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(j), "kafka_2.13-"), ".jar")
	}
	return "unknown"
}

func npmVersion(repo, pkg string) string {
	var p struct{ Version string }
	b, err := os.ReadFile(filepath.Join(repo, "node_modules", pkg, "package.json"))
	if err == nil && json.Unmarshal(b, &p) == nil && p.Version != "" {
		return p.Version
	}
	return "unknown"
}

// diagnose saves what a stalled ferry run leaves to look at: ferry's /metrics (its address is in
// the log line "serving health and metrics") and the fast sink's stats, next to ferry's log.
func (b *bench) diagnose(p *proc, d *destination, id string) string {
	get := func(url string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return body
	}
	var saved []string
	if !p.exited() {
		if addr := metricsAddr(p.logPath); addr != "" {
			if m := get("http://" + addr + "/metrics"); m != nil {
				path := filepath.Join(b.dir, "ferry-"+id+".metrics")
				if os.WriteFile(path, m, 0o644) == nil {
					saved = append(saved, path)
				}
			}
		}
	}
	if d.sink != nil {
		if st := get(d.endpoint + "/stats"); st != nil {
			saved = append(saved, "sink stats "+strings.TrimSpace(string(st)))
		}
	}
	return strings.Join(saved, "; ")
}
