package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/aggregation"
	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/shardmap"
)

// fakeKinesis stores what it accepts and can fail entries or whole requests.
type fakeKinesis struct {
	mu       sync.Mutex
	stored   map[string]int // data -> times stored
	keys     map[string]string
	order    map[string][]string // partition key -> data, in the order stored
	requests int
	// failEntry, when set, decides per entry whether to fail it (and with
	// which code) instead of storing it.
	failEntry func(data string) string
	// failRequest, when set, fails a whole request before storing anything.
	failRequest func() error
	status      types.StreamStatus
	maxKiB      int32 // MaxRecordSizeInKiB to report; 0: not reported
	shards      int   // shards ListShards reports (1 when 0)
	// aggregates counts Kinesis records that were KPL aggregates.
	aggregates int
	// delay is how long every PutRecords takes to answer (after storing,
	// outside the lock), to keep requests in flight.
	delay time.Duration
}

func newFakeKinesis() *fakeKinesis {
	return &fakeKinesis{stored: map[string]int{}, keys: map[string]string{}, order: map[string][]string{}, status: types.StreamStatusActive}
}

func (f *fakeKinesis) DescribeStreamSummary(_ context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	if f.status == "" {
		return nil, &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "Stream " + aws.ToString(in.StreamName) + " not found"}
	}
	sum := &types.StreamDescriptionSummary{StreamStatus: f.status}
	if f.maxKiB > 0 {
		sum.MaxRecordSizeInKiB = aws.Int32(f.maxKiB)
	}
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: sum}, nil
}

// ListShards reports f.shards even shards (1 when unset).
func (f *fakeKinesis) ListShards(_ context.Context, _ *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	out := &kinesis.ListShardsOutput{}
	for _, s := range shardmap.EvenShards(max(f.shards, 1)) {
		out.Shards = append(out.Shards, types.Shard{ShardId: aws.String(s.ID), HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String(s.Start.String()), EndingHashKey: aws.String(s.End.String())}})
	}
	return out, nil
}

// PutRecords stores the records, then (with delay) waits before answering:
// a call cancelled meanwhile returns an error for records that were stored,
// as a real Kinesis answer lost in flight does.
func (f *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out, err := f.put(in)
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, err
}

func (f *fakeKinesis) put(in *kinesis.PutRecordsInput) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if len(in.Records) > 500 {
		return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "too many records"}
	}
	if f.failRequest != nil {
		if err := f.failRequest(); err != nil {
			return nil, err
		}
	}
	out := &kinesis.PutRecordsOutput{}
	shards, err := shardmap.New(shardmap.EvenShards(max(f.shards, 1)))
	if err != nil {
		return nil, err
	}
	for _, r := range in.Records {
		_, shardID, err := shards.Predict(aws.ToString(r.PartitionKey), aws.ToString(r.ExplicitHashKey))
		if err != nil {
			return nil, err
		}
		if aggregation.IsAggregated(r.Data) {
			users, err := aggregation.Deaggregate(r.Data, aws.ToString(r.PartitionKey))
			if err != nil {
				return nil, err
			}
			if f.failEntry != nil {
				if code := f.failEntry(string(users[0].Data)); code != "" {
					out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
					out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("injected")})
					continue
				}
			}
			f.aggregates++
			for _, u := range users {
				d := string(u.Data)
				f.stored[d]++
				f.keys[d] = u.PartitionKey
				f.order[u.PartitionKey] = append(f.order[u.PartitionKey], d)
			}
			out.Records = append(out.Records, types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String(shardID)})
			continue
		}
		d := string(r.Data)
		if f.failEntry != nil {
			if code := f.failEntry(d); code != "" {
				out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
				out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("injected")})
				continue
			}
		}
		f.stored[d]++
		f.keys[d] = aws.ToString(r.PartitionKey)
		f.order[aws.ToString(r.PartitionKey)] = append(f.order[aws.ToString(r.PartitionKey)], d)
		out.Records = append(out.Records, types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String(shardID)})
	}
	return out, nil
}

// assertKeyOrder fails unless every partition key's records were stored in
// produce order (values "v<i>|..."). The caller holds f.mu.
func (f *fakeKinesis) assertKeyOrder(t *testing.T) {
	t.Helper()
	assertOrdered(t, f.order)
}

// assertOrdered fails unless each key's values ("v<i>|...") are in produce
// order.
func assertOrdered(t *testing.T, order map[string][]string) {
	t.Helper()
	for key, datas := range order {
		last := -1
		for _, d := range datas {
			var i int
			fmt.Sscanf(d, "v%d|", &i)
			if i <= last {
				t.Fatalf("key %s: record %d stored after %d", key, i, last)
			}
			last = i
		}
	}
}

