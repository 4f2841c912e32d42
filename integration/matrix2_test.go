//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrylabs/ferry/integration/internal/faultproxy"
	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/integration/internal/history"
	"github.com/ferrylabs/ferry/mapping"
)

// newKfakeEnv is an env on franz-go's in-process kfake cluster instead of a
// real broker, for protocol faults a real broker cannot be made to produce
// (ControlKey). ferry still runs as its own process and connects over TCP.
func newKfakeEnv(t *testing.T, topics int, partitions, shards int32, opts ...kfake.Opt) (*env, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k := harness.ExternalKafka(c.ListenAddrs())
	return newEnvOn(t, k, harness.KindKinesalite, topics, partitions, shards), c
}

// consumeAllNow reads a topic from the start up to its current end.
func consumeAllNow(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ends, err := harness.EndOffsets(t.Context(), brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for {
		done := true
		pos := map[int32]int64{}
		for _, r := range out {
			pos[r.Partition] = max(pos[r.Partition], r.Offset+1)
		}
		for p, end := range ends {
			if pos[p] < end {
				done = false
			}
		}
		if done {
			return out
		}
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s to its end timed out", topic)
		}
		out = append(out, f.Records()...)
	}
}

// Scenario 9: connection chaos between ferry and Kafka: one fetch in ten
// and one heartbeat in five has its connection closed. The client retries
// transparently; nothing is lost.
func TestScenario09KafkaConnectionChaos(t *testing.T) {
	e, c := newKfakeEnv(t, 1, 4, 2)
	rec := e.record()
	n := scale(sized(10_000, 50_000))
	produced := e.produce(n, 500, 256)
	var closed atomic.Int64
	chaos := func(every int64) func(kmsg.Request) (kmsg.Response, error, bool) {
		var seen atomic.Int64
		return func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			if seen.Add(1)%every == 0 {
				closed.Add(1)
				return nil, errors.New("chaos: closing the connection"), true
			}
			return nil, nil, false
		}
	}
	c.ControlKey(int16(kmsg.Fetch), chaos(2))
	c.ControlKey(int16(kmsg.Heartbeat), chaos(2))
	e.proxy.SetResponseDelay(300 * time.Millisecond) // a run of several heartbeats and many fetches
	end := rec.fault("kafka connection chaos", false)
	p := e.startMember(e.config(""), "ferry", "delivery.max_in_flight=2", "delivery.buffer_bytes=5MiB")
	e.waitCommitted(-1, 3*time.Minute, p)
	end()
	e.proxy.SetResponseDelay(0)
	e.stop(p)
	t.Logf("connections closed by the chaos: %d", closed.Load())
	if closed.Load() == 0 {
		t.Fatal("no connection was closed: the chaos did not happen")
	}
	rec.verify(produced, "key", history.Options{AllowDuplicates: true, DrainWithin: time.Minute})
}

// Scenario 10: OffsetCommit requests fail (COORDINATOR_NOT_AVAILABLE, one in
// three) and one commit is held for 3 s so that it lands late: commits are
// retried, and a stale commit never rewinds the committed offsets (P4).
func TestScenario10CommitFailuresAndStaleCommit(t *testing.T) {
	e, c := newKfakeEnv(t, 1, 4, 2)
	rec := e.record()
	n := scale(sized(10_000, 50_000))
	produced := e.produce(n, 500, 256)
	var failed, held atomic.Int64
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.OffsetCommitRequest)
		if !strings.HasPrefix(r.Group, "ferry-") {
			return nil, nil, false
		}
		if held.Load() == 0 && held.CompareAndSwap(0, 1) {
			c.SleepControl(func() { time.Sleep(3 * time.Second) })
			return nil, nil, false // now handled normally, 3 s late
		}
		if rand.IntN(3) != 0 {
			return nil, nil, false
		}
		failed.Add(1)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.CoordinatorNotAvailable.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	end := rec.fault("offset commit failures", false)
	p := e.startMember(e.config(""), "ferry")
	e.waitCommitted(-1, 3*time.Minute, p)
	end()
	e.stop(p)
	t.Logf("commits failed: %d, held: %d", failed.Load(), held.Load())
	if failed.Load() == 0 || held.Load() == 0 {
		t.Fatal("the commit faults did not happen")
	}
	rec.verify(produced, "key", history.Options{AllowDuplicates: true, DrainWithin: time.Minute})
}

