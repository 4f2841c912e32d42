package connector

import (
	"context"

	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrylabs/ferry/config"
)

// A tombstone (null value) follows delivery.tombstones and never stalls its
// partition: before, it became an entry with nil Data that the SDK refused
// before sending, and the request was retried forever.
func TestTombstonePolicies(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"empty", "skip", "dlq"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			topic := "tombstones-" + policy
			brokers := startCluster(t, topic, 1)
			cl := producer(t, brokers, topic, policy == "dlq")
			recs := []*kgo.Record{
				{Key: []byte("a"), Value: []byte("a0")},
				{Key: []byte("a")}, // tombstone
				{Key: []byte("b"), Value: []byte("b2")},
				{Key: []byte("a"), Value: []byte("a3")},
				{Key: []byte("c")}, // tombstone, last of the partition
			}
			if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			kin := newFakeKinesis()
			cfg := testConfig(brokers, topic)
			cfg.Delivery.Tombstones = policy
			cfg.Delivery.DLQTopic = topic + "-dlq"
			c, stop := startConnector(t, cfg, kin)
			waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 5}, 20*time.Second)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			kin.mu.Lock()
			gotA, gotC := slices.Clone(kin.order["a"]), slices.Clone(kin.order["c"])
			kin.mu.Unlock()
			wantA, wantC := []string{"a0", "a3"}, []string(nil)
			if policy == "empty" {
				wantA, wantC = []string{"a0", "", "a3"}, []string{""}
			}
			if !slices.Equal(gotA, wantA) || !slices.Equal(gotC, wantC) {
				t.Fatalf("key a stored %q, key c %q; want %q and %q", gotA, gotC, wantA, wantC)
			}
			if got := testutil.ToFloat64(c.m.tombstones.WithLabelValues(topic, policy)); got != 2 {
				t.Fatalf("ferry_tombstones_total{policy=%q} = %v, want 2", policy, got)
			}
			if policy == "dlq" {
				dl := consumeAll(t, brokers, topic+"-dlq", 2)
				for _, r := range dl {
					h := map[string]string{}
					for _, kv := range r.Headers {
						h[kv.Key] = string(kv.Value)
					}
					if r.Value != nil || h[HeaderErrClass] != "tombstone" || h[HeaderTopic] != topic {
						t.Fatalf("dead-letter record %q=%q headers %v", r.Key, r.Value, h)
					}
				}
			}
		})
	}
}

// A request the SDK refuses before sending it (its parameter checks) was
// classified as an ambiguous network error and retried forever; nothing
// was sent, so it is fatal, and it names the cause.
func TestErrorsBeforeSendingAreFatal(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	kin, err := NewKinesisClient(t.Context(), config.Kinesis{Region: "us-east-1", Endpoint: srv.URL,
		AccessKeyID: "AKID", SecretAccessKey: "secret"}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kin.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k")}}})
	if err == nil {
		t.Fatal("PutRecords with nil Data succeeded")
	}
	if cls, code := classify(t.Context(), err); cls != classFatal || code != "invalid_request" {
		t.Fatalf("classify(%v) = %s %q, want fatal invalid_request", err, cls, code)
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests reached the server", hits.Load())
	}
}

// A dead-letter write still pending when the drain deadline passes is cut
// off by the shutdown: a graceful stop, with that record left uncommitted.
// Before, the failed write called fail and the stop exited 1.
func TestDeadLetterPendingAtShutdownStopsCleanly(t *testing.T) {
	t.Parallel()
	topic := "dlq-pending"
	cluster, brokers := kfakeCluster(t, topic, topic+"-dlq")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	cl := producer(t, brokers, topic, false)
	recs := []*kgo.Record{{Value: []byte("a")}, {Value: make([]byte, 2000)}, {Value: []byte("c")}}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// From now on every Produce is ferry's dead-letter write: hold it.
	held := make(chan struct{})
	var once sync.Once
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		once.Do(func() { close(held) })
		cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})
	cfg := testConfig(brokers, topic)
	cfg.Delivery.MaxRecordBytes = 1000
	cfg.Delivery.OnInvalid = "dlq"
	cfg.Delivery.DLQTopic = topic + "-dlq"
	cfg.Delivery.DrainTimeout = time.Second
	c, stop := startConnector(t, cfg, newFakeKinesis())
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the dead-letter write never reached the broker")
	}
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 1}, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("stop with a dead-letter write pending = %v, want a clean stop", err)
	}
	time.Sleep(200 * time.Millisecond) // a failed write's callback may run after Run returned
	if !c.Healthy() {
		t.Fatal("the cut-off dead-letter write made the connector fail")
	}
	if got := committed(t, brokers, cfg.Kafka.Group, topic); got[0] != 1 {
		t.Fatalf("committed %v, want 1: not past the record whose dead-letter write never finished", got)
	}
}

