package connector

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// deliver sends one batch once. Delivered units are acknowledged; failed
// ones (throttled, InternalFailure, a 5xx, a timeout) go back to the batcher
// with exponential backoff and jitter, and are re-sent, before newer records
// and merged with them, for as long as it takes: dropping a record after
// some number of tries would be silent loss. Handing them back frees this
// request's in-flight slot while they wait, so a few throttled entries per
// request do not cost a whole slot's backoff. A fatal error stops the
// pipeline; when ctx ends (shutdown deadline, fatal error elsewhere) nothing
// undelivered is acknowledged.
//
// requestCtx is the parent of the PutRecords call: it ends only on a fatal
// error or when Run returns (see Run).
func (c *Connector) deliver(ctx, requestCtx context.Context, b *batcher, batch []*unit) {
	stream := b.stream
	c.m.inFlight.Inc()
	defer c.m.inFlight.Dec()
	if !b.pace(ctx, batch) {
		c.abandon(b, batch)
		return
	}
	attempt := 0 // the most any unit of the batch failed before
	for _, u := range batch {
		attempt = max(attempt, u.attempts)
	}
	reqs, bytes, records := requestEntries(make([]types.PutRecordsRequestEntry, 0, len(batch)), batch)
	c.m.batches.WithLabelValues(stream).Inc()
	c.m.batchRecords.Observe(float64(len(reqs)))
	c.m.batchBytes.Observe(float64(bytes))
	if b.agg {
		c.m.aggregated.WithLabelValues(stream).Add(float64(records))
		c.m.kinesisRecords.WithLabelValues(stream).Add(float64(len(reqs)))
	}

	// The call itself is not cut off when ctx ends (drain deadline): its
	// answer still acknowledges what Kinesis stored. It ends on its own
	// timeout or a fatal error.
	reqCtx, cancel := context.WithTimeout(requestCtx, c.cfg.Delivery.RequestTimeout)
	b.active.Add(1)
	out, err := c.kin.PutRecords(reqCtx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: reqs})
	b.active.Add(-1)
	cancel()
	if err != nil {
		cls, code := classify(ctx, err)
		switch cls {
		case classCanceled:
			c.abandon(b, batch)
			return
		case classFatal:
			c.m.deliveryErrors.WithLabelValues(stream, code).Inc()
			c.fail(fatalf("put records to stream %q: %w", stream, err))
			c.abandon(b, batch)
			return
		case classAmbiguous:
			c.m.ambiguous.WithLabelValues(stream).Add(float64(records))
		}
		if throttled(err) {
			b.aimd.OnThrottle()
		}
		if code == "ResourceInUseException" {
			b.requestRefresh() // the stream is resharding
		}
		c.m.deliveryErrors.WithLabelValues(stream, code).Inc()
		c.m.retries.WithLabelValues(stream, code).Add(float64(records))
		level := c.log.Debug
		if attempt == 0 || cls == classAmbiguous {
			level = c.log.Warn
		}
		level("put records failed, retrying", "stream", stream, "records", records,
			"class", cls.String(), "code", code, "attempt", attempt+1, "error", err.Error())
		c.retryLater(ctx, b, batch)
		return
	}
	if len(out.Records) != len(batch) {
		c.fail(fatalf("put records to stream %q: response has %d entries for %d records", stream, len(out.Records), len(batch)))
		c.abandon(b, batch)
		return
	}
	var ok, failed, wrong []*unit
	fatalCode := ""
	shardsNow := b.shards.Load()
	for i, r := range out.Records {
		u := batch[i]
		code := aws.ToString(r.ErrorCode)
		if code == "" {
			stored := aws.ToString(r.ShardId)
			if want := u.predictedShard(shardsNow); want != "" && stored != "" && stored != want {
				c.m.shardMismatch.WithLabelValues(stream).Inc()
				if len(u.entries) > 1 && !b.storedInRange(requestCtx, u, stored) {
					// A KCL consumer de-aggregates with the range of the
					// shard it reads and drops the whole aggregate at the
					// first record outside it: acknowledging it would be
					// silent loss.
					c.m.wrongShard.WithLabelValues(stream).Inc()
					u.repack = true
					wrong = append(wrong, u)
					continue
				}
				b.requestRefresh()
			}
			ok = append(ok, u)
			continue
		}
		c.m.deliveryErrors.WithLabelValues(stream, code).Inc()
		if code == "ProvisionedThroughputExceededException" {
			c.m.throttledShard.WithLabelValues(stream, b.shardID(u.shard)).Inc()
		}
		if !entryRetryable(code) && fatalCode == "" {
			fatalCode = code + ": " + aws.ToString(r.ErrorMessage)
		}
		failed = append(failed, u)
	}
	if len(wrong) > 0 {
		n := 0
		for _, u := range wrong {
			n += len(u.entries)
		}
		c.m.retries.WithLabelValues(stream, "wrong_shard").Add(float64(n))
		c.log.Warn("aggregated records landed on shards whose hash ranges lack some of their records (the shard map was stale): "+
			"re-sending those records by the refreshed shard map", "stream", stream, "aggregates", len(wrong), "records", n)
		failed = append(failed, wrong...)
	}
	c.acknowledge(b, ok)
	if fatalCode != "" {
		e := failed[0].entries[0]
		c.fail(fatalf("kinesis rejected a record of %s/%d (offset %d) in stream %q: %s",
			e.part.topic, e.part.id, e.offset, stream, fatalCode))
		c.abandon(b, failed)
		return
	}
	if len(failed) == 0 {
		b.aimd.OnSuccess()
		return
	}
	if len(wrong) == len(failed) {
		c.retryLater(ctx, b, failed) // not throttling: the shard map was stale
		return
	}
	// A few throttled entries are the normal life of a busy stream and are
	// simply re-sent; halving the concurrency for each would cut throughput
	// far more than the throttling itself. Back off only when a real share
	// of the request was refused.
	if len(failed)*20 >= len(batch) {
		b.aimd.OnThrottle()
	}
	n := 0
	for _, u := range failed {
		n += len(u.entries)
	}
	c.m.retries.WithLabelValues(stream, "partial_failure").Add(float64(n))
	c.log.Debug("put records partially failed, re-sending the failed entries",
		"stream", stream, "failed", len(failed), "sent", len(batch), "attempt", attempt+1)
	c.retryLater(ctx, b, failed)
}