// Scenario 11: request-level throttling of 30 % of PutRecords for a long
// spell: the SDK never gives up on a retry quota (there is none), fetching
// pauses at the byte budget, memory stays bounded, nothing is lost.
func TestScenario11SustainedThrottling(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 6, 4)
	rec := e.record()
	produced := e.produce(scale(sized(30_000, 150_000)), 1000, 1024)
	e.proxy.SetSeed(3)
	e.proxy.SetThrottle(0.3)
	const buffer = 16 << 20
	p := e.startMember(e.config(""), "ferry", fmt.Sprintf("delivery.buffer_bytes=%d", buffer),
		"delivery.retry.initial=20ms", "delivery.retry.max=500ms")
	end := rec.fault("30% throttling", false)
	time.Sleep(sized(15*time.Second, 60*time.Second))
	e.proxy.SetThrottle(0)
	end()
	e.waitCommitted(-1, 3*time.Minute, p)
	peak := rss(p.Pid())
	_, metrics := httpGet(t, p, "/metrics")
	e.stop(p)
	st := e.proxy.Stats()
	t.Logf("throttled requests %d of %d; peak RSS %d MiB", st.Throttled, st.PutRecordsRequests, peak>>20)
	if st.Throttled == 0 {
		t.Fatal("nothing was throttled")
	}
	if limit := int64(2*buffer + 64<<20); peak > limit {
		t.Errorf("peak RSS %d MiB over the bound 2 x buffer_bytes + 64 MiB = %d MiB", peak>>20, limit>>20)
	}
	if got := metric(metrics, "ferry_delivery_errors_total", `code="ProvisionedThroughputExceededException"`); got == 0 {
		t.Error("throttling was not counted in ferry_delivery_errors_total")
	}
	rec.verify(produced, "key", history.Options{DrainWithin: 2 * time.Minute})
}

// Scenario 13: the ordering trap. Key K at offsets 10 and 11 in one batch;
// the entry of offset 10 fails once, 11 succeeds. With ordering "key" (the
// default) K's records are never two in flight at once, so Kinesis shows 10
// before 11. With ordering "none" the test documents what happens: 10 is
// re-sent after 11..19 and lands after them.
func TestScenario13OrderingTrap(t *testing.T) {
	for _, mode := range []string{"key", "none"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, harness.KindMock, 1, 1, 1)
			rec := e.record()
			produced := e.produce(20, 1, 64) // one key, offsets 0..19
			target := valueID(produced[10].Value)
			var failedOnce atomic.Bool
			e.proxy.SetEntryFailer(func(en faultproxy.Entry) (string, bool) {
				if valueID(en.Data) == target && failedOnce.CompareAndSwap(false, true) {
					return "InternalFailure", true
				}
				return "", false
			})
			p := e.startMember(e.config(""), "ferry", "delivery.batch.linger=500ms", "delivery.ordering="+mode)
			e.waitCommitted(-1, time.Minute, p)
			e.stop(p)
			if !failedOnce.Load() {
				t.Fatal("the entry of offset 10 was never failed")
			}
			rep := rec.verify(produced, mode, history.Options{}) // "key": any inversion fails the test
			t.Logf("ordering %s: %d per-key inversions after the partial failure", mode, rep.Inversions)
			if mode == "none" && rep.Inversions == 0 {
				t.Fatal("expected the documented inversion in ordering mode none")
			}
		})
	}
}

