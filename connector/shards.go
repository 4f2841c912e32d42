package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/ferrylabs/ferry/ratelimit"
	"github.com/ferrylabs/ferry/shardmap"
)

// shardRefreshEvery bounds how stale a shard map gets without any signal.
const shardRefreshEvery = time.Minute

// listShards reads a stream's shard map (ListShards, paged).
func listShards(ctx context.Context, kin KinesisAPI, stream string) (*shardmap.Map, error) {
	var shards []shardmap.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kin.ListShards(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, s := range out.Shards {
			sh, err := toShard(s)
			if err != nil {
				return nil, err
			}
			shards = append(shards, sh)
		}
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	return shardmap.New(shards)
}

func toShard(s types.Shard) (shardmap.Shard, error) {
	if s.HashKeyRange == nil {
		return shardmap.Shard{}, fmt.Errorf("shard %s has no hash key range", aws.ToString(s.ShardId))
	}
	start, err := shardmap.ParseHash(aws.ToString(s.HashKeyRange.StartingHashKey))
	if err != nil {
		return shardmap.Shard{}, err
	}
	end, err := shardmap.ParseHash(aws.ToString(s.HashKeyRange.EndingHashKey))
	if err != nil {
		return shardmap.Shard{}, err
	}
	open := s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil
	return shardmap.Shard{ID: aws.ToString(s.ShardId), Start: start, End: end, Open: open}, nil
}

// initShards lists the stream's shards before the pipeline starts. Without
// a shard map ferry still works: aggregation is turned off (it must never
// mix records of different shards) and rate limiting has nothing to key on.
func (b *batcher) initShards(ctx context.Context) {
	m, err := listShards(ctx, b.c.kin, b.stream)
	if err != nil {
		b.c.log.Warn("cannot list the stream's shards: aggregation and per-shard rate limiting are off for it, "+
			"and hash_key: kafka_partition pins nothing until a listing succeeds (retried every minute)",
			"stream", b.stream, "error", err.Error())
		b.agg = false
		b.limiter = nil
		return
	}
	b.setShards(m)
}

func (b *batcher) setShards(m *shardmap.Map) {
	b.shards.Store(m)
	if b.limiter != nil {
		b.limiter.Reset(m.Len())
	}
	b.c.log.Info("kinesis shard map", "stream", b.stream, "open_shards", m.Len())
}

// refreshLoop re-lists the shards when asked (a prediction missed, the
// stream is resharding) and every shardRefreshEvery.
func (b *batcher) refreshLoop(ctx context.Context) {
	tick := time.NewTicker(shardRefreshEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.refresh:
		}
		b.refreshMu.Lock()
		m, err := listShards(ctx, b.c.kin, b.stream)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				b.c.log.Warn("shard map refresh failed", "stream", b.stream, "error", err.Error())
			}
		} else {
			b.setShards(m)
		}
		b.refreshMu.Unlock()
		if !sleepCtx(ctx, time.Second) { // at most one refresh a second
			return
		}
	}
}

// storedInRange reports whether every record of the aggregate u lies in the
// hash range of the shard Kinesis stored it on: the rule by which the KCL
// de-aggregates (AggregatorUtil.deaggregate with the shard's range). A shard
// the map does not know (created since the last refresh) is looked up with a
// refresh at once; if it still cannot be found, u is not known to be in range.
func (b *batcher) storedInRange(ctx context.Context, u *unit, shardID string) bool {
	m := b.shards.Load()
	if m == nil {
		return true // no map, no aggregation
	}
	s, ok := m.Shard(shardID)
	if !ok {
		if m = b.refreshFor(ctx, shardID); m == nil {
			return false
		}
		if s, ok = m.Shard(shardID); !ok {
			return false
		}
	}
	for _, e := range u.entries {
		if !s.Contains(e.hash()) {
			return false
		}
	}
	return true
}

// hash is the hash key Kinesis and the KCL place e by: its explicit hash
// key if it has one, else its partition key's.
func (e *entry) hash() shardmap.Hash {
	if e.ehk != "" {
		if h, err := shardmap.ParseHash(e.ehk); err == nil {
			return h
		}
	}
	return shardmap.HashKey(e.key)
}

