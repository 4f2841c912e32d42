package ratelimit

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBurst is the burst of a Limiter's buckets. Kinesis counts writes per
// second, so a bucket refilling at factor*limit can put factor*limit*(1+burst)
// into some one-second window: 250 ms keeps that at the limit for factor 0.8.
const DefaultBurst = 250 * time.Millisecond

// Limiter meters each shard of a stream with its own Bucket, created on first
// use with rates scaled by factor. Shard indexes are those of a shardmap.Map;
// after a reshard the indexes mean other shards, so call Reset.
type Limiter struct {
	recRate, byteRate float64
	now               func() time.Time

	// buckets is copy-on-write: Reserve loads it without locking and only
	// takes mu to grow it, so the hot path neither blocks nor allocates.
	buckets atomic.Pointer[[]*Bucket]
	mu      sync.Mutex // serialises writers of buckets
}

// NewLimiter returns a Limiter whose buckets refill at recordsPerSec*factor
// records and bytesPerSec*factor bytes per second, with DefaultBurst. A factor
// below 1 leaves headroom for other producers and clock skew; a factor that is
// not positive (or NaN) counts as 1. now defaults to time.Now when nil.
func NewLimiter(recordsPerSec, bytesPerSec, factor float64, now func() time.Time) *Limiter {
	if !(factor > 0) || math.IsInf(factor, 1) {
		factor = 1
	}
	if now == nil {
		now = time.Now
	}
	l := &Limiter{recRate: recordsPerSec * factor, byteRate: bytesPerSec * factor, now: now}
	l.buckets.Store(new([]*Bucket))
	return l
}

// Reserve reserves n records and bytes bytes on shard's bucket and returns how
// long to wait before sending them (see Bucket.Reserve). A PutRecords batch
// spanning shards waits for the longest of its shards' reservations. It panics
// if shard is negative, as an out-of-range index would.
func (l *Limiter) Reserve(shard, n, bytes int) time.Duration {
	return l.bucket(shard).Reserve(n, bytes)
}

// Available returns the tokens left on shard's bucket (see Bucket.Available).
func (l *Limiter) Available(shard int) (records, bytes float64) {
	return l.bucket(shard).Available()
}

func (l *Limiter) bucket(shard int) *Bucket {
	if shard < 0 {
		panic(fmt.Sprintf("ratelimit: negative shard index %d", shard))
	}
	if bs := *l.buckets.Load(); shard < len(bs) {
		return bs[shard]
	}
	return l.grow(shard)
}

// grow makes sure a bucket exists for shard and returns it.
func (l *Limiter) grow(shard int) *Bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.buckets.Load() // reload: another writer may have grown it
	if shard < len(old) {
		return old[shard]
	}
	bs := make([]*Bucket, shard+1)
	copy(bs, old)
	for i := len(old); i < len(bs); i++ {
		bs[i] = NewBucket(l.recRate, l.byteRate, DefaultBurst, l.now)
	}
	l.buckets.Store(&bs)
	return bs[shard]
}

// Reset replaces every bucket with a full one and pre-creates buckets for
// shards 0..shards-1. Call it after a reshard, when the shard indexes change:
// new shards start with their own full allowance. Debt on the old buckets is
// forgotten; reservations made before Reset keep the waits they were given.
func (l *Limiter) Reset(shards int) {
	bs := make([]*Bucket, max(shards, 0))
	for i := range bs {
		bs[i] = NewBucket(l.recRate, l.byteRate, DefaultBurst, l.now)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buckets.Store(&bs)
}