// Scenario 15: a Kinesis outage (every PutRecords answered 503): committed
// offsets freeze, memory stays bounded, and after the outage everything
// drains.
func TestScenario15KinesisOutage(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 6, 4)
	rec := e.record()
	n := scale(sized(20_000, 100_000))
	produced := e.produce(n, 1000, 512)
	const buffer = 8 << 20
	p := e.startMember(e.config(""), "ferry", fmt.Sprintf("delivery.buffer_bytes=%d", buffer), "delivery.retry.max=2s")
	e.waitCommitted(int64(n/10), 2*time.Minute, p)
	e.proxy.SetServerErrors(1, 503)
	time.Sleep(2 * time.Second) // requests in flight at the start may still complete
	frozen := total(e.committed())
	end := rec.fault("kinesis outage", false)
	time.Sleep(sized(20*time.Second, 2*time.Minute))
	during := total(e.committed())
	e.proxy.SetServerErrors(0, 503)
	end()
	e.waitCommitted(-1, 3*time.Minute, p)
	peak := rss(p.Pid())
	e.stop(p)
	if during != frozen {
		t.Errorf("committed offsets moved during the outage: %d -> %d", frozen, during)
	}
	if limit := int64(2*buffer + 64<<20); peak > limit {
		t.Errorf("peak RSS %d MiB over the bound %d MiB", peak>>20, limit>>20)
	}
	t.Logf("503s during the outage: %d; peak RSS %d MiB", e.proxy.Stats().ServerErrors, peak>>20)
	rec.verify(produced, "key", history.Options{DrainWithin: 2 * time.Minute})
}

// Scenario 16: fatal destination errors. ferry stops with a non-zero exit and
// a clear message, commits nothing, drops nothing; once the cause is fixed a
// restart delivers everything.
func TestScenario16FatalDestinationErrors(t *testing.T) {
	for _, code := range []string{"AccessDeniedException", "ResourceNotFoundException"} {
		t.Run(code, func(t *testing.T) {
			e := newEnv(t, harness.KindKinesalite, 1, 2, 1)
			rec := e.record()
			produced := e.produce(scale(2000), 100, 128)
			e.proxy.SetFatal(code)
			cfg := e.config("")
			p := e.startMember(cfg, "ferry-1")
			exit, err := p.Wait(time.Minute)
			if err != nil || exit == 0 {
				t.Fatalf("exit %d, %v; want a non-zero exit", exit, err)
			}
			if !strings.Contains(p.Tail(), code) {
				t.Fatalf("the error does not name %s:\n%s", code, p.Tail())
			}
			if c := total(e.committed()); c != 0 {
				t.Fatalf("committed %d offsets although nothing was delivered", c)
			}
			e.proxy.Reset()
			p2 := e.startMember(cfg, "ferry-2")
			e.waitCommitted(-1, 2*time.Minute, p2)
			e.stop(p2)
			rec.verify(produced, "key", history.Options{})
		})
	}
}

