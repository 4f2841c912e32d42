//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// Bounded runs (ferry run --until), end to end on the real broker and
// kinesis-mock: each run must exit 0 by itself, every record below the
// bound must be read back from the stream, nothing at or past it, and the
// group's committed offsets must be the bounds the run captured.

// startUntil runs `ferry run --until until` with progress lines every
// second.
func (e *env) startUntil(cfg, name, until string, sets ...string) *harness.Process {
	e.t.Helper()
	args := []string{"run", "--config", cfg, "--until", until, "--progress-interval", "1s"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return startFerry(e.t, e.bin, args, os.Environ(), name)
}

// waitExitZero waits for a bounded run to end by itself, with exit code 0.
func waitExitZero(t *testing.T, p *harness.Process, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	code, err := p.Wait(timeout)
	if err != nil || code != 0 {
		t.Fatalf("the bounded run did not exit 0 by itself: exit %d, %v; last lines:\n%s", code, err, p.Tail())
	}
	return time.Since(start)
}

// logEvents returns the JSON log lines of path whose msg is msg.
func logEvents(t *testing.T, path, msg string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev["msg"] == msg {
			out = append(out, ev)
		}
	}
	return out
}

// capturedBounds reads the bounds the processes logged when their
// partitions were assigned; a partition captured by several keeps the
// highest (with a live topic a later capture is higher).
func capturedBounds(t *testing.T, procs ...*harness.Process) map[string]map[int32]int64 {
	t.Helper()
	out := map[string]map[int32]int64{}
	for _, p := range procs {
		for _, ev := range logEvents(t, p.LogPath(), "partition bound captured") {
			topic, _ := ev["topic"].(string)
			part, _ := ev["partition"].(float64)
			bound, _ := ev["bound"].(float64)
			if out[topic] == nil {
				out[topic] = map[int32]int64{}
			}
			out[topic][int32(part)] = max(out[topic][int32(part)], int64(bound))
		}
	}
	return out
}

// assertCommittedAtBounds checks the group's commits are exactly want, for
// every partition of want.
func (e *env) assertCommittedAtBounds(want map[string]map[int32]int64) {
	e.t.Helper()
	got := e.committed()
	for topic, ps := range want {
		for p, off := range ps {
			if got[topic][p] != off {
				e.t.Errorf("%s/%d committed at %d, want the bound %d (committed %v, bounds %v)", topic, p, got[topic][p], off, got, want)
			}
		}
	}
}

// assertSummary checks the run's last line: complete, with records.
func assertSummary(t *testing.T, p *harness.Process, wantRecords int64) {
	t.Helper()
	evs := logEvents(t, p.LogPath(), "bounded run finished")
	if len(evs) != 1 {
		t.Fatalf("%d summary lines, want 1", len(evs))
	}
	ev := evs[0]
	if ev["complete"] != true || (wantRecords >= 0 && int64(ev["records"].(float64)) != wantRecords) || ev["elapsed"] == "" || ev["topics"] == nil {
		t.Errorf("summary %v, want complete with %d records", ev, wantRecords)
	}
}

