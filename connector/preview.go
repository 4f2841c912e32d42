package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/mapping"
	"github.com/ferrylabs/ferry/shardmap"
)

// PreviewRecord is what ferry would do with one Kafka record.
type PreviewRecord struct {
	Topic        string `json:"topic"`
	Partition    int32  `json:"partition"`
	Offset       int64  `json:"offset"`
	Stream       string `json:"stream,omitempty"`
	PartitionKey string `json:"partition_key,omitempty"`
	// ExplicitHashKey is set for routes with hash_key: kafka_partition.
	ExplicitHashKey string `json:"explicit_hash_key,omitempty"`
	// Shard is the shard the record is predicted to land on, "" when the
	// stream's shards could not be listed.
	Shard string `json:"shard,omitempty"`
	// Size is what Kinesis counts: payload plus partition key.
	Size int `json:"size"`
	// Verdict is sent, filtered, tombstone skipped, dead-letter, too large,
	// no route, missing key or undecodable; Reason says more.
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
}

// Preview verdicts.
const (
	VerdictSent       = "sent"
	VerdictFiltered   = "filtered"
	VerdictSkipped    = "skipped"
	VerdictDeadLetter = "dead-letter"
	VerdictTooLarge   = "too large"
	VerdictNoRoute    = "no route"
	VerdictMissingKey = "missing key"
	// VerdictMissingStream is a templated stream that does not exist (or
	// a template expanding to an invalid name): delivery.on_missing_stream.
	VerdictMissingStream = "missing stream"
)