// Scenario 17: sizes at the limits. A record of exactly the limit (data
// plus key) is delivered; one byte more is dead-lettered; large records
// that fill 5 MiB requests never produce a request over a Kinesis limit.
func TestScenario17RecordAndRequestLimits(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 1, 2)
	rec := e.record()
	topic := e.topics[0]
	dlq := topic + ".dlq"
	big := "4194304" // 4 MiB topics: records of 1 MiB and more
	for _, tp := range []string{topic + ".big", dlq} {
		if err := harness.CreateTopicWithConfigs(t.Context(), e.brokers, tp, 1, map[string]*string{"max.message.bytes": &big}); err != nil {
			t.Fatal(err)
		}
	}
	// Route the big topic instead of the one newEnv made.
	e.topics = []string{topic + ".big"}
	const limit = 1 << 20
	key := "k"
	mk := func(i, size int) *kgo.Record {
		v := fmt.Appendf(nil, "%s|%d|", e.topics[0], i)
		v = append(v, make([]byte, size-len(v)-len(key))...)
		return &kgo.Record{Topic: e.topics[0], Key: []byte(key), Value: v}
	}
	var recs []*kgo.Record
	recs = append(recs, mk(0, limit))   // exactly the limit: delivered
	recs = append(recs, mk(1, limit+1)) // one byte over: dead-lettered
	for i := 2; i < 14; i++ {
		recs = append(recs, mk(i, 900<<10)) // 12 x 900 KiB: several 5 MiB requests
	}
	recs = append(recs, mk(14, limit+100<<10)) // over: dead-lettered
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	results := cl.ProduceSync(t.Context(), recs...)
	cl.Close()
	if err := results.FirstErr(); err != nil {
		t.Fatal(err)
	}
	var produced []harness.Produced
	for _, r := range results {
		produced = append(produced, harness.Produced{Topic: r.Record.Topic, Partition: r.Record.Partition,
			Offset: r.Record.Offset, Key: r.Record.Key, Value: r.Record.Value})
	}
	p := e.startMember(e.config(""), "ferry", "delivery.on_invalid=dlq", "delivery.dlq_topic="+dlq)
	e.waitCommitted(-1, 2*time.Minute, p)
	e.stop(p)
	if st := e.proxy.Stats(); st.LimitViolations != 0 {
		t.Fatalf("%d requests over a Kinesis limit reached the proxy", st.LimitViolations)
	}
	dead := consumeTopic(t, e.brokers, dlq, 2)
	if len(dead) != 2 {
		t.Fatalf("dead-lettered %d records, want 2", len(dead))
	}
	var kept []harness.Produced
	for _, pr := range produced {
		if len(pr.Value)+len(pr.Key) <= limit {
			kept = append(kept, pr)
		}
	}
	rec.verify(kept, "key", history.Options{})
}

