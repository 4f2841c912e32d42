//go:build integration

// The end-to-end suite: the ferry binary against a real Apache Kafka broker
// and a real Kinesis emulator (kinesis-mock for API fidelity, kinesalite for
// volume), with the fault proxy in between. Every assertion is on what was
// read back from the emulator, against the offsets Kafka acknowledged.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/faultproxy"
	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/integration/internal/history"
)

func TestMain(m *testing.M) { harness.Main(m) }

// scale multiplies record counts (FERRY_TEST_SCALE, default 1).
func scale(n int) int {
	if f, err := strconv.ParseFloat(os.Getenv("FERRY_TEST_SCALE"), 64); err == nil && f > 0 {
		return max(1, int(float64(n)*f))
	}
	return n
}

// env is one test's view of the services: the Kafka broker, an emulator,
// a fault proxy in front of it and the ferry binary.
type env struct {
	t       testing.TB
	kafka   *harness.Kafka
	brokers []string
	kin     *harness.Kinesis
	kc      *kinesis.Client // straight to the emulator, for setup and read-back
	proxy   *faultproxy.Proxy
	bin     string
	name    string
	topics  []string
	stream  string
	group   string
	rec     *recorder // set by record()
}

// newEnv prepares topics (each with partitions partitions) and a stream
// with shards shards on the shared broker and the emulator of kind.
func newEnv(t testing.TB, kind string, topics int, partitions, shards int32) *env {
	t.Helper()
	k, err := harness.SharedKafka(t.Context())
	harness.Require(t, err)
	return newEnvOn(t, k, kind, topics, partitions, shards)
}