// refreshFor re-lists the stream's shards unless the current map already
// knows shard id (another delivery refreshed it meanwhile). It returns the
// map to use, nil if the listing failed.
func (b *batcher) refreshFor(ctx context.Context, id string) *shardmap.Map {
	b.refreshMu.Lock()
	defer b.refreshMu.Unlock()
	if m := b.shards.Load(); m != nil {
		if _, ok := m.Shard(id); ok {
			return m
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := listShards(ctx, b.c.kin, b.stream)
	if err != nil {
		b.c.log.Warn("shard map refresh failed", "stream", b.stream, "error", err.Error())
		return nil
	}
	b.setShards(m)
	return m
}

// predictedShard is the ID of the shard u was predicted to land on, "" when
// unknown. m is the current map, for units predicted by pace.
func (u *unit) predictedShard(m *shardmap.Map) string {
	if u.shardID != "" {
		return u.shardID
	}
	if m != nil && u.shard >= 0 && u.shard < m.Len() {
		return m.ID(u.shard)
	}
	return ""
}

func (b *batcher) requestRefresh() {
	select {
	case b.refresh <- struct{}{}:
	default:
	}
}

// predictIn returns the index in m of the shard a partition key maps to, or
// -1 without a map.
func predictIn(m *shardmap.Map, key string) int {
	if m == nil {
		return -1
	}
	i, _ := m.Lookup(shardmap.HashKey(key))
	return i
}

func (b *batcher) shardID(i int) string {
	if m := b.shards.Load(); m != nil && i >= 0 && i < m.Len() {
		return m.ID(i)
	}
	return "unknown"
}

// pace waits until the request may go: the per-shard token buckets have
// room for its records (delivery.rate_limit), and the stream's adaptive
// concurrency (AIMD, lowered by throttling) has a free slot. It reports
// false when ctx ended.
func (b *batcher) pace(ctx context.Context, us []*unit) bool {
	if b.limiter != nil {
		var wait time.Duration
		// One reservation per shard of the request, not per record: the
		// wait for the sum is the wait of its last record.
		m := b.shards.Load()
		b.paceMu.Lock()
		for _, u := range us {
			if u.shard < 0 {
				u.shard = predictIn(m, u.key)
			}
			if u.shard < 0 {
				continue
			}
			if u.shard >= len(b.paceUse) {
				b.paceUse = append(b.paceUse, make([]shardUse, u.shard+1-len(b.paceUse))...)
			}
			use := &b.paceUse[u.shard]
			if use.records == 0 {
				b.paceShards = append(b.paceShards, u.shard)
			}
			// One Kinesis record per unit: an aggregate counts once against
			// the shard's records/s, and its bytes in full.
			use.records++
			use.bytes += u.size
		}
		for _, i := range b.paceShards {
			if w := b.limiter.Reserve(i, b.paceUse[i].records, b.paceUse[i].bytes); w > wait {
				wait = w
			}
			b.paceUse[i] = shardUse{}
		}
		b.paceShards = b.paceShards[:0]
		b.paceMu.Unlock()
		if wait > 0 {
			b.c.m.rateWait.WithLabelValues(b.stream).Add(wait.Seconds())
			if !sleepCtx(ctx, wait) {
				return false
			}
		}
	}
	for b.active.Load() >= int64(b.aimd.Limit()) {
		if !sleepCtx(ctx, 2*time.Millisecond) {
			return false
		}
	}
	return true
}

// shardUse is what one request takes of a shard's allowance.
type shardUse struct{ records, bytes int }

// newLimiter builds the per-shard limiter from delivery.rate_limit.
func newLimiter(enabled bool, factor float64) *ratelimit.Limiter {
	if !enabled {
		return nil
	}
	return ratelimit.NewLimiter(ratelimit.ShardRecordsPerSec, ratelimit.ShardBytesPerSec, factor, time.Now)
}
