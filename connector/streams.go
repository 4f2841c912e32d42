package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
)

// missingRecheck is how long a templated stream found missing is taken as
// missing before it is described again: records for it follow
// delivery.on_missing_stream meanwhile without a call each, and a stream
// created later is picked up.
const missingRecheck = 30 * time.Second

// missingStream remembers a templated stream that does not exist.
type missingStream struct {
	err   error
	until time.Time
}

// errStreamMissing marks a stream that does not exist or takes no records:
// what delivery.on_missing_stream decides about.
var errStreamMissing = errors.New("kinesis stream missing")

// maxMissing bounds the streams remembered as missing: a header template
// can name any number of them.
const maxMissing = 1024

// missingStreamError is an error that makes errors.Is(err, errStreamMissing)
// hold, keeping its own message.
type missingStreamError struct{ error }

func (missingStreamError) Is(target error) bool { return target == errStreamMissing }

// addBatcher registers b; allBatchers sees it from then on.
func (c *Connector) addBatcher(b *batcher) {
	c.batchers[b.stream] = b
	all := make([]*batcher, 0, len(c.batchers))
	if old := c.allB.Load(); old != nil {
		all = append(all, *old...)
	}
	all = append(all, b)
	c.allB.Store(&all)
}

// allBatchers is every batcher, for goroutines other than the poll loop.
func (c *Connector) allBatchers() []*batcher {
	if all := c.allB.Load(); all != nil {
		return *all
	}
	return nil
}

// checkStreams confirms every static stream exists and is writable before
// the group is joined, so a typo fails fast instead of after a rebalance.
// Templated streams are checked when first resolved (openStream).
func (c *Connector) checkStreams(ctx context.Context) error {
	for _, s := range c.mapper.Streams() {
		sum, err := describeStream(ctx, c.kin, s)
		if err != nil {
			return fatalf("kinesis stream %q: %w", s, err)
		}
		if err := c.prepare(c.batchers[s], sum); err != nil {
			return fatalf("%w", err)
		}
	}
	return nil
}

// prepare checks a described stream and sizes its batcher's records against
// the smaller of delivery.max_record_bytes and the stream's own limit
// (MaxRecordSizeInKiB: 1 MiB unless raised, up to 10 MiB).
func (c *Connector) prepare(b *batcher, sum *types.StreamDescriptionSummary) error {
	if st := sum.StreamStatus; st != types.StreamStatusActive && st != types.StreamStatusUpdating {
		return fmt.Errorf("kinesis stream %q is %s, not ACTIVE", b.stream, st)
	}
	limit := recordLimit(c.maxRecord, sum)
	b.maxRecord = limit
	if b.agg && b.aggMax > limit-maxKeyBytes {
		// An aggregated record is one Kinesis record: it must fit the
		// stream's own limit, with its partition key.
		b.aggMax = limit - maxKeyBytes
	}
	c.log.Info("kinesis stream ready", "stream", b.stream, "status", string(sum.StreamStatus),
		"open_shards", aws.ToInt32(sum.OpenShardCount), "max_record_bytes", limit, "aggregation_max_bytes", b.aggMax)
	return nil
}

// recordLimit is the smaller of limit (delivery.max_record_bytes) and the
// stream's MaxRecordSizeInKiB.
func recordLimit(limit int, sum *types.StreamDescriptionSummary) int {
	if kib := aws.ToInt32(sum.MaxRecordSizeInKiB); kib > 0 {
		return min(limit, int(kib)<<10)
	}
	return limit
}

// openStream starts the batcher of a templated stream the poll loop has
// just resolved for the first time: described once (DescribeStreamSummary),
// its shards listed, its goroutines started. A stream that does not exist
// (or is not ACTIVE) gives an error wrapping errStreamMissing, remembered for
// missingRecheck; any other error (access denied, Kinesis unreachable after
// retries) is fatal, as it would be for a static stream at start.
func (c *Connector) openStream(ctx context.Context, stream string) (*batcher, error) {
	if m, ok := c.missing[stream]; ok && time.Now().Before(m.until) {
		return nil, m.err
	}
	sum, err := describeStream(ctx, c.kin, stream)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			return nil, fatalf("kinesis stream %q (from a stream template): %w", stream, err)
		}
		err = missingStreamError{fmt.Errorf("kinesis stream %q does not exist", stream)}
	}
	b := newBatcher(c, stream)
	if err == nil {
		if err = c.prepare(b, sum); err != nil {
			err = missingStreamError{err}
		}
	}
	if err != nil {
		c.rememberMissing(stream, err)
		return nil, err
	}
	delete(c.missing, stream)
	b.initShards(ctx)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c.addBatcher(b)
	c.startBatcher(b)
	c.m.templatedStreams.Inc()
	return b, nil
}

// rememberMissing caches a missing stream for missingRecheck, keeping at most
// maxMissing: expired ones go first, then any.
func (c *Connector) rememberMissing(stream string, err error) {
	now := time.Now()
	if len(c.missing) >= maxMissing {
		for s, m := range c.missing {
			if now.After(m.until) {
				delete(c.missing, s)
			}
		}
		for s := range c.missing {
			if len(c.missing) < maxMissing {
				break
			}
			delete(c.missing, s)
		}
	}
	c.missing[stream] = missingStream{err: err, until: now.Add(missingRecheck)}
}

// noStream applies delivery.on_missing_stream to a record whose stream
// cannot take it: a templated stream that does not exist, or a template
// that expanded to an invalid name (stream is then ""). Other errors (a
// stop while looking the stream up, a fatal Kinesis error) pass through.
func (c *Connector) noStream(p *partition, r *kgo.Record, stream string, err error) error {
	if !errors.Is(err, errStreamMissing) && stream != "" {
		return err
	}
	policy := c.cfg.Delivery.OnMissingStream
	if policy == config.OnMissingStreamFail {
		return fatalf("record %s/%d@%d: %w (delivery.on_missing_stream: fail; create the stream or fix the template, or use skip or dlq)",
			r.Topic, r.Partition, r.Offset, err)
	}
	e, terr := c.trackBare(p, r)
	if terr != nil {
		return terr
	}
	c.m.missingStream.WithLabelValues(r.Topic, policy).Inc()
	if policy == config.OnMissingStreamSkip {
		c.log.Debug("skipping a record whose stream is missing (delivery.on_missing_stream: skip)",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "stream", stream, "error", err.Error())
		c.complete(e.part, []*entry{e})
		return nil
	}
	c.deadLetter(r, e, "missing_stream", err.Error())
	return nil
}