// Scenario 18: keys Kinesis cannot take as they are: null, empty, longer than
// 256 characters, not UTF-8, 256 multi-byte characters, the reserved prefix.
// Every record arrives, no request is refused, partition keys are valid, and
// distinct Kafka keys keep distinct partition keys.
func TestScenario18Keys(t *testing.T) {
	e := newEnv(t, harness.KindMock, 1, 1, 2)
	rec := e.record()
	keys := [][]byte{nil, {}, []byte(strings.Repeat("x", 300)), []byte(strings.Repeat("x", 301)),
		{0xff, 0xfe, 'a'}, {0xfe, 0xff, 'a'}, []byte(strings.Repeat("é", 256)), []byte(strings.Repeat("😀", 200)),
		[]byte("ferry~sha256~" + strings.Repeat("0", 64)), []byte("plain")}
	var recs []*kgo.Record
	for i := range 100 {
		recs = append(recs, &kgo.Record{Topic: e.topics[0], Key: keys[i%len(keys)], Value: fmt.Appendf(nil, "%s|%d|", e.topics[0], i)})
	}
	produced, err := harness.Produce(t.Context(), e.brokers, recs)
	if err != nil {
		t.Fatal(err)
	}
	p := e.startMember(e.config(""), "ferry")
	e.waitCommitted(-1, time.Minute, p)
	e.stop(p)
	rec.verify(produced, "key", history.Options{})
	read, err := harness.ReadAll(t.Context(), e.kc, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	byKafkaKey := map[string]string{}
	for _, r := range read {
		if !utf8.ValidString(r.PartitionKey) || len([]rune(r.PartitionKey)) > 256 || r.PartitionKey == "" {
			t.Errorf("invalid partition key %q", r.PartitionKey)
		}
		var i int
		fmt.Sscanf(strings.SplitN(string(r.Data), "|", 3)[1], "%d", &i)
		kk := string(keys[i%len(keys)])
		if want := mapping.PartitionKey(keys[i%len(keys)], 0); r.PartitionKey != want {
			t.Errorf("record %d: partition key %q, want %q", i, r.PartitionKey, want)
		}
		if len(kk) > 0 {
			byKafkaKey[kk] = r.PartitionKey
		}
	}
	seen := map[string]string{}
	for kk, pk := range byKafkaKey {
		if other, dup := seen[pk]; dup {
			t.Errorf("Kafka keys %q and %q share partition key %q", other, kk, pk)
		}
		seen[pk] = kk
	}
}

// Scenario 19 (malformed configuration) is TestInvalidConfig in e2e_test.go;
// this adds that a rejected configuration never joins the group.
func TestScenario19InvalidConfigNeverJoins(t *testing.T) {
	e := newEnv(t, harness.KindMock, 1, 1, 1)
	p := e.start(e.config(""), "ferry", "delivery.batch.max_records=900")
	code, err := p.Wait(10 * time.Second)
	if err != nil || code == 0 {
		t.Fatalf("exit %d, %v; want non-zero", code, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	groups, err := kadm.NewClient(cl).DescribeGroups(t.Context(), e.group)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := groups[e.group]; ok && g.Err == nil && (len(g.Members) > 0 || g.State != "Dead") {
		t.Fatalf("the group %s exists with state %s and %d members", e.group, g.State, len(g.Members))
	}
	if c := total(e.committed()); c != 0 {
		t.Fatalf("committed %d offsets", c)
	}
}

// Scenario 20: partitions added to a topic at runtime are picked up (from
// the earliest offset) within kafka.metadata_max_age.
func TestScenario20PartitionsAddedAtRuntime(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 2, 2)
	rec := e.record()
	n := scale(sized(4_000, 20_000))
	produced := e.produce(n/2, 200, 256)
	p := e.startMember(e.config(""), "ferry", "kafka.metadata_max_age=2s")
	e.waitCommitted(int64(n/4), time.Minute, p)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreatePartitions(t.Context(), 2, e.topics[0]); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	time.Sleep(time.Second) // producers see the new partitions with their next metadata
	produced = append(produced, e.produceFrom(n/2, n, 200, 256)...)
	e.waitCommitted(-1, 2*time.Minute, p)
	e.stop(p)
	newParts := 0
	for _, pr := range produced {
		if pr.Partition >= 2 {
			newParts++
		}
	}
	if newParts == 0 {
		t.Fatal("no record went to the new partitions")
	}
	rec.verify(produced, "key", history.Options{})
}

// Scenario 21: retention passed the committed offset while ferry was
// stopped. With on_offset_lost=fail ferry refuses to skip; with earliest it
// skips to the log start, says so loudly and counts the skipped offsets.
func TestScenario21RetentionPassedCommit(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 1, 1)
	rec := e.record()
	produced := e.produce(1000, 10, 128)
	cfg := e.config("")
	p := e.startMember(cfg, "ferry-1")
	e.waitCommitted(-1, time.Minute, p)
	e.stop(p)
	more := e.produceFrom(1000, 2000, 10, 128) // offsets 1000..1999, not delivered yet
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: e.topics[0], Partition: 0, At: 1500})
	if _, err := kadm.NewClient(cl).DeleteRecords(t.Context(), del); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	failing := e.startMember(cfg, "ferry-fail")
	code, err := failing.Wait(time.Minute)
	if err != nil || code == 0 || !strings.Contains(failing.Tail(), "on_offset_lost") {
		t.Fatalf("on_offset_lost=fail: exit %d, %v:\n%s", code, err, failing.Tail())
	}
	if c := e.committed()[e.topics[0]][0]; c != 1000 {
		t.Fatalf("committed %d after the refusal, want 1000", c)
	}

	p2 := e.startMember(cfg, "ferry-earliest", "kafka.on_offset_lost=earliest")
	e.waitCommitted(-1, time.Minute, p2)
	_, metrics := httpGet(t, p2, "/metrics")
	e.stop(p2)
	if got := metric(metrics, "ferry_offsets_lost_total"); got != 500 {
		t.Errorf("ferry_offsets_lost_total = %v, want 500", got)
	}
	if !strings.Contains(readFile(t, p2.LogPath()), "kafka records were deleted before ferry delivered them") {
		t.Error("the skip was not logged")
	}
	survivors := append([]harness.Produced(nil), produced...)
	for _, pr := range more {
		if pr.Offset >= 1500 {
			survivors = append(survivors, pr)
		}
	}
	rec.verify(survivors, "key", history.Options{})
}