// retryLater hands failed units back to their batcher, each due after its
// backoff. Their records stay counted in flight (a revoke waits for them)
// and, under ordering "key", their keys stay held, so that no later record
// of a key overtakes a failed one.
func (c *Connector) retryLater(ctx context.Context, b *batcher, us []*unit) {
	if ctx.Err() != nil {
		c.abandon(b, us) // stopping: nothing is sent any more
		return
	}
	now := time.Now()
	for i, u := range us {
		u = u.detach()
		u.due = now.Add(c.backoff(u.attempts))
		u.attempts++
		us[i] = u
	}
	b.retry(us)
}

// detach returns a copy of u, and of its entries, in memory of its own, for
// a unit that waits for a re-send: the units of a request are made in one
// block, and entries in slabs, and one waiting unit would keep all of them,
// and their records' values, alive.
func (u *unit) detach() *unit {
	nu := new(unit)
	*nu = *u
	nu.entries = make([]*entry, len(u.entries))
	for i, e := range u.entries {
		nu.entries[i] = e.detach()
	}
	u.data = nil
	return nu
}

// requestEntries appends the PutRecords entries of units to reqs, and
// returns them with their bytes and user-record count.
func requestEntries(reqs []types.PutRecordsRequestEntry, units []*unit) (_ []types.PutRecordsRequestEntry, bytes, records int) {
	for _, u := range units {
		// Pointers into the unit, which outlives the call: aws.String
		// would allocate once per record.
		r := types.PutRecordsRequestEntry{Data: u.data, PartitionKey: &u.key}
		if u.ehk != "" {
			r.ExplicitHashKey = &u.ehk
		}
		reqs = append(reqs, r)
		bytes += u.size
		records += len(u.entries)
	}
	return reqs, bytes, records
}

// throttled reports a request-level throttling error.
func throttled(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException", "KMSThrottlingException":
		return true
	}
	return false
}

// acknowledge completes delivered units, partition by partition, keeping
// each partition's entries in the order they were sent.
func (c *Connector) acknowledge(b *batcher, us []*unit) {
	if len(us) == 0 {
		return
	}
	defer b.release(us)
	n := 0
	var run []*entry
	now := time.Now().UnixMilli()
	for _, u := range us {
		n += len(u.entries)
		for _, e := range u.entries {
			if e.ts > 0 {
				b.latency[e.tsType&1].Observe(float64(max(now-e.ts, 0)) / 1000)
			}
			// Entries of one partition are usually adjacent; a partition
			// seen again later just gets a second call.
			if len(run) > 0 && run[0].part != e.part {
				c.completeRun(run)
				run = run[:0]
			}
			run = append(run, e)
		}
	}
	if len(run) > 0 {
		c.completeRun(run)
	}
	for _, u := range us {
		u.data = nil // a unit may outlive its delivery in its request's block
	}
	c.m.delivered.WithLabelValues(b.stream).Add(float64(n))
}

func (c *Connector) completeRun(run []*entry) {
	p := run[0].part
	c.complete(p, run)
	p.inflight.Add(-int64(len(run)))
}

// abandon gives up units without acknowledging them.
func (c *Connector) abandon(b *batcher, us []*unit) {
	var es []*entry
	for _, u := range us {
		for _, e := range u.entries {
			e.part.inflight.Add(-1)
			es = append(es, e)
		}
		u.data = nil
	}
	b.release(us)
	c.drop(es)
}

// revoked reports whether every record of u belongs to a partition whose
// revoke is over: another member owns them now and re-reads them, so u is
// not sent again. A unit with records of a live partition is kept whole:
// its bytes are already encoded, and the extra records only duplicate.
// (While a revoke drains, failed units are still re-sent: they are holes
// below records already delivered.)
func (u *unit) revoked() bool {
	for _, e := range u.entries {
		if !e.part.revoked.Load() {
			return false
		}
	}
	return true
}

// backoff is the wait before retry number attempt+1: exponential from
// delivery.retry.initial, capped at delivery.retry.max, with the upper half
// jittered so that concurrent requests do not retry in lockstep.
func (c *Connector) backoff(attempt int) time.Duration {
	r := c.cfg.Delivery.Retry
	d := r.Initial
	for range min(attempt, 30) {
		d *= 2
		if d >= r.Max {
			d = r.Max
			break
		}
	}
	half := d / 2
	return half + rand.N(half+1)
}
