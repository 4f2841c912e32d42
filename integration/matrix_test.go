//go:build integration

// The reliability matrix of RELIABILITY.md section (c): one test per
// scenario, each checking the whole history (P1–P6) with the history
// checker. CI runs reduced sizes; `make chaos` (FERRY_TEST_CHAOS=1) the full
// ones; `make soak DURATION=30m` the nemesis mix for as long as asked.
package integration

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/integration/internal/history"
)

// Scenario 1: steady state, two instances sharing six partitions, no
// faults: exact delivery, nothing unseen, commits reach the end.
func TestScenario01SteadyState(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 6, 4)
	rec := e.record()
	cfg := e.config("")
	a := e.startMember(cfg, "ferry-a")
	b := e.startMember(cfg, "ferry-b")
	waitAssignedSome(t, b.LogPath()) // the group settles before the records arrive
	time.Sleep(time.Second)
	produced := e.produce(scale(sized(20_000, 100_000)), 1000, 256)
	e.waitCommitted(-1, 5*time.Minute, a, b)
	e.stop(a)
	e.stop(b)
	rep := rec.verify(produced, "key", history.Options{DrainWithin: 0})
	if rep.Duplicated != 0 {
		t.Fatalf("%d duplicates in a fault-free run", rep.Duplicated)
	}
}

// Scenario 2: one of two instances stops gracefully mid-stream and comes
// back: drain, synchronous commit, leave; zero duplicates.
func TestScenario02GracefulStopRestart(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 6, 4)
	rec := e.record()
	n := scale(sized(20_000, 100_000))
	produced := e.produce(n, 1000, 256)
	e.proxy.SetResponseDelay(100 * time.Millisecond)
	cfg := e.config("")
	// A graceful stop is duplicate-free when its drain completes; give the
	// drain room for the backlog of the full-size run (make chaos). A drain
	// that times out cancels requests in flight, which may have been stored.
	sets := []string{"kafka.rebalance_timeout=90s", "delivery.drain_timeout=60s"}
	a := e.startMember(cfg, "ferry-a", sets...)
	b := e.startMember(cfg, "ferry-b", sets...)
	e.waitCommitted(int64(n/5), 2*time.Minute, a, b)
	end := rec.fault("graceful stop of ferry-a", true)
	e.stop(a)
	a2 := e.startMember(cfg, "ferry-a2", sets...)
	end()
	e.proxy.SetResponseDelay(0)
	e.waitCommitted(-1, 3*time.Minute, a2, b)
	e.stop(a2)
	e.stop(b)
	for _, p := range []*harness.Process{a, b, a2} {
		if strings.Contains(readFile(t, p.LogPath()), "drain timeout") {
			t.Logf("%s: a drain timed out", p.LogPath())
		}
	}
	rec.verify(produced, "key", history.Options{DrainWithin: 2 * time.Minute})
}

// Scenario 3: crash mid-batch while Kinesis answers slowly: the other
// member resumes from the last commit; duplicates only at or above it.
func TestScenario03CrashMidBatch(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 6, 4)
	rec := e.record()
	n := scale(sized(20_000, 100_000))
	produced := e.produce(n, 1000, 256)
	e.proxy.SetResponseDelay(time.Second)
	cfg := e.config("")
	a := e.startMember(cfg, "ferry-a", "delivery.batch.max_records=200")
	b := e.startMember(cfg, "ferry-b", "delivery.batch.max_records=200")
	e.waitCommitted(int64(n/5), 2*time.Minute, a, b)
	end := rec.fault("SIGKILL ferry-a", false)
	if err := a.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	end()
	e.proxy.SetResponseDelay(0)
	e.waitCommitted(-1, 3*time.Minute, b)
	e.stop(b)
	rep := rec.verify(produced, "key", history.Options{AllowDuplicates: true, DrainWithin: 2 * time.Minute})
	t.Logf("duplicates after the crash: %d records (%d extra copies)", rep.Duplicated, rep.DuplicateCopies)
}