func lso(t *testing.T, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	l, err := kadm.NewClient(cl).ListCommittedOffsets(t.Context(), topic)
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// (1) A transactional topic under read_committed. Committed and aborted
// transactions interleave and every partition ends with an aborted one, so
// its end is an abort marker; partition 0 also has a transaction still open,
// so its bound is the last stable offset, below the high watermark. Only
// committed records arrive, and the commits stop at the last stable offsets.
func TestUntilEndTransactional(t *testing.T) {
	e := newEnv(t, harness.KindMock, 1, 3, 2)
	topic := e.topics[0]
	txn := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	cl := txn("ferry-test-" + e.name)
	var produced []harness.Produced
	idx := 0
	for n := range 9 {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for range 30 {
			recs = append(recs, &kgo.Record{Partition: int32(idx % 3), Key: fmt.Appendf(nil, "key-%d", idx%10),
				Value: fmt.Appendf(nil, "%s|%d|", topic, idx)})
			idx++
		}
		res := cl.ProduceSync(t.Context(), recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		commit := n%3 != 2 // the third, sixth and last abort
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
	open := txn("ferry-test-open-" + e.name)
	if err := open.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var openRecs []*kgo.Record
	for range 5 {
		openRecs = append(openRecs, &kgo.Record{Partition: 0, Key: []byte("open"), Value: fmt.Appendf(nil, "%s|%d|", topic, idx)})
		idx++
	}
	if err := open.ProduceSync(t.Context(), openRecs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	bounds := lso(t, e.brokers, topic)
	hwm, err := harness.EndOffsets(t.Context(), e.brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	if bounds[0] != hwm[0]-5 || bounds[1] != hwm[1] {
		t.Fatalf("last stable offsets %v, high watermarks %v: want partition 0's 5 open records between them", bounds, hwm)
	}

	p := e.startUntil(e.config(""), "ferry", "end", "kafka.isolation_level=read_committed")
	took := waitExitZero(t, p, 2*time.Minute)
	t.Logf("the bounded run took %s", took)
	if got := capturedBounds(t, p)[topic]; fmt.Sprint(got) != fmt.Sprint(bounds) {
		t.Errorf("ferry captured %v, want the last stable offsets %v", got, bounds)
	}
	e.assertCommittedAtBounds(map[string]map[int32]int64{topic: bounds})
	assertSummary(t, p, -1)
	r := e.readBack(produced) // an aborted or open record read back fails here
	assertNoLoss(t, r)
	if len(r.dups) > 0 {
		t.Errorf("%d records written twice", len(r.dups))
	}
	if err := open.EndTransaction(t.Context(), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

// (2) A compacted topic, cleaned before the run: the first offsets hold
// nothing any more. Kafka never cleans the active segment, so it leaves no
// gap at the very end of a log by itself; the run's bound is instead put
// inside the log by producing more records after ferry captured it (while
// Kinesis is throttled, so ferry cannot be done yet). ferry must deliver the
// records that survived below the bound, stop on the first record past it,
// commit the bound exactly and exit 0.
func TestUntilEndCompacted(t *testing.T) {
	e := newEnv(t, harness.KindMock, 0, 1, 1)
	topic := e.name + ".compacted"
	str := func(s string) *string { return &s }
	if err := harness.CreateTopicWithConfigs(t.Context(), e.brokers, topic, 1, map[string]*string{
		"cleanup.policy": str("compact"), "segment.ms": str("100"), "min.cleanable.dirty.ratio": str("0.01"),
		"delete.retention.ms": str("0"), "min.compaction.lag.ms": str("0"),
	}); err != nil {
		t.Fatal(err)
	}
	e.topics = []string{topic}
	idx := 0
	round := func(keys []string) []harness.Produced {
		var recs []*kgo.Record
		for _, k := range keys {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(k), Value: fmt.Appendf(nil, "%s|%d|", topic, idx)})
			idx++
		}
		out, err := harness.Produce(t.Context(), e.brokers, recs)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // past segment.ms: the next append rolls a segment
		return out
	}
	keys := func(prefix string, n, times int) []string {
		var out []string
		for range times {
			for i := range n {
				out = append(out, fmt.Sprintf("%s-%d", prefix, i))
			}
		}
		return out
	}
	round(keys("key", 50, 4))                                 // offsets 0-199: all superseded
	survivors := round(keys("key", 50, 1))                    // 200-249
	survivors = append(survivors, round([]string{"last"})...) // 250, in the active segment
	end := int64(251)

	// Wait for the cleaner (it wakes every log.cleaner.backoff.ms, 15 s).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n := countRecords(t, e.brokers, topic)
		if n == len(survivors) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log cleaner left %d records of %d within 2 minutes, want %d", n, end, len(survivors))
		}
		time.Sleep(2 * time.Second)
	}

	e.proxy.SetThrottle(1) // nothing is delivered until the late records are in
	p := e.startUntil(e.config(""), "ferry", "end")
	waitLog(t, p.LogPath(), "partition bound captured", time.Minute)
	late := keys("late", 20, 1)
	round(late)
	e.proxy.SetThrottle(0)
	waitExitZero(t, p, 2*time.Minute)

	if got := capturedBounds(t, p)[topic][0]; got != end {
		t.Fatalf("ferry captured the bound %d, want %d", got, end)
	}
	e.assertCommittedAtBounds(map[string]map[int32]int64{topic: {0: end}})
	if len(logEvents(t, p.LogPath(), "partition reached its bound")) != 1 {
		t.Errorf("ferry did not log stopping on the first record past the bound")
	}
	assertSummary(t, p, end)   // offsets passed: the compacted gap counts
	r := e.readBack(survivors) // a late record read back fails here
	assertNoLoss(t, r)
	if r.read != len(survivors) {
		t.Errorf("read %d records, want the %d survivors", r.read, len(survivors))
	}
}

// countRecords reads a topic from the start to its end and counts records.
func countRecords(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	return len(consumeAllNow(t, brokers, topic))
}

// (3) Two instances in one group, both with --until end, both exit 0 and
// everything arrives. "together": they start at once on a still topic, share
// the partitions and finish together (an instance leaves only once the
// group's commits reach its snapshot of the ends). "handoff": the topic
// grows after the first instance captured its ends, and the second starts
// later: the first stops at its own ends, waits only for what its snapshot
// covers and leaves; its partitions go to the second, which captures their
// ends afresh and delivers the rest. Rate limiting (one shard at 1,000
// records/s per instance) keeps each run some seconds long.
func TestUntilEndTwoInstances(t *testing.T) {
	for _, handoff := range []bool{false, true} {
		t.Run(map[bool]string{false: "together", true: "handoff"}[handoff], func(t *testing.T) {
			e := newEnv(t, harness.KindMock, 2, 3, 1)
			produced := e.produce(scale(6000), 100, 100)
			cfg := e.config("")
			a := e.startUntil(cfg, "ferry-a", "end", "delivery.rate_limit.enabled=true")
			if handoff {
				waitLog(t, a.LogPath(), "partition bound captured", time.Minute)
				produced = append(produced, e.produceFrom(scale(6000), scale(8000), 100, 100)...)
				time.Sleep(time.Second)
			}
			b := e.startUntil(cfg, "ferry-b", "end", "delivery.rate_limit.enabled=true")
			took := waitExitZero(t, a, 3*time.Minute)
			tookB := waitExitZero(t, b, 3*time.Minute)
			t.Logf("ferry-a ran %s, ferry-b %s more", took, tookB)
			ends := map[string]map[int32]int64{}
			for _, topic := range e.topics {
				end, err := harness.EndOffsets(t.Context(), e.brokers, topic)
				if err != nil {
					t.Fatal(err)
				}
				ends[topic] = end
			}
			for _, p := range []*harness.Process{a, b} {
				for _, msg := range []string{"partitions assigned", "partitions revoked", "bounded run complete: every partition reached its bound"} {
					for _, ev := range logEvents(t, p.LogPath(), msg) {
						t.Logf("%s %v: %s %v", filepath.Base(p.LogPath()), ev["time"], msg, ev["partitions"])
					}
				}
				if len(logEvents(t, p.LogPath(), "partition bound captured")) == 0 {
					t.Errorf("%s was never assigned a partition: the test did not share the work", filepath.Base(p.LogPath()))
				}
				assertSummary(t, p, -1)
			}
			if handoff {
				if got := len(logEvents(t, b.LogPath(), "partitions assigned")); got < 2 {
					t.Errorf("ferry-b was assigned partitions %d times, want a second time when ferry-a left", got)
				}
				if got := capturedBounds(t, b); fmt.Sprint(got) != fmt.Sprint(ends) {
					t.Errorf("ferry-b captured %v, want every partition's end after the second round %v", got, ends)
				}
			}
			if got := capturedBounds(t, a, b); fmt.Sprint(got) != fmt.Sprint(ends) {
				t.Errorf("captured %v, want the end offsets %v", got, ends)
			}
			e.assertCommittedAtBounds(ends)
			r := e.readBack(produced)
			assertNoLoss(t, r)
			t.Logf("%d records written twice (at least once allows it)", len(r.dups))
		})
	}
}

// (4) --until timestamp:T: each partition stops at its first record
// timestamped at or after T. Records before it arrive; that record and every
// later one do not, even one timestamped before T again; the commit stops at
// that record's offset.
func TestUntilTimestamp(t *testing.T) {
	e := newEnv(t, harness.KindMock, 1, 2, 2)
	topic := e.topics[0]
	at := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	var before []harness.Produced
	idx := 0
	for part := range int32(2) {
		var recs []*kgo.Record
		for i := range 30 {
			ts := at.Add(time.Duration(i-20) * time.Second) // 0-19 before T, 20 at T, 21-29 after
			if i == 25 {
				ts = at.Add(-time.Hour) // before T, but after the stop
			}
			recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Key: fmt.Appendf(nil, "key-%d", i%5),
				Value: fmt.Appendf(nil, "%s|%d|", topic, idx), Timestamp: ts})
			idx++
		}
		out, err := produceTo(t, e.brokers, recs)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, out[:20]...)
	}
	p := e.startUntil(e.config(""), "ferry", "timestamp:"+at.UTC().Format(time.RFC3339Nano))
	waitExitZero(t, p, 2*time.Minute)
	e.assertCommittedAtBounds(map[string]map[int32]int64{topic: {0: 20, 1: 20}})
	if got := capturedBounds(t, p)[topic]; got[0] != 20 || got[1] != 20 {
		t.Errorf("captured bounds %v, want offset 20 (the first at T) on both partitions", got)
	}
	assertSummary(t, p, 40)
	r := e.readBack(before) // a record at or after T read back fails here
	assertNoLoss(t, r)
	if r.read != len(before) {
		t.Errorf("read %d records, want the %d before T", r.read, len(before))
	}
}