func (f *fakeKinesis) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.stored))
	for k, v := range f.stored {
		out[k] = v
	}
	return out
}

func testConfig(brokers []string, topic string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Topics = []string{topic}
	cfg.Kafka.Group = "g-" + topic
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Kafka.RebalanceTimeout = 10 * time.Second
	cfg.Kinesis.Region = "us-east-1"
	cfg.Routes = []config.Route{{Topics: []string{topic}, Stream: "s"}}
	cfg.Delivery.Retry = config.Retry{Initial: time.Millisecond, Max: 10 * time.Millisecond}
	cfg.Delivery.DrainTimeout = 5 * time.Second
	cfg.Delivery.Batch.Linger = 5 * time.Millisecond
	cfg.Commit.Interval = 100 * time.Millisecond
	cfg.Delivery.RateLimit.Enabled = false // the fake has no limits; TestRateLimitPacesPerShard covers pacing
	return cfg
}

func startCluster(t *testing.T, topic string, partitions int) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// produce writes n records with keys k0..k(keys-1) and values "v<i>"; it
// returns the end offset of every partition.
func produce(t *testing.T, brokers []string, topic string, n, keys int, valueSize int) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := fmt.Appendf(nil, "v%d|", i)
		for len(v) < valueSize {
			v = append(v, 'x')
		}
		recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%keys), Value: v}
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func committed(t *testing.T, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(t.Context(), group)
	if err != nil {
		return nil
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

func waitCommitted(t *testing.T, brokers []string, group, topic string, want map[int32]int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := committed(t, brokers, group, topic)
		done := true
		for p, end := range want {
			if got[p] != end {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets %v never reached %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func quietLogger() *slog.Logger {
	if os.Getenv("FERRY_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func runConnector(t *testing.T, cfg config.Config, kin KinesisAPI) (cancel func() error) {
	t.Helper()
	_, stop := startConnector(t, cfg, kin)
	return stop
}

// startConnector is runConnector that also returns the connector, for tests
// that look inside it.
func startConnector(t *testing.T, cfg config.Config, kin KinesisAPI, opts ...Opt) (*Connector, func() error) {
	t.Helper()
	c, err := New(cfg, kin, append([]Opt{WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return c, func() error {
		stop()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("connector did not stop within 30s")
			return nil
		}
	}
}

// duplicates counts the extra copies in a fakeKinesis snapshot.
func duplicates(stored map[string]int) int {
	n := 0
	for _, c := range stored {
		n += c - 1
	}
	return n
}

func TestDeliversEveryRecordAndCommits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		failEntry func(string) string
		dupsOK    bool
	}{
		{name: "no faults"},
		{name: "partial failures", failEntry: func(string) string {
			switch rand.IntN(10) {
			case 0:
				return "ProvisionedThroughputExceededException"
			case 1:
				return "InternalFailure"
			}
			return ""
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := fmt.Sprintf("deliver-%d", i)
			brokers := startCluster(t, topic, 3)
			ends := produce(t, brokers, topic, 3000, 50, 64)
			kin := newFakeKinesis()
			kin.failEntry = tc.failEntry
			cfg := testConfig(brokers, topic)
			stop := runConnector(t, cfg, kin)
			waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 30*time.Second)
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			stored := kin.snapshot()
			if len(stored) != 3000 {
				t.Fatalf("stored %d distinct records, want 3000", len(stored))
			}
			for d, n := range stored {
				if n != 1 {
					t.Errorf("record %q stored %d times", d, n)
				}
			}
			kin.mu.Lock()
			defer kin.mu.Unlock()
			for d, k := range kin.keys {
				var i int
				fmt.Sscanf(d, "v%d|", &i)
				if want := fmt.Sprintf("k%d", i%50); k != want {
					t.Fatalf("record %q has partition key %q, want %q", d, k, want)
				}
			}
		})
	}
}

func TestRetriesRequestErrorsUntilDelivered(t *testing.T) {
	t.Parallel()
	topic := "request-errors"
	brokers := startCluster(t, topic, 2)
	ends := produce(t, brokers, topic, 500, 10, 16)
	kin := newFakeKinesis()
	var calls int
	kin.failRequest = func() error {
		calls++
		if calls%3 != 0 { // two of three requests fail
			return &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Message: "Rate exceeded"}
		}
		return nil
	}
	cfg := testConfig(brokers, topic)
	stop := runConnector(t, cfg, kin)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := len(kin.snapshot()); got != 500 {
		t.Fatalf("stored %d, want 500", got)
	}
}

func TestFatalErrorStopsWithoutCommitting(t *testing.T) {
	t.Parallel()
	topic := "fatal"
	brokers := startCluster(t, topic, 1)
	produce(t, brokers, topic, 100, 10, 16)
	kin := newFakeKinesis()
	kin.failRequest = func() error {
		return &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not allowed"}
	}
	cfg := testConfig(brokers, topic)
	c, err := New(cfg, kin, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if !errors.Is(err, ErrFatal) {
		t.Fatalf("Run = %v, want a fatal error", err)
	}
	if got := committed(t, brokers, cfg.Kafka.Group, topic); got[0] > 0 {
		t.Fatalf("committed %v after a fatal error with nothing delivered", got)
	}
}

func TestMissingStreamFailsBeforeJoining(t *testing.T) {
	t.Parallel()
	topic := "missing-stream"
	brokers := startCluster(t, topic, 1)
	kin := newFakeKinesis()
	kin.status = ""
	c, err := New(testConfig(brokers, topic), kin, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(t.Context())
	if !errors.Is(err, ErrFatal) {
		t.Fatalf("Run = %v, want fatal", err)
	}
}

// producer returns a client producing to topic, after creating topic-dlq
// when dlq is set.
func producer(t *testing.T, brokers []string, topic string, dlq bool) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if dlq {
		if _, err := kadm.NewClient(cl).CreateTopic(t.Context(), 1, 1, nil, topic+"-dlq"); err != nil {
			t.Fatal(err)
		}
	}
	return cl
}

func TestOversizedRecordPolicies(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"fail", "skip", "dlq"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			topic := "oversize-" + policy
			brokers := startCluster(t, topic, 1)
			cl := producer(t, brokers, topic, policy == "dlq")
			big := make([]byte, 2000)
			recs := []*kgo.Record{{Value: []byte("a")}, {Value: big}, {Value: []byte("c")}}
			if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			kin := newFakeKinesis()
			cfg := testConfig(brokers, topic)
			cfg.Delivery.MaxRecordBytes = 1000
			cfg.Delivery.OnInvalid = policy
			cfg.Delivery.DLQTopic = topic + "-dlq"
			c, err := New(cfg, kin, WithLogger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			if policy == "fail" {
				select {
				case err := <-done:
					if !errors.Is(err, ErrFatal) {
						t.Fatalf("Run = %v, want fatal", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("fail policy did not stop the connector")
				}
				cancel()
				// "a" may be delivered and committed; never past the big one.
				if got := committed(t, brokers, cfg.Kafka.Group, topic); got[0] > 1 {
					t.Fatalf("committed %v past the oversized record at offset 1", got)
				}
				return
			}
			waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 3}, 20*time.Second)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			stored := kin.snapshot()
			if len(stored) != 2 || stored["a"] != 1 || stored["c"] != 1 {
				t.Fatalf("stored %v, want a and c", stored)
			}
			if policy == "dlq" {
				dl := consumeAll(t, brokers, topic+"-dlq", 1)
				h := map[string]string{}
				for _, kv := range dl[0].Headers {
					h[kv.Key] = string(kv.Value)
				}
				if len(dl[0].Value) != 2000 || h[HeaderTopic] != topic || h[HeaderOffset] != "1" || h[HeaderErrClass] == "" {
					t.Fatalf("dead-letter record headers %v", h)
				}
			}
		})
	}
}

func consumeAll(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
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

func TestBackpressureBoundsBufferedBytes(t *testing.T) {
	t.Parallel()
	topic := "backpressure"
	brokers := startCluster(t, topic, 2)
	ends := produce(t, brokers, topic, 4000, 100, 1000)
	kin := newFakeKinesis()
	slow := make(chan struct{})
	var once sync.Once
	kin.failRequest = func() error {
		<-slow // hold every request until the test has looked at the buffer
		return nil
	}
	cfg := testConfig(brokers, topic)
	cfg.Delivery.BufferBytes = 256 << 10
	cfg.Delivery.Batch.MaxBytes = 64 << 10
	cfg.Delivery.MaxRecordBytes = 64 << 10
	c, err := New(cfg, kin, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(2 * time.Second)
	// One poll may overshoot the budget by what it returned; it must not
	// keep growing while deliveries are stuck.
	peak := c.buffered.Load()
	limit := int64(cfg.Delivery.BufferBytes) + maxPollRecords*1100
	if peak > limit {
		t.Fatalf("buffered %d bytes with deliveries stuck, limit %d", peak, limit)
	}
	if peak == 0 {
		t.Fatal("nothing buffered: the test did not exercise backpressure")
	}
	once.Do(func() { close(slow) })
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 30*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(kin.snapshot()); got != 4000 {
		t.Fatalf("stored %d, want 4000", got)
	}
}

// Retention deleted records below the log start while the group's commit
// still points before them: kafka.on_offset_lost decides, and the skipped
// offsets are counted, never silently passed over.
func TestOffsetLostPolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy    string
		delivered int
		lost      float64
	}{
		{policy: "fail"},
		{policy: "earliest", delivered: 50, lost: 40},
		{policy: "latest", delivered: 0, lost: 90},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			topic := "offset-lost-" + tc.policy
			brokers := startCluster(t, topic, 1)
			produce(t, brokers, topic, 100, 10, 16)
			cfg := testConfig(brokers, topic)
			cfg.Kafka.OnOffsetLost = tc.policy
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
			if err != nil {
				t.Fatal(err)
			}
			adm := kadm.NewClient(cl)
			commit := kadm.Offsets{}
			commit.Add(kadm.Offset{Topic: topic, Partition: 0, At: 10, LeaderEpoch: -1})
			if _, err := adm.CommitOffsets(t.Context(), cfg.Kafka.Group, commit); err != nil {
				t.Fatal(err)
			}
			del := kadm.Offsets{}
			del.Add(kadm.Offset{Topic: topic, Partition: 0, At: 50})
			if _, err := adm.DeleteRecords(t.Context(), del); err != nil {
				t.Fatal(err)
			}
			cl.Close()

			kin := newFakeKinesis()
			reg := prometheus.NewRegistry()
			c, err := New(cfg, kin, WithLogger(quietLogger()), WithRegisterer(reg))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			if tc.policy == "fail" {
				select {
				case err := <-done:
					if !errors.Is(err, ErrFatal) || !strings.Contains(err.Error(), "on_offset_lost") {
						t.Fatalf("Run = %v, want a fatal error naming kafka.on_offset_lost", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("fail policy did not stop the connector")
				}
				cancel()
				if got := committed(t, brokers, cfg.Kafka.Group, topic); got[0] != 10 {
					t.Fatalf("committed %v, want the commit left at 10", got)
				}
				return
			}
			waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 100}, 20*time.Second)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := len(kin.snapshot()); got != tc.delivered {
				t.Errorf("delivered %d records, want %d", got, tc.delivered)
			}
			if got := testutil.ToFloat64(c.m.offsetsLost.WithLabelValues(topic)); got != tc.lost {
				t.Errorf("ferry_offsets_lost_total = %v, want %v", got, tc.lost)
			}
		})
	}
}

// Ordering "key": with a fifth of all entries failing (and so re-sent),
// every key's records are stored in Kafka order. Ordering "none" under the
// same faults is what this guards against: a failed entry re-sent after a
// later record of its key that succeeded.
func TestOrderingKeyKeepsPerKeyOrderUnderPartialFailures(t *testing.T) {
	t.Parallel()
	topic := "ordering-key"
	brokers := startCluster(t, topic, 3)
	ends := produce(t, brokers, topic, 3000, 20, 32)
	kin := newFakeKinesis()
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(5, 6))
	kin.failEntry = func(string) string {
		mu.Lock()
		defer mu.Unlock()
		if rng.IntN(5) == 0 {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	cfg := testConfig(brokers, topic)
	cfg.Delivery.Ordering = "key" // with "none" this test fails (checked)
	cfg.Delivery.MaxInFlight = 8
	stop := runConnector(t, cfg, kin)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	kin.mu.Lock()
	defer kin.mu.Unlock()
	if len(kin.stored) != 3000 {
		t.Fatalf("stored %d records, want 3000", len(kin.stored))
	}
	kin.assertKeyOrder(t)
}

// The stream's own record limit (MaxRecordSizeInKiB) applies when it is
// smaller than delivery.max_record_bytes.
func TestStreamRecordLimitFromDescribeStreamSummary(t *testing.T) {
	t.Parallel()
	topic := "stream-limit"
	brokers := startCluster(t, topic, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	recs := []*kgo.Record{{Value: []byte("a")}, {Value: make([]byte, 3000)}, {Value: []byte("c")}}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	kin := newFakeKinesis()
	kin.maxKiB = 2 // the stream takes records of at most 2 KiB
	cfg := testConfig(brokers, topic)
	cfg.Delivery.OnInvalid = "skip"
	stop := runConnector(t, cfg, kin)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 3}, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := kin.snapshot(); len(got) != 2 || got["a"] != 1 || got["c"] != 1 {
		t.Fatalf("stored %v, want a and c only: the 3000-byte record is over the stream's 2 KiB", got)
	}
}

// Aggregation: records of one predicted shard travel in KPL aggregates;
// every record arrives exactly once, and with ordering "key" each key's
// records keep Kafka order even when aggregates fail and are re-sent.
func TestAggregationDeliversInOrder(t *testing.T) {
	t.Parallel()
	topic := "aggregation"
	brokers := startCluster(t, topic, 3)
	ends := produce(t, brokers, topic, 3000, 50, 64)
	kin := newFakeKinesis()
	kin.shards = 4
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 8))
	kin.failEntry = func(string) string {
		mu.Lock()
		defer mu.Unlock()
		if rng.IntN(4) == 0 {
			return "InternalFailure"
		}
		return ""
	}
	cfg := testConfig(brokers, topic)
	cfg.Delivery.Aggregation.Enabled = true
	cfg.Delivery.RateLimit.Enabled = false
	stop := runConnector(t, cfg, kin)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	kin.mu.Lock()
	defer kin.mu.Unlock()
	if len(kin.stored) != 3000 {
		t.Fatalf("stored %d records, want 3000", len(kin.stored))
	}
	for d, n := range kin.stored {
		if n != 1 {
			t.Fatalf("record %q stored %d times", d, n)
		}
	}
	if kin.aggregates == 0 || kin.aggregates > 1500 {
		t.Fatalf("%d aggregates for 3000 records: aggregation did not pack", kin.aggregates)
	}
	kin.assertKeyOrder(t)
}