// Scenario 4: rolling bounces, three rounds in rotated order, clean
// (SIGTERM) and hard (SIGKILL). Each round must make progress; clean bounces
// write no duplicates.
func TestScenario04RollingBounce(t *testing.T) {
	for _, hard := range []bool{false, true} {
		name := map[bool]string{false: "clean", true: "hard"}[hard]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, harness.KindKinesalite, 1, 6, 4)
			rec := e.record()
			e.proxy.SetResponseDelay(50 * time.Millisecond)
			cfg := e.config("")
			// Clean bounces are duplicate-free when every drain completes:
			// give the drains room for the full-size backlog (make chaos).
			sets := []string{"kafka.rebalance_timeout=90s", "delivery.drain_timeout=60s"}
			procs := []*harness.Process{e.startMember(cfg, "ferry-0", sets...), e.startMember(cfg, "ferry-1", sets...)}
			rounds := sized(3, 6)
			perRound := scale(sized(4_000, 20_000))
			var produced []harness.Produced
			for round := range rounds {
				// Measured before this round's records exist, so that the
				// wait below asks for records of this round: a hard bounce
				// can leave the commit above half of everything produced
				// so far, and a bare "half of it" would then be met at once.
				before := total(e.committed())
				produced = append(produced, e.produceFrom(round*perRound, (round+1)*perRound, 500, 256)...)
				for k := range procs {
					i := (round + k) % len(procs) // rotate the order
					sig := syscall.SIGTERM
					if hard {
						sig = syscall.SIGKILL
					}
					end := rec.fault(fmt.Sprintf("round %d: %s ferry-%d", round, sig, i), !hard)
					if err := procs[i].Signal(sig); err != nil {
						t.Fatal(err)
					}
					if code, err := procs[i].Wait(30 * time.Second); err != nil || (!hard && code != 0) {
						t.Fatalf("ferry-%d: exit %d, %v", i, code, err)
					}
					time.Sleep(sized(2*time.Second, 10*time.Second))
					procs[i] = e.startMember(cfg, fmt.Sprintf("ferry-%d-r%d", i, round), sets...)
					end()
				}
				e.waitCommitted(max(int64(len(produced)/2), before+int64(perRound/2)), 2*time.Minute, procs...)
				if after := total(e.committed()); after <= before {
					t.Fatalf("round %d made no progress (committed %d -> %d)", round, before, after)
				}
			}
			e.proxy.SetResponseDelay(0)
			e.waitCommitted(-1, 3*time.Minute, procs...)
			for _, p := range procs {
				e.stop(p)
			}
			rec.verify(produced, "key", history.Options{AllowDuplicates: hard, DrainWithin: 2 * time.Minute})
		})
	}
}

// Scenario 5: scale out while Kinesis is slow (2 s answers): revoked
// partitions are drained or fenced, no late marks, no foreign commits.
func TestScenario05ScaleOutSlowKinesis(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 6, 4)
	rec := e.record()
	n := scale(sized(15_000, 60_000))
	produced := e.produce(n, 1000, 256)
	e.proxy.SetResponseDelay(2 * time.Second)
	cfg := e.config("")
	a := e.startMember(cfg, "ferry-a")
	e.waitCommitted(int64(n/10), 2*time.Minute, a)
	end := rec.fault("scale out to ferry-b", false)
	b := e.startMember(cfg, "ferry-b")
	waitLog(t, b.LogPath(), "partitions assigned", time.Minute)
	end()
	e.proxy.SetResponseDelay(0)
	e.waitCommitted(-1, 3*time.Minute, a, b)
	e.stop(a)
	e.stop(b)
	rep := rec.verify(produced, "key", history.Options{AllowDuplicates: true, DrainWithin: 2 * time.Minute})
	if rep.Duplicated > 0 {
		t.Logf("scale-out duplicates: %d (the 10 s drain covers 2 s answers, so none expected)", rep.Duplicated)
	}
}