// produceTo writes records to the partitions they name.
func produceTo(t *testing.T, brokers []string, recs []*kgo.Record) ([]harness.Produced, error) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	res := cl.ProduceSync(t.Context(), recs...)
	if err := res.FirstErr(); err != nil {
		return nil, err
	}
	out := make([]harness.Produced, 0, len(res))
	for _, r := range res {
		out = append(out, harness.Produced{Topic: r.Record.Topic, Partition: r.Record.Partition, Offset: r.Record.Offset,
			Key: r.Record.Key, Value: r.Record.Value})
	}
	return out, nil
}

// (5) Without a terminal, a bounded run logs its progress every
// --progress-interval: done and total records, bytes, rate, ETA, per topic.
func TestUntilProgressLog(t *testing.T) {
	e := newEnv(t, harness.KindMock, 2, 1, 1)
	n := scale(4000)
	produced := e.produce(n, 50, 100)
	p := e.startUntil(e.config(""), "ferry", "end", "delivery.rate_limit.enabled=true") // ~4 s at 1,000 records/s
	waitExitZero(t, p, 2*time.Minute)
	lines := logEvents(t, p.LogPath(), "bounded run progress")
	if len(lines) < 2 {
		t.Fatalf("%d progress lines in a run of some 4 s at one a second, want at least 2", len(lines))
	}
	for _, ev := range lines {
		for _, k := range []string{"records", "total_records", "bytes", "records_per_second", "eta", "percent", "topics"} {
			if _, ok := ev[k]; !ok {
				t.Fatalf("progress line without %q: %v", k, ev)
			}
		}
	}
	last := lines[len(lines)-1]
	if total := int64(last["total_records"].(float64)); total != int64(n) {
		t.Errorf("total_records %d, want %d", total, n)
	}
	topics, _ := last["topics"].(map[string]any)
	for _, topic := range e.topics {
		if _, ok := topics[topic]; !ok {
			t.Errorf("the progress line lacks topic %s: %v", topic, last)
		}
	}
	t.Logf("last progress line: records %v of %v, %v records/s, eta %v", last["records"], last["total_records"],
		last["records_per_second"], last["eta"])
	assertSummary(t, p, int64(n))
	e.assertCommittedAtBounds(capturedBounds(t, p))
	assertNoLoss(t, e.readBack(produced))
}