// Preview reads up to limit records (of topic, or of every consumed topic
// when topic is empty) from where the group would read next: its committed
// offsets, or kafka.start for partitions without one. It joins no group,
// commits nothing and writes nothing to Kinesis; kin (nil: none) is asked
// only for each stream's shards and record size limit.
func Preview(ctx context.Context, cfg config.Config, kin KinesisAPI, limit int, topic string) ([]PreviewRecord, error) {
	mapper, err := newMapper(cfg.Routes)
	if err != nil {
		return nil, err
	}
	dec, err := newDecoder(cfg.Decode, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return nil, err
	}
	opts, err := KafkaClientOpts(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	admCl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	topics := []string{topic}
	if topic == "" {
		if topics, err = consumedTopics(ctx, adm, cfg.Kafka); err != nil {
			return nil, err
		}
	}
	from, err := previewOffsets(ctx, adm, cfg, topics)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.ConsumePartitions(from))
	if cfg.Kafka.IsolationLevel == "read_committed" {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()

	streams := map[string]*previewStream{}
	stream := func(name string) *previewStream {
		if s, ok := streams[name]; ok {
			return s
		}
		s := &previewStream{limit: int(cfg.Delivery.MaxRecordBytes)}
		if kin != nil {
			sum, err := describeStream(ctx, kin, name)
			var nf *types.ResourceNotFoundException
			switch {
			case err == nil:
				s.limit = recordLimit(s.limit, sum)
				s.shards, _ = listShards(ctx, kin, name)
			case errors.As(err, &nf):
				s.missing = true
			}
		}
		streams[name] = s
		return s
	}
	var out []PreviewRecord
	for wait := 10 * time.Second; len(out) < limit; wait = 2 * time.Second {
		// The first records may take a while (connections, metadata); once
		// they flow, a quiet poll means the partitions' ends are reached.
		pollCtx, cancel := context.WithTimeout(ctx, wait)
		fs := cl.PollRecords(pollCtx, limit-len(out))
		quiet := pollCtx.Err() != nil
		cancel()
		if quiet {
			break // what there was to read
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return out, fmt.Errorf("read records: %w", err)
		}
		if dec != nil {
			if err := dec.prefetch(ctx, fs); err != nil {
				return out, err
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			if len(out) < limit && !r.Attrs.IsControl() {
				out = append(out, previewDecoded(cfg, dec, mapper, stream, r))
			}
		})
	}
	return out, nil
}

type previewStream struct {
	limit   int
	shards  *shardmap.Map
	missing bool // Kinesis says it does not exist
}

func previewOne(cfg config.Config, mapper *mapping.Mapper, stream func(string) *previewStream, r *kgo.Record) PreviewRecord {
	p := PreviewRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	var rec mapping.Record
	mappingRecord(&rec, r, nil)
	t, err := mapper.MapTo(nil, &rec, nil, rand.Uint64())
	var missing *mapping.MissingKeyError
	switch {
	case errors.As(err, &missing):
		p.Verdict, p.Reason = VerdictMissingKey, missing.Error()
		return p
	case errors.Is(err, mapping.ErrInvalidStream):
		p.Verdict = VerdictMissingStream
		p.Reason = fmt.Sprintf("%v (delivery.on_missing_stream: %s)", err, cfg.Delivery.OnMissingStream)
		return p
	case err != nil:
		p.Verdict, p.Reason = VerdictNoRoute, err.Error()
		return p
	case t.Dropped != "":
		p.Verdict, p.Reason = VerdictFiltered, t.Dropped
		return p
	}
	p.Stream, p.PartitionKey, p.Size = t.Stream, t.PartitionKey, t.Size()
	s := stream(t.Stream)
	if s.shards != nil {
		if t.PinPartition {
			sh := s.shards.At(pinnedShard(s.shards, r.Partition))
			p.ExplicitHashKey, p.Shard = sh.Mid().String(), sh.ID
		} else {
			_, p.Shard = s.shards.Lookup(shardmap.HashKey(t.PartitionKey))
		}
	}
	switch {
	case s.missing:
		p.Verdict = VerdictMissingStream
		p.Reason = fmt.Sprintf("kinesis stream %q does not exist (delivery.on_missing_stream: %s)", t.Stream, cfg.Delivery.OnMissingStream)
	case r.Value == nil && cfg.Delivery.Tombstones == config.TombstonesSkip:
		p.Verdict, p.Reason = VerdictSkipped, "tombstone (delivery.tombstones: skip)"
	case r.Value == nil && cfg.Delivery.Tombstones == config.TombstonesDLQ:
		p.Verdict, p.Reason = VerdictDeadLetter, "tombstone (delivery.tombstones: dlq)"
	case p.Size > s.limit:
		p.Verdict = VerdictTooLarge
		p.Reason = fmt.Sprintf("%d bytes over the limit of %d (delivery.on_invalid: %s)", p.Size, s.limit, cfg.Delivery.OnInvalid)
	default:
		p.Verdict = VerdictSent
	}
	return p
}

// previewOffsets is where the group reads each partition of topics next.
func previewOffsets(ctx context.Context, adm *kadm.Client, cfg config.Config, topics []string) (map[string]map[int32]kgo.Offset, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	committed, err := fetchOffsets(ctx, adm, cfg.Kafka.Group)
	if err != nil {
		return nil, err
	}
	start := startOffset(cfg.Kafka, kgo.NewOffset())
	out := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]kgo.Offset{}
		}
		at := start
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			at = kgo.NewOffset().At(c.At)
		}
		out[o.Topic][o.Partition] = at
	})
	return out, nil
}

// fetchOffsets reads a group's committed offsets, waiting out a coordinator
// that is not ready yet (a broker that never had a group answers
// COORDINATOR_NOT_AVAILABLE until its offsets topic exists).
func fetchOffsets(ctx context.Context, adm *kadm.Client, group string) (kadm.OffsetResponses, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			// A partition's own retriable error (an unstable commit of an
			// open transaction) is waited out as well.
			if perr := offs.Error(); perr != nil && kerr.IsRetriable(perr) && time.Now().Before(deadline) {
				err = perr
			}
		}
		if err == nil || !kerr.IsRetriable(err) || time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("fetch the committed offsets of group %q: %w", group, err)
			}
			return offs, nil
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}