func newEnvOn(t testing.TB, k *harness.Kafka, kind string, topics int, partitions, shards int32) *env {
	t.Helper()
	kin, err := harness.SharedKinesis(t.Context(), kind)
	harness.Require(t, err)
	proxy, err := faultproxy.New(kin.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + strconv.Itoa(rand.IntN(1e6))
	e := &env{
		t: t, kafka: k, brokers: k.Brokers(), kin: kin, kc: harness.NewKinesisClient(kin.Endpoint()),
		proxy: proxy, bin: harness.BuildBinary(t, "./cmd/ferry"), name: name,
		stream: name, group: "ferry-" + name,
	}
	for i := range topics {
		topic := fmt.Sprintf("%s.t%d", name, i)
		if err := harness.CreateTopic(t.Context(), e.brokers, topic, partitions); err != nil {
			t.Fatal(err)
		}
		e.topics = append(e.topics, topic)
	}
	if err := harness.CreateStream(t.Context(), e.kc, e.stream, shards); err != nil {
		t.Fatal(err)
	}
	return e
}

// produce writes n records spread over the env's topics, keyed with one of
// keys keys; each value starts with "topic|index|" so that what is read
// back identifies the Kafka record it came from.
func (e *env) produce(n, keys, valueSize int) []harness.Produced {
	e.t.Helper()
	return e.produceFrom(0, n, keys, valueSize)
}

// config writes a ferry configuration for this env and returns its path.
// Extra YAML is appended under delivery (indented by the caller).
func (e *env) config(extraDelivery string) string {
	e.t.Helper()
	topics, _ := json.Marshal(e.topics)
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  group: %s
  topics: %s
  session_timeout: 6s
  rebalance_timeout: 20s
kinesis:
  region: us-east-1
  endpoint: %s
  access_key_id: test
  secret_access_key: test
routes:
  - topics: %s
    stream: %s
delivery:
  batch: {linger: 20ms}
  retry: {initial: 50ms, max: 1s}
  drain_timeout: 10s
  request_timeout: 10s
  # The emulators have no shard limits; pacing at 1,000 records/s per shard
  # would only slow the suite. Tests that check pacing turn it back on.
  rate_limit: {enabled: false}
%scommit:
  interval: 200ms
observability:
  listen: "127.0.0.1:0"
  log_level: debug
  log_format: json
`, e.brokers[0], e.group, topics, e.proxy.URL(), topics, e.stream, extraDelivery)
	path := filepath.Join(e.t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// withRoutes rewrites the routes of an env config with routes (YAML list
// items, indented by two spaces).
func (e *env) withRoutes(cfgPath, routes string) string {
	e.t.Helper()
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "routes:\n")
	end := strings.Index(s, "delivery:\n")
	if start < 0 || end < start {
		e.t.Fatalf("no routes section in %s", cfgPath)
	}
	s = s[:start] + "routes:\n" + routes + s[end:]
	if err := os.WriteFile(cfgPath, []byte(s), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return cfgPath
}

// route is the env's own route (its topics into its stream) with extra
// lines indented by four spaces, for withRoutes.
func (e *env) route(extra string) string {
	topics, _ := json.Marshal(e.topics)
	return fmt.Sprintf("  - topics: %s\n    stream: %s\n%s", topics, e.stream, extra)
}

// start runs `ferry run` with the config; the process is killed at cleanup.
func (e *env) start(cfgPath, name string, sets ...string) *harness.Process {
	e.t.Helper()
	args := []string{"run", "--config", cfgPath}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return startFerry(e.t, e.bin, args, os.Environ(), name)
}

// startFerry runs the ferry binary with args and env, logging to name.log;
// the process is killed at cleanup, and its last lines are logged if the
// test failed.
func startFerry(t testing.TB, bin string, args, env []string, name string) *harness.Process {
	t.Helper()
	p, err := harness.Start(t.Context(), bin, args, env, filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", name, p.Tail())
		}
	})
	return p
}

// committed sums the group's committed offsets over the env's topics.
func (e *env) committed() map[string]map[int32]int64 {
	e.t.Helper()
	out := map[string]map[int32]int64{}
	for _, topic := range e.topics {
		c, err := harness.CommittedOffsets(e.t.Context(), e.brokers, e.group, topic)
		if err != nil {
			e.t.Fatalf("committed offsets: %v", err)
		}
		out[topic] = c
	}
	return out
}

func total(offs map[string]map[int32]int64) int64 {
	var n int64
	for _, ps := range offs {
		for _, o := range ps {
			n += o
		}
	}
	return n
}

// waitCommitted waits until the group has committed at least atLeast
// offsets in total, or (atLeast < 0) every partition's end offset.
func (e *env) waitCommitted(atLeast int64, timeout time.Duration, procs ...*harness.Process) {
	e.t.Helper()
	ends := map[string]map[int32]int64{}
	for _, topic := range e.topics {
		end, err := harness.EndOffsets(e.t.Context(), e.brokers, topic)
		if err != nil {
			e.t.Fatal(err)
		}
		ends[topic] = end
	}
	deadline := time.Now().Add(timeout)
	for {
		got := e.committed()
		if atLeast >= 0 && total(got) >= atLeast {
			return
		}
		if atLeast < 0 && offsetsReached(got, ends) {
			return
		}
		for _, p := range procs {
			if p.Exited() {
				e.t.Fatalf("ferry exited early; last lines:\n%s", p.Tail())
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("committed offsets %v did not reach %v (want %d) within %s", got, ends, atLeast, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func offsetsReached(got, want map[string]map[int32]int64) bool {
	for topic, ps := range want {
		for p, end := range ps {
			if got[topic][p] < end {
				return false
			}
		}
	}
	return true
}

// stop sends SIGTERM and expects a clean exit.
func (e *env) stop(p *harness.Process) {
	e.t.Helper()
	if err := p.Signal(syscallTERM); err != nil {
		e.t.Fatal(err)
	}
	code, err := p.Wait(90 * time.Second)
	if err != nil || code != 0 {
		e.t.Fatalf("ferry did not stop cleanly on SIGTERM: exit %d, %v; last lines:\n%s", code, err, p.Tail())
	}
}

// report is what came back from Kinesis, set against what Kafka acknowledged.
type report struct {
	produced int
	read     int
	lost     []harness.Produced
	dups     map[int]int // index in produced -> times seen, for records seen more than once
	all      []harness.Produced
	badKeys  []string
}

func (r report) String() string {
	return fmt.Sprintf("produced %d, read %d, lost %d, duplicated %d, wrong partition keys %d",
		r.produced, r.read, len(r.lost), len(r.dups), len(r.badKeys))
}

// readBack reads the whole stream and matches every record to the Kafka
// record it came from.
func (e *env) readBack(produced []harness.Produced) report {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 3*time.Minute)
	defer cancel()
	recs, err := harness.ReadAll(ctx, e.kc, e.stream)
	if err != nil {
		e.t.Fatalf("read back: %v", err)
	}
	byValue := make(map[string]int, len(produced)) // "topic|i|" -> index in produced
	for i, p := range produced {
		byValue[valueID(p.Value)] = i
	}
	seen := make([]int, len(produced))
	r := report{produced: len(produced), read: len(recs), dups: map[int]int{}, all: produced}
	for _, rec := range recs {
		i, ok := byValue[valueID(rec.Data)]
		if !ok {
			e.t.Fatalf("read a record that was never produced: %.40q", rec.Data)
		}
		seen[i]++
		if want := string(produced[i].Key); rec.PartitionKey != want {
			r.badKeys = append(r.badKeys, fmt.Sprintf("%s: %q != %q", valueID(rec.Data), rec.PartitionKey, want))
		}
	}
	for i, n := range seen {
		switch {
		case n == 0:
			r.lost = append(r.lost, produced[i])
		case n > 1:
			r.dups[i] = n
		}
	}
	e.t.Logf("read back: %s", r)
	return r
}

// valueID is the "topic|index|" prefix of a produced value.
func valueID(v []byte) string { return history.DefaultID(v) }

// assertNoLoss fails the test on lost records or wrong partition keys.
func assertNoLoss(t *testing.T, r report) {
	t.Helper()
	if len(r.lost) > 0 {
		t.Errorf("%d records lost, e.g. %s/%d@%d", len(r.lost), r.lost[0].Topic, r.lost[0].Partition, r.lost[0].Offset)
	}
	if len(r.badKeys) > 0 {
		t.Errorf("%d records with a wrong partition key, e.g. %s", len(r.badKeys), r.badKeys[0])
	}
}

// produceFrom is produce for the index range [from, to), so a test can
// produce in several rounds without reusing values.
func (e *env) produceFrom(from, to, keys, valueSize int) []harness.Produced {
	e.t.Helper()
	recs := e.records(from, to, keys, valueSize)
	ctx, cancel := context.WithTimeout(e.t.Context(), 2*time.Minute)
	defer cancel()
	out, err := harness.Produce(ctx, e.brokers, recs)
	if err != nil {
		e.t.Fatalf("produce: %v", err)
	}
	return out
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitLog waits until a log line with msg appears.
func waitLog(t *testing.T, path, msg string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		evs, _ := history.ReadLog(path)
		for _, ev := range evs {
			if ev.Msg == msg {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never logged %q", filepath.Base(path), msg)
}

func consumeTopic(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s", len(out), n, topic)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// httpGet fetches a path from a running ferry's health and metrics listener,
// whose address it reads from the log.
func httpGet(t *testing.T, p *harness.Process, path string) (int, string) {
	t.Helper()
	var addr string
	for _, line := range strings.Split(readFile(t, p.LogPath()), "\n") {
		var ev struct {
			Msg    string `json:"msg"`
			Listen string `json:"listen"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "serving health and metrics" {
			addr = ev.Listen
		}
	}
	if addr == "" {
		t.Fatal("ferry did not log its listen address")
	}
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the sum of a Prometheus metric's samples whose label set
// contains every given label (`name` alone sums all).
// metricLines is the exposition lines of metric name, for a failure message.
func metricLines(body, name string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func metric(body, name string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

func splitLines(s string) []string { return strings.Split(s, "\n") }

func sscanf(s, format string, args ...any) (int, error) { return fmt.Sscanf(s, format, args...) }

// records builds the test records of indexes [from, to): values start with
// "topic|index|", keys are "key-(index % keys)".
func (e *env) records(from, to, keys, valueSize int) []*kgo.Record {
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		topic := e.topics[i%len(e.topics)]
		v := fmt.Appendf(nil, "%s|%d|", topic, i)
		for len(v) < valueSize {
			v = append(v, 'x')
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "key-%d", i%keys), Value: v})
	}
	return recs
}
