package ratelimit_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/ratelimit"
)

const mib = 1 << 20

// fakeClock is a concurrency-safe manual clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func near(got, want, tol float64) bool {
	if math.IsInf(want, 0) {
		return got == want
	}
	return math.Abs(got-want) <= tol
}

func TestNewBucketCapacity(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	tests := []struct {
		name               string
		recRate, byteRate  float64
		burst              time.Duration
		wantRecs, wantByte float64
	}{
		{name: "one second", recRate: 1000, byteRate: mib, burst: time.Second, wantRecs: 1000, wantByte: mib},
		{name: "two seconds", recRate: 1000, byteRate: mib, burst: 2 * time.Second, wantRecs: 2000, wantByte: 2 * mib},
		{name: "short burst keeps one max record", recRate: 1000, byteRate: mib, burst: 100 * time.Millisecond, wantRecs: 100, wantByte: mib},
		{name: "zero burst keeps one record", recRate: 1000, byteRate: 4 * mib, burst: 0, wantRecs: 1, wantByte: mib},
		{name: "negative burst is zero", recRate: 1000, byteRate: mib, burst: -time.Second, wantRecs: 1, wantByte: mib},
		{name: "slow byte rate caps floor at one second", recRate: 10, byteRate: 100, burst: 10 * time.Millisecond, wantRecs: 1, wantByte: 100},
		{name: "factored rate", recRate: 800, byteRate: 0.8 * mib, burst: 250 * time.Millisecond, wantRecs: 200, wantByte: 0.8 * mib},
		{name: "unlimited records", recRate: 0, byteRate: mib, burst: time.Second, wantRecs: inf, wantByte: mib},
		{name: "unlimited bytes", recRate: 1000, byteRate: math.NaN(), burst: 0, wantRecs: 1, wantByte: inf},
		{name: "unlimited both", recRate: -1, byteRate: inf, burst: 0, wantRecs: inf, wantByte: inf},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := ratelimit.NewBucket(tc.recRate, tc.byteRate, tc.burst, newClock().Now)
			recs, bytes := b.Available()
			if !near(recs, tc.wantRecs, 1e-9) || !near(bytes, tc.wantByte, 1e-6) {
				t.Fatalf("Available = %v, %v, want %v, %v", recs, bytes, tc.wantRecs, tc.wantByte)
			}
		})
	}
}

func TestBucketReserve(t *testing.T) {
	t.Parallel()
	type step struct {
		advance  time.Duration
		n, bytes int
		want     time.Duration
		// tokens left after the step
		wantRecs, wantBytes float64
	}
	tests := []struct {
		name  string
		burst time.Duration
		steps []step
	}{
		{
			name:  "burst then one record per millisecond",
			burst: 100 * time.Millisecond, // 100 records, 1 MiB
			steps: []step{
				{n: 100, bytes: 100, want: 0, wantRecs: 0, wantBytes: mib - 100},
				{n: 1, bytes: 1, want: time.Millisecond, wantRecs: -1, wantBytes: mib - 101},
				{n: 1, bytes: 1, want: 2 * time.Millisecond, wantRecs: -2, wantBytes: mib - 102},
				{advance: 2 * time.Millisecond, n: 1, want: time.Millisecond, wantRecs: -1, wantBytes: mib}, // bytes refill to capacity
			},
		},
		{
			name:  "large request goes into debt instead of failing",
			burst: 100 * time.Millisecond,
			steps: []step{
				{n: 500, bytes: 500, want: 400 * time.Millisecond, wantRecs: -400, wantBytes: mib - 500},
				{advance: 400 * time.Millisecond, want: 0, wantRecs: 0, wantBytes: mib},
				{n: 1, want: time.Millisecond, wantRecs: -1, wantBytes: mib},
			},
		},
		{
			name:  "recovery stops at capacity",
			burst: 100 * time.Millisecond,
			steps: []step{
				{n: 300, want: 200 * time.Millisecond, wantRecs: -200, wantBytes: mib},
				{advance: 10 * time.Second, want: 0, wantRecs: 100, wantBytes: mib},
			},
		},
		{
			name:  "bytes dominate",
			burst: time.Second,
			steps: []step{
				{n: 1, bytes: 3 * mib, want: 2 * time.Second, wantRecs: 999, wantBytes: -2 * mib},
				{advance: time.Second, n: 1, bytes: 0, want: time.Second, wantRecs: 999, wantBytes: -mib},
			},
		},
		{
			name:  "records dominate",
			burst: time.Second,
			steps: []step{
				{n: 1500, bytes: 1500, want: 500 * time.Millisecond, wantRecs: -500, wantBytes: mib - 1500},
			},
		},
		{
			name:  "negative amounts count as zero",
			burst: time.Second,
			steps: []step{
				{n: -5, bytes: -5, want: 0, wantRecs: 1000, wantBytes: mib},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			b := ratelimit.NewBucket(1000, mib, tc.burst, clk.Now)
			for i, s := range tc.steps {
				clk.Advance(s.advance)
				if got := b.Reserve(s.n, s.bytes); got != s.want {
					t.Fatalf("step %d: Reserve(%d, %d) = %v, want %v", i, s.n, s.bytes, got, s.want)
				}
				recs, bytes := b.Available()
				if !near(recs, s.wantRecs, 1e-6) || !near(bytes, s.wantBytes, 1e-3) {
					t.Fatalf("step %d: Available = %v, %v, want %v, %v", i, recs, bytes, s.wantRecs, s.wantBytes)
				}
			}
		})
	}
}