// Rate limiting paces a stream at its shards' write limits: 3,000 records
// on two shards take at least about 1.25 s (2,000 records/s, after the
// buckets' initial burst).
func TestRateLimitPacesPerShard(t *testing.T) {
	t.Parallel()
	topic := "rate-limit"
	brokers := startCluster(t, topic, 2)
	ends := produce(t, brokers, topic, 3000, 500, 32)
	kin := newFakeKinesis()
	kin.shards = 2
	cfg := testConfig(brokers, topic)
	cfg.Delivery.RateLimit = config.RateLimit{Enabled: true, Factor: 1}
	start := time.Now()
	stop := runConnector(t, cfg, kin)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 60*time.Second)
	took := time.Since(start)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took < time.Second {
		t.Fatalf("3000 records on 2 shards took %s: not paced at 1,000 records/s per shard", took)
	}
	if got := len(kin.snapshot()); got != 3000 {
		t.Fatalf("stored %d, want 3000", got)
	}
}

// A hot shard (here: every record of partition 0 throttled) pauses only the
// partitions whose records wait for it; partition 1 keeps flowing and its
// offsets reach the end while partition 0 is stuck. Without per-partition
// pausing, partition 0's backlog would fill the byte budget and stall both.
func TestHotPartitionPausesAlone(t *testing.T) {
	t.Parallel()
	topic := "hot-partition"
	brokers := startCluster(t, topic, 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// A live producer: 100 records to each partition every 5 ms, 20,000
	// in all, so that polls bring small chunks as in production.
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < 20000; i += 200 {
			var recs []*kgo.Record
			for j := i; j < i+200; j++ {
				p := int32(j % 2)
				recs = append(recs, &kgo.Record{Partition: p, Key: fmt.Appendf(nil, "k%d", j%100), Value: fmt.Appendf(nil, "p%d-%d|%0200d", p, j, 0)})
			}
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	kin := newFakeKinesis()
	var hot atomic.Bool
	hot.Store(true)
	kin.failEntry = func(d string) string {
		if hot.Load() && strings.HasPrefix(d, "p0-") {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	cfg := testConfig(brokers, topic)
	cfg.Delivery.BufferBytes = 1 << 20 // partition 0 alone produces 2 MiB
	cfg.Delivery.Batch.MaxBytes = 64 << 10
	cfg.Delivery.MaxRecordBytes = 64 << 10
	cfg.Delivery.Aggregation.MaxBytes = 32 << 10
	cfg.Delivery.Retry.Max = 50 * time.Millisecond
	stop := runConnector(t, cfg, kin)
	<-produced
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{1: 10000}, 30*time.Second)
	if c := committed(t, brokers, cfg.Kafka.Group, topic); c[0] != 0 {
		t.Fatalf("partition 0 committed %d while all its records were throttled", c[0])
	}
	hot.Store(false)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 10000, 1: 10000}, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := len(kin.snapshot()); got != 20000 {
		t.Fatalf("stored %d, want 20000", got)
	}
}