// on_offset_lost earliest|latest while records of the partition are still
// pending (throttled): the skip goes through ferry's own tracker. The
// commit never moves backwards (the old tracker's late marks sorted above
// the reset's epoch -1), the skipped range is counted once from where the
// commit stood, and the records dropped with the old tracker are neither
// sent nor leak budget bytes.
func TestOffsetLostWhileRecordsArePending(t *testing.T) {
	t.Parallel()
	topic := "offset-lost-pending"
	cluster, brokers := kfakeCluster(t, topic)
	produce(t, brokers, topic, 100, 10, 16)

	kin := newFakeKinesis()
	throttleFrom := throttleFrom(kin, 0)
	cfg := testConfig(brokers, topic)
	cfg.Kafka.OnOffsetLost = "earliest"
	cfg.Delivery.Retry = config.Retry{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond}
	c, stop := startConnector(t, cfg, kin, WithKafkaOpts(kgo.FetchMaxWait(200*time.Millisecond)))
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	sampled := sampleCommits(t, brokers, cfg.Kafka.Group, topic)

	waitFor(t, 20*time.Second, "all 100 records fetched", func() bool {
		return testutil.ToFloat64(c.m.consumed.WithLabelValues(topic)) == 100
	})
	// Hold the next fetch (at offset 100) while records 100..199 are
	// produced and 0..149 deleted: it then finds its offset out of range.
	armed, held, release := atomic.Bool{}, make(chan struct{}), make(chan struct{})
	armed.Store(true)
	cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if armed.CompareAndSwap(true, false) {
			close(held)
			cluster.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	<-held
	produceFrom(t, brokers, topic, 100, 200)
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: topic, Partition: 0, At: 150})
	if _, err := kadm.NewClient(adm).DeleteRecords(t.Context(), del); err != nil {
		t.Fatal(err)
	}
	adm.Close()
	close(release)
	waitFor(t, 20*time.Second, "the skip", func() bool {
		return testutil.ToFloat64(c.m.offsetsLost.WithLabelValues(topic)) > 0
	})
	throttleFrom.Store(1 << 40)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 200}, 20*time.Second)
	waitFor(t, 10*time.Second, "the budget released", func() bool { return c.buffered.Load() == 0 })

	if got := testutil.ToFloat64(c.m.offsetsLost.WithLabelValues(topic)); got != 150 {
		t.Errorf("ferry_offsets_lost_total = %v, want 150 (from the commit at 0 to the log start at 150)", got)
	}
	stored := kin.snapshot()
	for i := range 200 {
		v := fmt.Sprintf("v%d|", i)
		v += pad(16 - len(v))
		switch n := stored[v]; {
		case i < 150 && n != 0:
			t.Errorf("record %d, dropped with the old tracker, was stored %d times", i, n)
		case i >= 150 && n != 1:
			t.Errorf("record %d stored %d times, want once", i, n)
		}
	}
	for _, s := range sampled() {
		if s.back {
			t.Fatalf("the commit moved backwards: %v", s)
		}
	}
}

// kfakeCluster starts a one-broker kfake cluster with one-partition topics,
// for tests that control its requests.
func kfakeCluster(t *testing.T, topics ...string) (*kfake.Cluster, []string) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster, cluster.ListenAddrs()
}

// throttleFrom makes kin throttle the entries of records "v<i>|" with i at
// or above the returned value, from (0: all of them) until it is changed.
func throttleFrom(kin *fakeKinesis, from int64) *atomic.Int64 {
	var at atomic.Int64
	at.Store(from)
	kin.failEntry = func(d string) string {
		var i int64
		fmt.Sscanf(d, "v%d|", &i)
		if i >= at.Load() {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	return &at
}

// produceFrom writes records with values "v<i>|" for i in [from, to).
func produceFrom(t *testing.T, brokers []string, topic string, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		v := fmt.Sprintf("v%d|", i)
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%10), Value: []byte(v + pad(16-len(v)))})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

type commitSample struct {
	from, to int64
	back     bool
}

