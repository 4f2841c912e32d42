//go:build integration

package integration

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/integration/internal/history"
)

// chaos reports whether the full-size matrix runs (make chaos).
func chaos() bool { return os.Getenv("FERRY_TEST_CHAOS") == "1" }

// sized picks the CI size or, under make chaos, the full size.
func sized[T any](ci, full T) T {
	if chaos() {
		return full
	}
	return ci
}

// recorder collects a run's history as it happens: the group's committed
// offsets every 100 ms, the ferry processes started, and the faults.
type recorder struct {
	e       *env
	sampler *history.Sampler
	members []history.Member
	faults  []history.Fault
	kcl     harness.KCLRead // set by verify: the stream as a KCL consumer reads it
}

// record starts sampling the env's group. Call it before starting ferry.
func (e *env) record() *recorder {
	e.t.Helper()
	r := &recorder{e: e, sampler: history.StartSampler(e.t.Context(), e.brokers, e.group, 100*time.Millisecond)}
	e.rec = r
	e.t.Cleanup(func() { r.sampler.Stop() })
	return r
}

// member registers a started ferry process.
func (r *recorder) member(name string, p *harness.Process) {
	r.members = append(r.members, history.Member{Name: name, LogPath: p.LogPath()})
}

// fault records a fault starting now, with the committed offsets at this
// instant. clean means the fault must not cause duplicates. The returned
// function marks its end.
func (r *recorder) fault(name string, clean bool) func() {
	r.e.t.Helper()
	snap, err := history.Snapshot(r.e.t.Context(), r.e.brokers, r.e.group)
	if err != nil {
		r.e.t.Fatalf("snapshot at fault %s: %v", name, err)
	}
	r.faults = append(r.faults, history.Fault{Name: name, Start: time.Now(), Committed: snap, Clean: clean})
	i := len(r.faults) - 1
	return func() { r.faults[i].End = time.Now() }
}

// verify reads the stream back as a KCL consumer would (harness.DeaggregateKCL:
// an aggregate stored on a shard whose hash range lacks one of its user
// records is dropped whole, so its records count as lost unless they were
// written again), checks the whole history and fails the test on any violated
// property. It returns the report for scenario-specific assertions; r.kcl
// holds the read's counts.
func (r *recorder) verify(produced []harness.Produced, ordering string, o history.Options) history.Report {
	e := r.e
	e.t.Helper()
	time.Sleep(300 * time.Millisecond) // a last sample after the final commit
	samples := r.sampler.Stop()
	ctx, cancel := context.WithTimeout(e.t.Context(), 3*time.Minute)
	defer cancel()
	raw, err := harness.ReadAll(ctx, e.kc, e.stream)
	if err != nil {
		e.t.Fatalf("read back: %v", err)
	}
	shards, err := harness.ListShardRanges(ctx, e.kc, e.stream)
	if err != nil {
		e.t.Fatalf("read back: %v", err)
	}
	r.kcl, err = harness.DeaggregateKCL(raw, shards)
	if err != nil {
		e.t.Fatalf("read back: %v", err)
	}
	if r.kcl.Aggregates() > 0 {
		e.t.Log(r.kcl.Summary())
	}
	read := r.kcl.Records
	ends, err := history.EndOffsets(ctx, e.brokers, e.topics...)
	if err != nil {
		e.t.Fatal(err)
	}
	rep := history.Check(history.History{
		Produced: produced, Read: read, Samples: samples, Members: r.members,
		Faults: r.faults, Ends: ends, Ordering: ordering,
	}, o)
	e.t.Logf("history of %s:\n%s", e.t.Name(), rep.Summary())
	if err := rep.Err(); err != nil {
		e.t.Fatal(err)
	}
	return rep
}

// startMember starts ferry and registers it with the recorder.
func (e *env) startMember(cfg, name string, sets ...string) *harness.Process {
	e.t.Helper()
	p := e.start(cfg, name, sets...)
	if e.rec != nil {
		e.rec.member(name, p)
	}
	return p
}

// rss returns a process's peak resident set size in bytes (VmHWM).
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range splitLines(string(b)) {
		var kb int64
		if n, _ := sscanf(line, "VmHWM: %d kB", &kb); n == 1 {
			return kb << 10
		}
	}
	return -1
}