// Scenario 22: the Kinesis stream is resharded (2 -> 4 shards) while ferry
// delivers: no errors, nothing lost and per-key order kept from parent to
// child shards, with and without aggregation. The stream is read back as a KCL
// consumer reads it (harness.DeaggregateKCL): an aggregate cut with the
// pre-reshard shard map and stored on a child shard whose range lacks some of
// its records is dropped whole, so ferry must not count it as delivered but
// re-send its records, re-cut by the refreshed map, before any later record of
// their keys (ordering "key", ferry's default).
func TestScenario22Reshard(t *testing.T) {
	for _, agg := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "aggregated"}[agg], func(t *testing.T) {
			e := newEnv(t, harness.KindMock, 1, 2, 2)
			rec := e.record()
			n := scale(sized(3_000, 10_000))
			produced := e.produce(n/2, 100, 128)
			p := e.startMember(e.config(""), "ferry", fmt.Sprintf("delivery.aggregation.enabled=%t", agg))
			e.waitCommitted(int64(n/4), time.Minute, p)

			// The second half goes in 10 chunks 100 ms apart, and the stream
			// reshards after the third: ferry is delivering (with its old
			// shard map) when the parents close, and keeps delivering after.
			const chunks = 10
			chunked := make(chan int, chunks)
			type result struct {
				recs []harness.Produced
				err  error
			}
			done := make(chan result, 1)
			go func() {
				var out []harness.Produced
				for i := range chunks {
					from, to := n/2+i*(n/2)/chunks, n/2+(i+1)*(n/2)/chunks
					recs, err := harness.Produce(t.Context(), e.brokers, e.records(from, to, 100, 128))
					if err != nil {
						done <- result{err: err}
						return
					}
					out = append(out, recs...)
					chunked <- i
					select {
					case <-t.Context().Done():
						done <- result{err: t.Context().Err()}
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
				done <- result{recs: out}
			}()
			for range 3 {
				select {
				case <-chunked:
				case r := <-done:
					t.Fatalf("produce: %v", r.err)
				}
			}
			atReshard := total(e.committed())
			end := rec.fault("UpdateShardCount 2 -> 4", true)
			_, err := e.kc.UpdateShardCount(t.Context(), &kinesis.UpdateShardCountInput{
				StreamName: aws.String(e.stream), TargetShardCount: aws.Int32(4), ScalingType: types.ScalingTypeUniformScaling})
			if err != nil {
				t.Fatal(err)
			}
			waitActive(t, e.kc, e.stream)
			end()
			after := chunks - 3 - len(chunked) // chunks not yet produced when the children took over
			r := <-done
			if r.err != nil {
				t.Fatalf("produce: %v", r.err)
			}
			produced = append(produced, r.recs...)
			t.Logf("resharding began with %d of %d records committed (%d produced); %d of %d chunks produced after it ended",
				atReshard, n, n/2+3*(n/2)/chunks, after, chunks)
			if after == 0 {
				t.Fatal("every record was produced before the stream was ACTIVE again")
			}
			e.waitCommitted(-1, 2*time.Minute, p)
			_, metrics := httpGet(t, p, "/metrics")
			e.stop(p)
			t.Logf("ferry: %v shard prediction misses, %v wrong-shard aggregates re-sent",
				metric(metrics, "ferry_shard_prediction_misses_total"), metric(metrics, "ferry_wrong_shard_aggregates_total"))

			rep := rec.verify(produced, "key", history.Options{})
			t.Logf("aggregation %t: %d per-key inversions across the reshard", agg, rep.Inversions)
			if !agg {
				t.Log(rec.kcl.Summary()) // verify logs it when there are aggregates
			}
			if len(rec.kcl.Shards) < 6 {
				t.Fatalf("stream has %d shards after the reshard, want 2 closed parents and 4 children", len(rec.kcl.Shards))
			}
			// Records, and with aggregation aggregates, must sit on both the
			// closed parents (written before the reshard) and the children.
			var parents, children int
			for _, s := range rec.kcl.Shards {
				k := s.Records
				if agg {
					k = s.Aggregates
				}
				if s.Shard.Open {
					children += k
				} else {
					parents += k
				}
			}
			what := map[bool]string{false: "records", true: "aggregates"}[agg]
			t.Logf("%d %s on the parent shards, %d on the children", parents, what, children)
			if parents == 0 || children == 0 {
				t.Fatalf("%d %s on the parent shards and %d on the children: want both", parents, what, children)
			}
		})
	}
}