func TestBucketClockBackwards(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := ratelimit.NewBucket(1000, mib, 100*time.Millisecond, clk.Now)
	b.Reserve(100, 0)
	clk.Advance(-time.Hour)
	if got := b.Reserve(1, 0); got != time.Millisecond {
		t.Fatalf("Reserve after clock went back = %v, want 1ms", got)
	}
	clk.Advance(time.Hour + time.Millisecond) // back to where it was, plus 1ms
	if recs, _ := b.Available(); !near(recs, 0, 1e-6) {
		t.Fatalf("Available = %v, want 0: the hour back must not be credited", recs)
	}
}

// TestBucketSteadyRate simulates a sender that always waits what Reserve says
// and checks that, once the initial burst is spent, it sends at the configured
// rate over 10 simulated seconds.
func TestBucketSteadyRate(t *testing.T) {
	t.Parallel()
	const (
		recRate  = 1000
		byteRate = mib
	)
	tests := []struct {
		name string
		// size is one PutRecords' share for this shard. Requests are kept
		// small so that the window's edges cost well under 1 %.
		size     func(r *rand.Rand) (n, bytes int)
		boundBy  string
		wantRate float64
	}{
		{name: "small records, record bound", boundBy: "records", wantRate: recRate,
			size: func(r *rand.Rand) (int, int) { n := 1 + r.IntN(50); return n, n * 200 }},
		{name: "single records, record bound", boundBy: "records", wantRate: recRate,
			size: func(*rand.Rand) (int, int) { return 1, 100 }},
		{name: "5 KiB records, byte bound", boundBy: "bytes", wantRate: byteRate,
			size: func(r *rand.Rand) (int, int) { n := 1 + r.IntN(10); return n, n * 5 << 10 }},
		{name: "max-size records, byte bound", boundBy: "bytes", wantRate: byteRate,
			size: func(*rand.Rand) (int, int) { return 1, ratelimit.MaxRecordBytes }},
		{name: "mixed sizes, byte bound", boundBy: "bytes", wantRate: byteRate,
			size: func(r *rand.Rand) (int, int) { n := 1 + r.IntN(10); return n, n * (4<<10 + r.IntN(4<<10)) }},
		{name: "mixed sizes, record bound", boundBy: "records", wantRate: recRate,
			size: func(r *rand.Rand) (int, int) { n := 1 + r.IntN(10); return n, n * (1 + r.IntN(1<<10)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(1, 2))
			clk := newClock()
			start := clk.Now()
			b := ratelimit.NewBucket(recRate, byteRate, 250*time.Millisecond, clk.Now)
			from, to := start.Add(time.Second), start.Add(11*time.Second) // measure after the burst
			var recs, bytes, allRecs, allBytes float64
			for clk.Now().Before(to) {
				n, size := tc.size(r)
				clk.Advance(b.Reserve(n, size)) // wait, then send
				sent := clk.Now()
				if !sent.Before(from) && sent.Before(to) {
					recs += float64(n)
					bytes += float64(size)
				}
				if sent.Before(to) {
					allRecs += float64(n)
					allBytes += float64(size)
				}
			}
			secs := to.Sub(from).Seconds()
			got := map[string]float64{"records": recs / secs, "bytes": bytes / secs}
			if g := got[tc.boundBy]; math.Abs(g-tc.wantRate)/tc.wantRate > 0.01 {
				t.Fatalf("%s/s = %.1f, want %v ±1%%", tc.boundBy, g, tc.wantRate)
			}
			if got["records"] > recRate*1.01 || got["bytes"] > byteRate*1.01 {
				t.Fatalf("rates %.1f records/s, %.1f bytes/s exceed the limits", got["records"], got["bytes"])
			}
			// Over the whole run nothing beyond capacity + rate*elapsed, plus the
			// one request that may be sent at the edge of its allowance.
			elapsed := to.Sub(start).Seconds()
			if allRecs > 250+recRate*elapsed+100 || allBytes > mib+byteRate*elapsed+float64(ratelimit.MaxRecordBytes) {
				t.Fatalf("sent %v records, %v bytes in %vs: more than the bucket allows", allRecs, allBytes, elapsed)
			}
		})
	}
}