// Scenario 6: a PutRecords answer for a revoked partition arrives after the
// revoke gave up waiting (drain timeout 2 s, answers held 6 s). The late
// acknowledgement must not mark the partition: the old owner never commits
// it again.
func TestScenario06LateAckAfterRevoke(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 6, 4)
	rec := e.record()
	n := scale(sized(10_000, 40_000))
	cfg := e.config("")
	e.proxy.SetResponseDelay(100 * time.Millisecond)
	a := e.startMember(cfg, "ferry-a", "delivery.drain_timeout=2s", "delivery.batch.max_records=100")
	// Produce in small rounds while ferry runs, so that every partition has
	// records in flight when the answers start being held (a bulk load
	// would queue one partition's records first).
	var produced []harness.Produced
	var producing sync.WaitGroup
	producing.Go(func() {
		for i := 0; i < n; i += 120 {
			acked, err := harness.Produce(t.Context(), e.brokers, e.records(i, min(i+120, n), 1000, 256))
			if err != nil {
				t.Error(err)
				return
			}
			produced = append(produced, acked...)
			time.Sleep(10 * time.Millisecond)
		}
	})
	e.waitCommitted(int64(n/10), 2*time.Minute, a)
	e.proxy.SetResponseDelay(6 * time.Second)
	time.Sleep(500 * time.Millisecond) // requests are now held
	end := rec.fault("rebalance while answers are held past the drain timeout", false)
	b := e.startMember(cfg, "ferry-b", "delivery.drain_timeout=2s", "delivery.batch.max_records=100")
	waitLog(t, a.LogPath(), "partitions revoked", time.Minute)
	time.Sleep(6 * time.Second) // the held answers arrive, late
	e.proxy.SetResponseDelay(0)
	end()
	producing.Wait()
	e.waitCommitted(-1, 3*time.Minute, a, b)
	e.stop(a)
	e.stop(b)
	if !strings.Contains(readFile(t, a.LogPath()), "revoke drain timeout") {
		t.Fatal("the revoke never timed out: the late-ack case was not exercised")
	}
	rec.verify(produced, "key", history.Options{AllowDuplicates: true, DrainWithin: 2 * time.Minute})
}

// Scenario 7: a zombie: ferry-a is frozen (SIGSTOP) past the session timeout,
// its partitions move to ferry-b, then it wakes up (SIGCONT). It must see the
// partitions lost, commit nothing for them, and rejoin.
func TestScenario07ZombieLostPartitions(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 6, 4)
	rec := e.record()
	n := scale(sized(15_000, 60_000))
	produced := e.produce(n, 1000, 256)
	e.proxy.SetResponseDelay(200 * time.Millisecond)
	cfg := e.config("")
	a := e.startMember(cfg, "ferry-a")
	b := e.startMember(cfg, "ferry-b")
	e.waitCommitted(int64(n/5), 2*time.Minute, a, b)
	end := rec.fault("SIGSTOP ferry-a past the session timeout", false)
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second) // session timeout is 6 s
	if err := a.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	end()
	e.proxy.SetResponseDelay(0)
	e.waitCommitted(-1, 3*time.Minute, a, b)
	e.stop(a)
	e.stop(b)
	rec.verify(produced, "key", history.Options{AllowDuplicates: true, DrainWithin: 2 * time.Minute})
	log := readFile(t, a.LogPath())
	if !strings.Contains(log, "partitions lost") && !strings.Contains(log, "partitions revoked") {
		t.Fatal("ferry-a never noticed it lost its partitions")
	}
}

// Scenario 8: the Kafka broker stops and restarts on the same port and data
// mid-stream: the client reconnects, nothing is lost.
func TestScenario08BrokerRestart(t *testing.T) {
	k, err := harness.StartKafka(t.Context(), t.TempDir())
	harness.Require(t, err)
	t.Cleanup(k.Close)
	e := newEnvOn(t, k, harness.KindKinesalite, 1, 4, 2)
	rec := e.record()
	n := scale(sized(10_000, 50_000))
	produced := e.produce(n/2, 500, 256)
	e.proxy.SetResponseDelay(50 * time.Millisecond)
	p := e.startMember(e.config(""), "ferry")
	e.waitCommitted(int64(n/8), 2*time.Minute, p)
	end := rec.fault("broker restart", false)
	if err := k.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(sized(3*time.Second, 10*time.Second))
	if err := k.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	end()
	e.proxy.SetResponseDelay(0)
	produced = append(produced, e.produceFrom(n/2, n, 500, 256)...)
	e.waitCommitted(-1, 3*time.Minute, p)
	e.stop(p)
	rep := rec.verify(produced, "key", history.Options{AllowDuplicates: true, DrainWithin: 2 * time.Minute})
	t.Logf("duplicates after the broker restart: %d", rep.Duplicated)
}

var _ = rand.IntN
var _ sync.Mutex
