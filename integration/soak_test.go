//go:build integration

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/faultproxy"
	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/integration/internal/history"
)

// soakDuration is how long scenario 24 injects faults: 2 minutes in CI,
// FERRY_TEST_SOAK_DURATION (make soak DURATION=30m) otherwise.
func soakDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("FERRY_TEST_SOAK_DURATION")); err == nil && d > 0 {
		return d
	}
	return 2 * time.Minute
}

// Scenario 24: a nemesis mixes crashes (3), broker restarts (8), throttling
// (11), partial failures (12) and ambiguous failures (14) at random while a
// producer writes continuously and two ferry instances share the work.
// After the faults heal, the whole history must satisfy P1–P6.
func TestScenario24NemesisSoak(t *testing.T) {
	k, err := harness.StartKafka(t.Context(), t.TempDir())
	harness.Require(t, err)
	t.Cleanup(k.Close)
	e := newEnvOn(t, k, harness.KindKinesalite, 1, 6, 4)
	rec := e.record()
	cfg := e.config("")
	procs := []*harness.Process{e.startMember(cfg, "ferry-0"), e.startMember(cfg, "ferry-1")}

	// The producer: 500 records every 250 ms, for as long as the nemesis runs.
	var (
		mu       sync.Mutex
		produced []harness.Produced
	)
	prodCtx, stopProducing := context.WithCancel(t.Context())
	var prodDone sync.WaitGroup
	prodDone.Go(func() {
		next := 0
		for prodCtx.Err() == nil {
			recs := make([]*kgo.Record, 500)
			for i := range recs {
				recs[i] = &kgo.Record{Topic: e.topics[0], Key: fmt.Appendf(nil, "key-%d", next%2000),
					Value: fmt.Appendf(nil, "%s|%d|", e.topics[0], next)}
				next++
			}
			ctx, cancel := context.WithTimeout(prodCtx, 30*time.Second)
			acked, _ := harness.Produce(ctx, e.brokers, recs) // records not acked are not in the history
			cancel()
			mu.Lock()
			produced = append(produced, acked...)
			mu.Unlock()
			select {
			case <-prodCtx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	})

	deadline := time.Now().Add(soakDuration())
	counts := map[string]int{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 24))
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(3+rng.IntN(5)) * time.Second)
		kind := []string{"crash", "broker-restart", "throttle", "partial", "ambiguous"}[rng.IntN(5)]
		counts[kind]++
		switch kind {
		case "crash":
			i := rng.IntN(len(procs))
			end := rec.fault(fmt.Sprintf("SIGKILL ferry-%d", i), false)
			_ = procs[i].Signal(syscall.SIGKILL)
			_, _ = procs[i].Wait(10 * time.Second)
			time.Sleep(2 * time.Second)
			procs[i] = e.startMember(cfg, fmt.Sprintf("ferry-%d-%d", i, counts[kind]))
			end()
		case "broker-restart":
			end := rec.fault("broker restart", false)
			if err := k.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			if err := k.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			end()
		default:
			end := rec.fault(kind, false)
			switch kind {
			case "throttle":
				e.proxy.SetThrottle(0.3)
			case "partial":
				e.proxy.SetPartialFailure(0.2, "ProvisionedThroughputExceededException")
			case "ambiguous":
				e.proxy.SetAmbiguous(0.1, faultproxy.Ambiguous500)
			}
			time.Sleep(8 * time.Second)
			e.proxy.Reset()
			end()
		}
		for i, p := range procs {
			if p.Exited() {
				t.Fatalf("ferry-%d exited during the soak:\n%s", i, p.Tail())
			}
		}
	}
	stopProducing()
	prodDone.Wait()
	e.proxy.Reset()
	e.waitCommitted(-1, 3*time.Minute, procs...)
	for _, p := range procs {
		e.stop(p)
	}
	t.Logf("soak of %s: faults %v, records produced %d", soakDuration(), counts, len(produced))
	rep := rec.verify(produced, "key", history.Options{AllowDuplicates: true, DrainWithin: 3 * time.Minute})
	t.Logf("duplicated records %d (extra copies %d)", rep.Duplicated, rep.DuplicateCopies)
}
