//go:build integration

package integration

import (
	"fmt"
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
	cfg := strings.ReplaceAll(readFile(t, e.config("")), e.proxy.URL(), sink.URL())
	path := filepath.Join(t.TempDir(), "sink.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Steady state: both members join and the group settles before the
	// records arrive (a member joining mid-delivery is a rebalance, which
	// scenarios 4 and 5 cover).
	a := e.startMember(path, "ferry-a", "observability.log_level=info")
	b := e.startMember(path, "ferry-b", "observability.log_level=info")
	waitAssignedSome(t, b.LogPath())
	time.Sleep(time.Second)
	start := time.Now()
	produced := e.produce(n, 10_000, 256)
	e.waitCommitted(-1, 5*time.Minute, a, b)
	took := time.Since(start)
	var sdkResends, ambiguous float64
	for _, p := range []*harness.Process{a, b} {
		_, m := httpGet(t, p, "/metrics")
		sdkResends += metric(m, "ferry_kinesis_sdk_resends_total")
		ambiguous += metric(m, "ferry_ambiguous_resends_total")
	}
	e.stop(a)
	e.stop(b)
	st := sink.Stats()
	t.Logf("%d records in %s (%.0f records/s incl. start-up and group join); sink: %+v",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), st)
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
	if st.Duplicates != 0 || st.LimitViolations != 0 || sdkResends != 0 || ambiguous != 0 {
		t.Fatalf("duplicates %d, limit violations %d, SDK resends %v, ambiguous resends %v: want all zero",
			st.Duplicates, st.LimitViolations, sdkResends, ambiguous)
	}
	// Commits: monotonic, by owners only, reaching the end (P4-P6); the
	// sink keeps no records, so P1-P3 were checked above from its counts.
	samples := rec.sampler.Stop()
	ends, err := history.EndOffsets(t.Context(), e.brokers, e.topics...)
	if err != nil {
		t.Fatal(err)
	}
	rep := history.Check(history.History{Samples: samples, Members: rec.members, Ends: ends, Ordering: "none"}, history.Options{})
	t.Logf("commit history:\n%s", rep.Summary())
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	_ = fmt.Sprint()
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