func waitActive(t *testing.T, kc *kinesis.Client, stream string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		out, err := kc.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("stream %s not ACTIVE again", stream)
}

// Scenario 23a: offset gaps from transactions. Committed and aborted
// transactions interleave; ferry (read_committed) delivers only committed
// records and its commits reach the high watermark, past the markers.
func TestScenario23TransactionGaps(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 2, 2)
	rec := e.record()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.TransactionalID("ferry-test-"+e.name),
		kgo.DefaultProduceTopic(e.topics[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var produced []harness.Produced
	for txn := range 20 {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for i := range 25 {
			idx := txn*25 + i
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "key-%d", idx%10), Value: fmt.Appendf(nil, "%s|%d|", e.topics[0], idx)})
		}
		res := cl.ProduceSync(t.Context(), recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		commit := txn%3 != 1 // every third transaction aborts
		if err := cl.EndTransaction(t.Context(), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
		if commit {
			for _, r := range res {
				produced = append(produced, harness.Produced{Topic: r.Record.Topic, Partition: r.Record.Partition,
					Offset: r.Record.Offset, Key: r.Record.Key, Value: r.Record.Value})
			}
		}
	}
	p := e.startMember(e.config(""), "ferry")
	e.waitCommitted(-1, time.Minute, p) // the end offsets include the markers
	e.stop(p)
	rec.verify(produced, "key", history.Options{}) // an aborted record read back is a phantom
}

// Scenario 23b: offset gaps from compaction (kfake compacts on demand).
func TestScenario23CompactionGaps(t *testing.T) {
	e, c := newKfakeEnv(t, 0, 1, 1)
	compact := "compact"
	topic := e.name + ".compacted"
	if err := harness.CreateTopicWithConfigs(t.Context(), e.brokers, topic, 1, map[string]*string{"cleanup.policy": &compact}); err != nil {
		t.Fatal(err)
	}
	e.topics = []string{topic}
	rec := e.record()
	var all []harness.Produced
	for b := range 60 { // many batches: compaction never touches the last one
		var recs []*kgo.Record
		for i := b * 10; i < (b+1)*10; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "key-%d", i%50), Value: fmt.Appendf(nil, "%s|%d|", topic, i)})
		}
		acked, err := harness.Produce(t.Context(), e.brokers, recs)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, acked...)
	}
	c.Compact()
	// What survived compaction is what a consumer reads now.
	left := map[int64]bool{}
	for _, r := range consumeTopic(t, e.brokers, topic, 1) {
		left[r.Offset] = true
	}
	for _, r := range consumeAllNow(t, e.brokers, topic) {
		left[r.Offset] = true
	}
	var produced []harness.Produced
	for _, pr := range all {
		if left[pr.Offset] {
			produced = append(produced, pr)
		}
	}
	if len(produced) == len(all) || len(produced) == 0 {
		t.Fatalf("compaction left %d of %d records: no gaps to test", len(produced), len(all))
	}
	t.Logf("compaction left %d of %d records", len(produced), len(all))
	p := e.startMember(e.config(""), "ferry")
	e.waitCommitted(-1, time.Minute, p)
	e.stop(p)
	rep := rec.verify(produced, "key", history.Options{})
	if rep.Read != len(produced) && rep.Read != len(all) {
		t.Fatalf("read %d records", rep.Read)
	}
}

var (
	_ = context.Background
	_ = os.Getenv
	_ = filepath.Join
	_ = syscall.SIGTERM
)