// sampleCommits polls partition 0's committed offset every 10 ms until the
// test ends; the returned func lists every change seen.
func sampleCommits(t *testing.T, brokers []string, group, topic string) func() []commitSample {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	var mu sync.Mutex
	var out []commitSample
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		last := int64(-1)
		for ctx.Err() == nil {
			if offs, err := adm.FetchOffsets(ctx, group); err == nil {
				if o, ok := offs.Lookup(topic, 0); ok && o.At != last {
					mu.Lock()
					out = append(out, commitSample{from: last, to: o.At, back: o.At < last})
					mu.Unlock()
					last = o.At
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait(); cl.Close() })
	return func() []commitSample {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(out)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After an unclean leader election the new leader's log ends below what
// ferry fetched: franz-go reports the data loss and fetches again from the
// new end, at offsets ferry already tracked. ferry starts the partition over
// there (it used to stop with "offset tracked out of order"), drops what the
// old tracker held, moves the commit back to the new position, and delivers
// on. The truncation is made with kfake: the leader epoch is bumped and
// OffsetForLeaderEpoch answers that the old epoch ended at offset 40.
func TestLogTruncationStartsThePartitionOver(t *testing.T) {
	t.Parallel()
	topic := "truncated"
	cluster, brokers := kfakeCluster(t, topic)
	produce(t, brokers, topic, 100, 10, 16)

	kin := newFakeKinesis()
	throttleFrom := throttleFrom(kin, 50)
	cfg := testConfig(brokers, topic)
	cfg.Delivery.Retry = config.Retry{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond}
	c, stop := startConnector(t, cfg, kin, WithKafkaOpts(kgo.FetchMaxWait(100*time.Millisecond)))
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 50}, 20*time.Second)
	waitFor(t, 10*time.Second, "all 100 records fetched", func() bool {
		return testutil.ToFloat64(c.m.consumed.WithLabelValues(topic)) == 100
	})

	throttleFrom.Store(40) // hold the re-fetched records, to see the commit at the new position
	newEpoch := cluster.PartitionInfo(topic, 0).Epoch + 1
	cluster.ControlKey(int16(kmsg.OffsetForLeaderEpoch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
		resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetForLeaderEpochResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				if rp.CurrentLeaderEpoch != newEpoch || rp.LeaderEpoch >= newEpoch {
					return nil, nil, false // not yet the request to answer: kfake does
				}
				sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				sp.Partition, sp.LeaderEpoch, sp.EndOffset = rp.Partition, rp.LeaderEpoch, 40
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		cluster.KeepControl()
		return resp, nil, true
	})
	if err := cluster.MoveTopicPartition(topic, 0, cluster.LeaderFor(topic, 0)); err != nil { // epoch + 1
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the truncation", func() bool {
		return testutil.ToFloat64(c.m.truncations.WithLabelValues(topic)) == 1
	})
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 40}, 20*time.Second)
	throttleFrom.Store(1 << 40)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 100}, 20*time.Second)
	waitFor(t, 10*time.Second, "the budget released", func() bool { return c.buffered.Load() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want a clean stop", err)
	}
	stored := kin.snapshot()
	for i := range 100 {
		v := fmt.Sprintf("v%d|", i)
		if stored[v+pad(16-len(v))] == 0 {
			t.Errorf("record %d never stored", i)
		}
	}
}

// sizeKinesis records the largest entry (data plus partition key) it was
// sent.
type sizeKinesis struct {
	*fakeKinesis
	largest atomic.Int64
}

func (f *sizeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, o ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	for _, r := range in.Records {
		if n := int64(len(r.Data) + len(aws.ToString(r.PartitionKey))); n > f.largest.Load() {
			f.largest.Store(n)
		}
	}
	return f.fakeKinesis.PutRecords(ctx, in, o...)
}

// An aggregated record is one Kinesis record: it is held to the stream's
// MaxRecordSizeInKiB too, not only to delivery.max_record_bytes.
func TestAggregatesFitTheStreamRecordLimit(t *testing.T) {
	t.Parallel()
	topic := "aggregate-stream-limit"
	brokers := startCluster(t, topic, 1)
	ends := produce(t, brokers, topic, 500, 20, 100)
	kin := &sizeKinesis{fakeKinesis: newFakeKinesis()}
	kin.maxKiB = 2 // a stream of 2 KiB records; aggregation.max_bytes stays at 50KiB
	cfg := testConfig(brokers, topic)
	cfg.Delivery.Aggregation.Enabled = true
	stop := runConnector(t, cfg, kin)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := kin.largest.Load(); got > 2048 {
		t.Fatalf("an entry of %d bytes was sent to a stream of 2 KiB records", got)
	}
	if len(kin.snapshot()) != 500 || kin.aggregates == 0 {
		t.Fatalf("stored %d records in %d aggregates", len(kin.snapshot()), kin.aggregates)
	}
}

// A header template can name any number of missing streams: ferry keeps at
// most maxMissing of them, expired ones first, and the newest always.
func TestMissingStreamsAreBounded(t *testing.T) {
	t.Parallel()
	c := &Connector{missing: make(map[string]missingStream)}
	for i := range 3 * maxMissing {
		c.rememberMissing(fmt.Sprintf("s-%d", i), errStreamMissing)
		if len(c.missing) > maxMissing {
			t.Fatalf("%d streams remembered after %d, want at most %d", len(c.missing), i+1, maxMissing)
		}
	}
	if _, ok := c.missing[fmt.Sprintf("s-%d", 3*maxMissing-1)]; !ok {
		t.Fatal("the newest missing stream was evicted")
	}
}