// SIGTERM during a bounded run is the usual clean stop: exit 0, and the
// summary says the bound was not reached.
func TestUntilStoppedEarlyExitsZero(t *testing.T) {
	e := newEnv(t, harness.KindMock, 1, 2, 1)
	e.produce(200, 10, 64)
	e.proxy.SetThrottle(1) // never done
	p := e.startUntil(e.config(""), "ferry", "end")
	waitLog(t, p.LogPath(), "partition bound captured", time.Minute)
	time.Sleep(time.Second)
	e.stop(p)
	evs := logEvents(t, p.LogPath(), "bounded run finished")
	if len(evs) != 1 || evs[0]["complete"] != false {
		t.Fatalf("summary %v, want one line with complete false", evs)
	}
	if strings.Contains(readFile(t, p.LogPath()), "bounded run complete") {
		t.Fatal("a throttled run claimed to be complete")
	}
}

// On a terminal (a pseudo-terminal from script(1), given a size), a
// bounded run draws a bar per topic and a total, the log printing above
// them, and ends complete.
func TestUntilProgressBarsOnATerminal(t *testing.T) {
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		// script(1) is in Debian's essential bsdutils: missing only off
		// Debian, where CI does not run; a failure in CI all the same.
		harness.Require(t, fmt.Errorf("script(1) (util-linux): %w: %w", err, harness.ErrUnavailable))
	}
	e := newEnv(t, harness.KindMock, 2, 2, 1)
	n := scale(3000)
	produced := e.produce(n, 50, 100)
	out := filepath.Join(t.TempDir(), "terminal.txt")
	cmd := exec.CommandContext(t.Context(), scriptBin, "-qec", "stty cols 140 rows 40; "+e.bin+" run --config "+e.config("")+
		" --until end --set delivery.rate_limit.enabled=true --set observability.log_level=info", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ferry on a terminal: %v\n%s", err, b)
	}
	screen := ansi.ReplaceAllString(readFile(t, out), "")
	for _, want := range []string{"(all topics)", fmt.Sprintf("%d/%d records", n, n), e.topics[0], e.topics[1], "rec/s", "ETA",
		`"msg":"bounded run finished","complete":true`} {
		if !strings.Contains(screen, want) {
			t.Errorf("the terminal shows no %q:\n%s", want, screen[max(0, len(screen)-3000):])
		}
	}
	if strings.Contains(screen, "bounded run progress") {
		t.Error("progress log lines on a terminal, want bars")
	}
	ends := map[string]map[int32]int64{}
	for _, topic := range e.topics {
		end, err := harness.EndOffsets(t.Context(), e.brokers, topic)
		if err != nil {
			t.Fatal(err)
		}
		ends[topic] = end
	}
	e.assertCommittedAtBounds(ends)
	assertNoLoss(t, e.readBack(produced))
}

// ansi matches terminal control sequences.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
