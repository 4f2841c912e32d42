package ratelimit_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/ratelimit"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		factor float64
		// after draining shard 0's burst, one more record waits this long
		wantWait time.Duration
		wantCap  float64
	}{
		{name: "full rate", factor: 1, wantWait: time.Millisecond, wantCap: 250},
		{name: "80 percent", factor: 0.8, wantWait: 1250 * time.Microsecond, wantCap: 200},
		{name: "half", factor: 0.5, wantWait: 2 * time.Millisecond, wantCap: 125},
		{name: "zero factor means 1", factor: 0, wantWait: time.Millisecond, wantCap: 250},
		{name: "NaN factor means 1", factor: math.NaN(), wantWait: time.Millisecond, wantCap: 250},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := ratelimit.NewLimiter(ratelimit.ShardRecordsPerSec, ratelimit.ShardBytesPerSec, tc.factor, newClock().Now)
			if recs, _ := l.Available(0); !near(recs, tc.wantCap, 1e-9) {
				t.Fatalf("capacity = %v, want %v", recs, tc.wantCap)
			}
			if got := l.Reserve(0, int(tc.wantCap), 0); got != 0 {
				t.Fatalf("burst waits %v", got)
			}
			if got := l.Reserve(0, 1, 0); got != tc.wantWait {
				t.Fatalf("next record waits %v, want %v", got, tc.wantWait)
			}
			if got := l.Reserve(1, 1, 100); got != 0 {
				t.Fatalf("shard 1 waits %v though only shard 0 is drained", got)
			}
			if got := l.Reserve(1000, 1, 100); got != 0 { // created on demand
				t.Fatalf("shard 1000 waits %v", got)
			}
		})
	}
}

func TestLimiterReset(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := ratelimit.NewLimiter(1000, ratelimit.ShardBytesPerSec, 1, clk.Now)
	if got := l.Reserve(3, 1250, 0); got != time.Second {
		t.Fatalf("Reserve = %v, want 1s", got)
	}
	l.Reset(2)
	if got := l.Reserve(3, 1, 0); got != 0 {
		t.Fatalf("after Reset shard 3 waits %v, want a fresh bucket", got)
	}
	for shard := range 2 {
		if recs, _ := l.Available(shard); recs != 250 {
			t.Fatalf("after Reset shard %d has %v records, want 250", shard, recs)
		}
	}
	l.Reset(-1) // no pre-created buckets; still usable
	if got := l.Reserve(0, 1, 0); got != 0 {
		t.Fatalf("after Reset(-1) Reserve waits %v", got)
	}
}

func TestLimiterNegativeShardPanics(t *testing.T) {
	t.Parallel()
	l := ratelimit.NewLimiter(1000, ratelimit.ShardBytesPerSec, 1, newClock().Now)
	defer func() {
		if recover() == nil {
			t.Fatal("Reserve(-1, ...) did not panic")
		}
	}()
	l.Reserve(-1, 1, 1)
}

// TestLimiterConcurrent reserves on many shards from many goroutines, growing
// the bucket table and resetting it meanwhile; with the clock frozen, the
// shards untouched by Reset must account for every reservation.
func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 8
		shards     = 32
		each       = 200
	)
	clk := newClock()
	l := ratelimit.NewLimiter(1000, ratelimit.ShardBytesPerSec, 1, clk.Now)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Reserve((g+i)%shards, 1, 100)
			}
		})
	}
	wg.Wait()
	var total float64
	for s := range shards {
		recs, bytes := l.Available(s)
		used := 250 - recs
		total += used
		if !near(ratelimit.ShardBytesPerSec-bytes, used*100, 1e-6) {
			t.Fatalf("shard %d: %v records but %v bytes used", s, used, ratelimit.ShardBytesPerSec-bytes)
		}
	}
	if total != goroutines*each {
		t.Fatalf("buckets account for %v records, want %d", total, goroutines*each)
	}

	// Reset racing with Reserve must be safe (checked by -race), if not exact.
	wg.Go(func() {
		for range 50 {
			l.Reset(shards)
		}
	})
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Reserve((g*7+i)%(2*shards), 1, 1)
			}
		})
	}
	wg.Wait()
}

func BenchmarkLimiterReserve(b *testing.B) {
	l := ratelimit.NewLimiter(math.MaxFloat64, math.MaxFloat64, 1, time.Now)
	l.Reset(64)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		l.Reserve(n%64, 1, 512)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "reservations/s")
}

func BenchmarkLimiterReserveParallel(b *testing.B) {
	l := ratelimit.NewLimiter(math.MaxFloat64, math.MaxFloat64, 1, time.Now)
	l.Reset(64)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Reserve(i%64, 1, 512)
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
}
