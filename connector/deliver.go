package connector

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// deliver sends one batch until every entry has a sequence number. Failed
// entries (throttled, InternalFailure) are re-sent alone, with exponential
// backoff and jitter, for as long as it takes: dropping a record after some
// number of tries would be silent loss. It stops early only when ctx ends
// (shutdown deadline, fatal error elsewhere) or on a fatal error, and then
// acknowledges nothing it did not deliver.
func (c *Connector) deliver(ctx context.Context, b *batcher, batch []*entry) {
	stream := b.stream
	c.m.inFlight.Inc()
	defer c.m.inFlight.Dec()
	pending := batch
	reqs := make([]types.PutRecordsRequestEntry, 0, len(batch))
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			// Partitions revoked while we were backing off belong to
			// another member now, which re-reads them: stop sending them.
			pending = c.withoutStopping(b, pending)
			if len(pending) == 0 {
				return
			}
		}
		reqs = reqs[:0]
		bytes := 0
		for _, e := range pending {
			reqs = append(reqs, types.PutRecordsRequestEntry{Data: e.data, PartitionKey: aws.String(e.key)})
			bytes += e.size
		}
		c.m.batches.WithLabelValues(stream).Inc()
		c.m.batchRecords.Observe(float64(len(reqs)))
		c.m.batchBytes.Observe(float64(bytes))

		reqCtx, cancel := context.WithTimeout(ctx, c.cfg.Delivery.RequestTimeout)
		out, err := c.kin.PutRecords(reqCtx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: reqs})
		cancel()
		if err != nil {
			cls, code := classify(ctx, err)
			switch cls {
			case classCanceled:
				c.abandon(b, pending)
				return
			case classFatal:
				c.m.deliveryErrors.WithLabelValues(stream, code).Inc()
				c.fail(fatalf("put records to stream %q: %w", stream, err))
				c.abandon(b, pending)
				return
			case classAmbiguous:
				c.m.ambiguous.WithLabelValues(stream).Add(float64(len(pending)))
			}
			c.m.deliveryErrors.WithLabelValues(stream, code).Inc()
			c.m.retries.WithLabelValues(stream, code).Add(float64(len(pending)))
			level := c.log.Debug
			if attempt == 0 || cls == classAmbiguous {
				level = c.log.Warn
			}
			level("put records failed, retrying", "stream", stream, "records", len(pending),
				"class", cls.String(), "code", code, "attempt", attempt+1, "error", err.Error())
			if !sleepCtx(ctx, c.backoff(attempt)) {
				c.abandon(b, pending)
				return
			}
			continue
		}
		if len(out.Records) != len(pending) {
			c.fail(fatalf("put records to stream %q: response has %d entries for %d records", stream, len(out.Records), len(pending)))
			c.abandon(b, pending)
			return
		}
		var ok, failed []*entry
		fatalCode := ""
		for i, r := range out.Records {
			code := aws.ToString(r.ErrorCode)
			if code == "" {
				ok = append(ok, pending[i])
				continue
			}
			c.m.deliveryErrors.WithLabelValues(stream, code).Inc()
			if !entryRetryable(code) && fatalCode == "" {
				fatalCode = code + ": " + aws.ToString(r.ErrorMessage)
			}
			failed = append(failed, pending[i])
		}
		c.acknowledge(b, ok)
		if fatalCode != "" {
			e := failed[0]
			c.fail(fatalf("kinesis rejected a record of %s/%d (offset %d) in stream %q: %s",
				e.part.topic, e.part.id, e.offset, stream, fatalCode))
			c.abandon(b, failed)
			return
		}
		if len(failed) > 0 {
			c.m.retries.WithLabelValues(stream, "partial_failure").Add(float64(len(failed)))
			c.log.Debug("put records partially failed, re-sending the failed entries",
				"stream", stream, "failed", len(failed), "sent", len(pending), "attempt", attempt+1)
			if !sleepCtx(ctx, c.backoff(attempt)) {
				c.abandon(b, failed)
				return
			}
		}
		pending = failed
	}
}

// acknowledge completes delivered entries, partition by partition, keeping
// each partition's entries in the order they were sent.
func (c *Connector) acknowledge(b *batcher, es []*entry) {
	if len(es) == 0 {
		return
	}
	c.m.delivered.WithLabelValues(b.stream).Add(float64(len(es)))
	defer b.release(es)
	start := 0
	for i := 1; i <= len(es); i++ {
		if i < len(es) && es[i].part == es[start].part {
			continue
		}
		// Entries of one partition are usually adjacent; a partition seen
		// again later in the batch just gets a second call.
		run := es[start:i]
		p := run[0].part
		c.complete(p, run)
		p.inflight.Add(-int64(len(run)))
		start = i
	}
}

// abandon gives up entries without acknowledging them.
func (c *Connector) abandon(b *batcher, es []*entry) {
	for _, e := range es {
		e.part.inflight.Add(-1)
	}
	b.release(es)
	c.drop(es)
}

func (c *Connector) withoutStopping(b *batcher, es []*entry) []*entry {
	kept := es[:0:0]
	var gone []*entry
	for _, e := range es {
		if e.part.stopping.Load() {
			gone = append(gone, e)
		} else {
			kept = append(kept, e)
		}
	}
	if len(gone) > 0 {
		c.abandon(b, gone)
	}
	return kept
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