// TestBucketConcurrent reserves from many goroutines at a frozen instant: the
// totals must match, and the waits must be exactly the serial schedule, each
// caller getting its own slot.
func TestBucketConcurrent(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 8
		each       = 500
		burst      = 100 // records at 1000/s over 100 ms
	)
	clk := newClock()
	b := ratelimit.NewBucket(1000, mib, 100*time.Millisecond, clk.Now)
	waits := make([][]time.Duration, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				waits[g] = append(waits[g], b.Reserve(1, 10))
			}
		})
	}
	wg.Wait()
	recs, bytes := b.Available()
	total := goroutines * each
	if !near(recs, burst-float64(total), 1e-6) || !near(bytes, mib-float64(total*10), 1e-6) {
		t.Fatalf("Available = %v, %v, want %v, %v", recs, bytes, burst-total, mib-total*10)
	}
	all := slices.Concat(waits...)
	slices.Sort(all)
	for i, w := range all {
		want := time.Duration(max(0, i+1-burst)) * time.Millisecond
		if d := w - want; d < 0 || d > time.Nanosecond {
			t.Fatalf("wait #%d = %v, want %v", i, w, want)
		}
	}
}

// FuzzBucket drives a bucket with arbitrary requests and clock steps and
// checks the token-bucket guarantee: whatever is sent by time T (each request
// at its reservation time plus wait) is at most capacity + rate*T, per
// dimension; and a request that fits in the available tokens waits nothing.
func FuzzBucket(f *testing.F) {
	f.Add([]byte{1, 0, 0, 200, 255, 10, 5, 5, 5})
	f.Add([]byte{255, 255, 255, 255, 255, 255})
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const recRate, byteRate = 1000.0, 64 << 10
		clk := newClock()
		start := clk.Now()
		b := ratelimit.NewBucket(recRate, byteRate, 50*time.Millisecond, clk.Now)
		recCap, byteCap := b.Available()
		var recs, bytes float64
		var lastSend time.Time
		for i := 0; i+2 < len(ops); i += 3 {
			clk.Advance(time.Duration(ops[i]) * 97 * time.Microsecond)
			n, size := int(ops[i+1]), int(ops[i+2])*1024
			availR, availB := b.Available()
			wait := b.Reserve(n, size)
			if wait < 0 {
				t.Fatalf("negative wait %v", wait)
			}
			if float64(n) <= availR && float64(size) <= availB && wait != 0 {
				t.Fatalf("request %d, %d fits in %v, %v but waits %v", n, size, availR, availB, wait)
			}
			send := clk.Now().Add(wait)
			// Sends are scheduled in order, give or take the nanosecond
			// that rounding float seconds up to a Duration may add.
			if (n > 0 || size > 0) && send.Before(lastSend.Add(-time.Nanosecond)) {
				t.Fatalf("send at %v scheduled before the previous one at %v", send, lastSend)
			}
			if n > 0 || size > 0 {
				lastSend = send
			}
			recs += float64(n)
			bytes += float64(size)
			elapsed := send.Sub(start).Seconds()
			if recs > recCap+recRate*elapsed+1e-6 {
				t.Fatalf("%v records by %vs, allowance %v", recs, elapsed, recCap+recRate*elapsed)
			}
			if bytes > byteCap+byteRate*elapsed+1e-3 {
				t.Fatalf("%v bytes by %vs, allowance %v", bytes, elapsed, byteCap+byteRate*elapsed)
			}
		}
	})
}

func BenchmarkBucketReserve(b *testing.B) {
	bucket := ratelimit.NewBucket(math.MaxFloat64, math.MaxFloat64, time.Second, time.Now)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		bucket.Reserve(1, 512)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "reservations/s")
}

func BenchmarkBucketReserveParallel(b *testing.B) {
	bucket := ratelimit.NewBucket(math.MaxFloat64, math.MaxFloat64, time.Second, time.Now)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bucket.Reserve(1, 512)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
}
