//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/integration/internal/fastsink"
	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/integration/internal/history"
)

// Scenario 1 at volume: zero duplicates when nothing fails, not just few.
// 200,000 records (CI; 1,000,000 under make chaos) through two ferry
// instances into the fast sink, which accepts every entry at once and counts
// deliveries per record id. The aws-sdk-go-v2 resend hazard would show here
// as duplicates and as ferry_kinesis_sdk_resends_total > 0.
func TestScenario01SteadyStateZeroDuplicates(t *testing.T) {
	sink, err := fastsink.New(fastsink.WithShards(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	e := newEnv(t, harness.KindKinesalite, 1, 6, 1) // the emulator is unused: ferry writes to the sink
	rec := e.record()
	n := scale(sized(200_000, 1_000_000))
	path := sinkConfig(t, e, sink)
	// Steady state: both members join and the group settles before the
	// records arrive (a member joining mid-delivery is a rebalance:
	// TestScenario05ScaleOutAtFullSpeedZeroDuplicates).
	a := e.startMember(path, "ferry-a", "observability.log_level=info")
	b := e.startMember(path, "ferry-b", "observability.log_level=info")
	waitAssignedSome(t, b.LogPath())
	time.Sleep(time.Second)
	start := time.Now()
	produced := e.produce(n, 10_000, 256)
	e.waitCommitted(-1, 5*time.Minute, a, b)
	took := time.Since(start)
	t.Logf("%d records in %s (%.0f records/s incl. start-up and group join)",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	checkExactlyOnceInSink(t, e, rec, sink, produced, "none", 0, a, b)
}

// Scenario 5 at full speed: a second member joins while the first delivers
// live traffic with every in-flight slot busy, 1 entry in 100 throttled (so
// failed entries wait for a re-send) and ordering "key" (so records wait
// behind their keys). The revoke must deliver those holes below the records
// it already sent before it commits: otherwise the commit stops at the
// first hole and the new owner re-sends everything above it. A CI run
// before this was fixed showed 1,067 duplicates in this situation.
func TestScenario05ScaleOutAtFullSpeedZeroDuplicates(t *testing.T) {
	sink, err := fastsink.New(fastsink.WithShards(4), fastsink.WithDelay(250*time.Millisecond), fastsink.WithThrottle(100))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	e := newEnv(t, harness.KindKinesalite, 1, 6, 1)
	rec := e.record()
	n := scale(sized(100_000, 500_000))
	path := sinkConfig(t, e, sink)
	// At most 4 requests of 500 records per 250 ms: ferry-a needs at least
	// 12 s for the 100,000 records, long enough for ferry-b to start and
	// the group to rebalance (up to a heartbeat interval, 3 s) mid-delivery
	// however fast this machine is.
	sets := []string{"observability.log_level=info", "delivery.max_in_flight=4",
		"delivery.retry.initial=5ms", "delivery.retry.max=50ms"}
	a := e.startMember(path, "ferry-a", sets...)
	waitAssignedSome(t, a.LogPath())

	// Live traffic: every partition gets records all along, as in
	// production (records produced up front would be fetched partition
	// after partition, and the revoked ones would have sent nothing yet).
	const chunk = 5_000
	var produced []harness.Produced
	produceErr := make(chan error, 1)
	go func() {
		for from := 0; from < n; from += chunk {
			out, err := harness.Produce(t.Context(), e.brokers, e.records(from, min(from+chunk, n), 5_000, 256))
			if err != nil {
				produceErr <- err
				return
			}
			produced = append(produced, out...)
		}
		produceErr <- nil
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for sink.Stats().Distinct < int64(n/5) {
		if time.Now().After(deadline) {
			t.Fatalf("ferry-a delivered only %d records in 2 minutes", sink.Stats().Distinct)
		}
		time.Sleep(10 * time.Millisecond)
	}
	end := rec.fault("ferry-b joins at full speed", false)
	joined := sink.Stats().Distinct
	b := e.startMember(path, "ferry-b", sets...)
	waitAssignedSome(t, b.LogPath())
	end()
	assigned := sink.Stats().Distinct
	t.Logf("ferry-b started after %d records were delivered, got partitions after %d", joined, assigned)
	if err := <-produceErr; err != nil {
		t.Fatal(err)
	}
	if assigned >= int64(n) {
		t.Fatalf("ferry-a delivered everything before ferry-b got partitions: the test did not rebalance mid-delivery")
	}
	e.waitCommitted(-1, 5*time.Minute, a, b)
	checkExactlyOnceInSink(t, e, rec, sink, produced, "key", int64(n/200), a, b)
}

// sinkConfig is the env's ferry configuration pointed at the fast sink.
func sinkConfig(t *testing.T, e *env, sink *fastsink.Sink) string {
	t.Helper()
	cfg := strings.ReplaceAll(readFile(t, e.config("")), e.proxy.URL(), sink.URL())
	path := filepath.Join(t.TempDir(), "sink.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkExactlyOnceInSink stops the members and asserts that every produced
// record reached the sink exactly once, that nothing was re-sent by the SDK
// or as ambiguous, and that the commit history is sound (P4-P6; the sink
// keeps no records, so P1-P3 are checked here from its counts). minThrottled
// is how many throttled entries the run must have seen to have tested
// anything.
func checkExactlyOnceInSink(t *testing.T, e *env, rec *recorder, sink *fastsink.Sink, produced []harness.Produced,
	ordering string, minThrottled int64, members ...*harness.Process) {
	t.Helper()
	var sdkResends, ambiguous float64
	for _, p := range members {
		_, m := httpGet(t, p, "/metrics")
		sdkResends += metric(m, "ferry_kinesis_sdk_resends_total")
		ambiguous += metric(m, "ferry_ambiguous_resends_total")
	}
	for _, p := range members {
		e.stop(p)
	}
	st := sink.Stats()
	t.Logf("sink: %+v", st)
	missing := 0
	for _, pr := range produced {
		if c := sink.Count(valueID(pr.Value)); c != 1 {
			if c == 0 {
				missing++
			} else {
				t.Errorf("record %s/%d@%d delivered %d times", pr.Topic, pr.Partition, pr.Offset, c)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d records never reached the sink", missing)
	}
	if st.Throttled < minThrottled {
		t.Errorf("only %d entries throttled, want at least %d", st.Throttled, minThrottled)
	}
	if st.Duplicates != 0 || st.LimitViolations != 0 || sdkResends != 0 || ambiguous != 0 {
		t.Fatalf("duplicates %d, limit violations %d, SDK resends %v, ambiguous resends %v: want all zero",
			st.Duplicates, st.LimitViolations, sdkResends, ambiguous)
	}
	samples := rec.sampler.Stop()
	ends, err := history.EndOffsets(t.Context(), e.brokers, e.topics...)
	if err != nil {
		t.Fatal(err)
	}
	rep := history.Check(history.History{Samples: samples, Members: rec.members, Ends: ends, Ordering: ordering}, history.Options{})
	t.Logf("commit history:\n%s", rep.Summary())
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
}

// waitAssignedSome waits until a member logs a non-empty assignment.
func waitAssignedSome(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		evs, _ := history.ReadLog(path)
		for _, ev := range evs {
			if ev.Msg == history.MsgAssigned && len(ev.Partitions) > 0 {
				for _, ps := range ev.Partitions {
					if len(ps) > 0 {
						return
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never got partitions", path)
}
