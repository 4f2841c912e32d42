// Package ratelimit keeps ferry under Kinesis' per-shard write limits (1,000
// records/s and 1 MiB/s per shard) so that it paces itself instead of
// provoking ProvisionedThroughputExceeded, and adapts concurrency with AIMD
// when throttles happen anyway.
//
// The package is pure: it never sleeps. Reserve returns how long the caller
// must wait, and the caller waits on its own clock with ctx (STYLE.md rule 8).
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Kinesis' documented per-shard write limits.
const (
	ShardRecordsPerSec = 1000
	ShardBytesPerSec   = 1 << 20
	// MaxRecordBytes is the largest record (data plus partition key) PutRecords
	// accepts by default; a Bucket's byte capacity holds at least one.
	MaxRecordBytes = 1 << 20
)

// Bucket is a token bucket that meters records and bytes at once: a send
// costs n record tokens and b byte tokens, and must wait for whichever
// dimension is scarcer. Both refill continuously at their rate up to their
// capacity. Time comes from an injected clock, so tests need no sleeps.
//
// Reservations may overdraw the bucket (debt): a request bigger than the
// capacity is delayed, never refused, and later callers queue behind it. The
// returned waits therefore add up to a schedule that never exceeds
// capacity + rate*elapsed, provided each caller waits before sending.
type Bucket struct {
	now func() time.Time

	mu         sync.Mutex
	recRate    float64 // tokens per second; +Inf means unlimited
	byteRate   float64
	recCap     float64
	byteCap    float64
	recTokens  float64 // may be negative (debt)
	byteTokens float64
	last       time.Time // when the tokens were last brought up to date
}

// NewBucket returns a full bucket refilling at recordsPerSec and bytesPerSec.
// Its capacity is rate*burst, but at least one record, and at least one
// MaxRecordBytes record's worth of bytes (lowered to one second of
// bytesPerSec when that is less), so the largest record Kinesis accepts can
// pass an idle bucket without waiting. A rate that is zero, negative, NaN or
// +Inf leaves that dimension unlimited. now defaults to time.Now when nil.
func NewBucket(recordsPerSec, bytesPerSec float64, burst time.Duration, now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	b := &Bucket{now: now, recRate: normRate(recordsPerSec), byteRate: normRate(bytesPerSec)}
	burstSec := max(burst.Seconds(), 0)
	b.recCap = capacity(b.recRate, burstSec, 1)
	b.byteCap = capacity(b.byteRate, burstSec, min(MaxRecordBytes, b.byteRate))
	b.recTokens, b.byteTokens = b.recCap, b.byteCap
	b.last = now()
	return b
}

// capacity returns rate*burst but at least floor; +Inf for an unlimited rate
// (where Inf*0 would give NaN).
func capacity(rate, burstSec, floor float64) float64 {
	if math.IsInf(rate, 1) {
		return rate
	}
	return max(rate*burstSec, floor)
}

func normRate(r float64) float64 {
	if r > 0 && !math.IsInf(r, 1) {
		return r
	}
	return math.Inf(1)
}

// Reserve takes n records and bytes bytes from the bucket and returns how long
// the caller must wait before sending them: 0 if the tokens are there now.
// It always succeeds; if the caller then doesn't send, the tokens are lost.
// Negative n or bytes count as zero. It is safe for concurrent use: each
// caller gets its own slot in the schedule.
func (b *Bucket) Reserve(n int, bytes int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	b.recTokens -= float64(max(n, 0))
	b.byteTokens -= float64(max(bytes, 0))
	return max(debtWait(b.recTokens, b.recRate), debtWait(b.byteTokens, b.byteRate))
}

// Available returns the tokens in the bucket now, negative while it is in
// debt; an unlimited dimension reports +Inf.
func (b *Bucket) Available() (records, bytes float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	return b.recTokens, b.byteTokens
}

// refill brings the tokens up to date with the clock. A clock that goes back
// adds nothing and leaves last alone, so no time is counted twice.
func (b *Bucket) refill() {
	t := b.now()
	elapsed := t.Sub(b.last).Seconds()
	if elapsed <= 0 {
		return
	}
	b.last = t
	b.recTokens = min(b.recCap, b.recTokens+elapsed*b.recRate)
	b.byteTokens = min(b.byteCap, b.byteTokens+elapsed*b.byteRate)
}

// debtWait returns how long rate takes to pay off a negative balance, rounded
// up to the nanosecond so that the caller never sends early.
func debtWait(tokens, rate float64) time.Duration {
	if tokens >= 0 || math.IsInf(rate, 1) {
		return 0
	}
	ns := math.Ceil(-tokens / rate * float64(time.Second))
	if ns >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ns)
}
