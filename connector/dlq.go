package connector

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
)

// Dead-letter headers, added to the original record's headers.
const (
	HeaderTopic     = "ferry.source.topic"
	HeaderPartition = "ferry.source.partition"
	HeaderOffset    = "ferry.source.offset"
	HeaderTimestamp = "ferry.source.timestamp"
	HeaderErrClass  = "ferry.error.class"
	HeaderErrMsg    = "ferry.error.message"
	HeaderAttempts  = "ferry.attempts"
)

// invalid applies delivery.on_invalid to a record Kinesis can never take,
// counted in ferry_invalid_records_total.
func (c *Connector) invalid(r *kgo.Record, e *entry, reason string) error {
	c.m.invalid.WithLabelValues(r.Topic, c.cfg.Delivery.OnInvalid).Inc()
	return c.onInvalid(r, e, "record_too_large", reason)
}

// onInvalid applies delivery.on_invalid to a record that cannot go to
// Kinesis: too large (class record_too_large) or undecodable
// (errClassDecode), its dead-letter class. Whatever the policy, the record
// is accounted for: it stops the pipeline (fail), is counted and logged
// (skip), or counts as delivered only once the dead-letter topic
// acknowledged it (dlq).
func (c *Connector) onInvalid(r *kgo.Record, e *entry, class, reason string) error {
	policy := c.cfg.Delivery.OnInvalid
	if policy != config.OnInvalidSkip && policy != config.OnInvalidDLQ {
		return fatalf("record %s/%d@%d: %s (delivery.on_invalid: fail; use skip or dlq to pass it)",
			r.Topic, r.Partition, r.Offset, reason)
	}
	attrs := []any{"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason}
	decode := class == errClassDecode
	switch {
	case policy == config.OnInvalidSkip && decode:
		c.log.Warn("skipping a record whose value cannot be decoded (delivery.on_invalid: skip)", attrs...)
	case policy == config.OnInvalidSkip:
		c.log.Warn("skipping a record Kinesis cannot take (delivery.on_invalid: skip)", attrs...)
	case decode:
		c.log.Warn("sending a record whose value cannot be decoded to the dead-letter topic", append(attrs, "dlq_topic", c.cfg.Delivery.DLQTopic)...)
	default:
		c.log.Warn("sending a record Kinesis cannot take to the dead-letter topic", append(attrs, "dlq_topic", c.cfg.Delivery.DLQTopic)...)
	}
	if policy == config.OnInvalidSkip {
		c.complete(e.part, []*entry{e})
	} else {
		c.deadLetter(r, e, class, reason)
	}
	return nil
}

// tombstone applies delivery.tombstones to a record with a null value. It
// reports whether the record goes on to Kinesis (as a zero-length record).
func (c *Connector) tombstone(r *kgo.Record, e *entry) bool {
	policy := c.cfg.Delivery.Tombstones
	c.m.tombstones.WithLabelValues(r.Topic, policy).Inc()
	switch policy {
	case "skip":
		c.complete(e.part, []*entry{e})
		return false
	case "dlq":
		c.deadLetter(r, e, "tombstone", "the record's value is null (delivery.tombstones: dlq)")
		return false
	default:
		if e.data == nil { // raw; an envelope marks the tombstone itself
			e.data = []byte{} // Kinesis takes a zero-length record; nil would fail the SDK's checks
		}
		return true
	}
}

// deadLetter produces r to delivery.dlq_topic with its key, value and
// headers plus ferry's; e counts as delivered once Kafka acknowledged the
// write. A write that fails while ferry runs stops it; one that the
// shutdown cut off (the client closed with it pending) only leaves e
// uncommitted, for the next owner.
func (c *Connector) deadLetter(r *kgo.Record, e *entry, class, reason string) {
	dl := &kgo.Record{
		Topic: c.cfg.Delivery.DLQTopic,
		Key:   r.Key,
		Value: r.Value,
		Headers: append(append(make([]kgo.RecordHeader, 0, len(r.Headers)+7), r.Headers...),
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
			kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
			kgo.RecordHeader{Key: HeaderTimestamp, Value: []byte(strconv.FormatInt(r.Timestamp.UnixMilli(), 10))},
			kgo.RecordHeader{Key: HeaderErrClass, Value: []byte(class)},
			kgo.RecordHeader{Key: HeaderErrMsg, Value: []byte(reason)},
			kgo.RecordHeader{Key: HeaderAttempts, Value: []byte("0")},
		),
	}
	topic, partition, offset := r.Topic, r.Partition, r.Offset
	c.cl.Produce(context.Background(), dl, func(_ *kgo.Record, err error) {
		if err != nil {
			if c.closing.Load() {
				c.log.Warn("dead-letter write still pending at shutdown: its record stays uncommitted for the next owner",
					"topic", topic, "partition", partition, "offset", offset, "dlq_topic", dl.Topic, "error", err.Error())
			} else {
				c.fail(fatalf("dead-letter write to %q for %s/%d@%d: %w", dl.Topic, topic, partition, offset, err))
			}
			c.drop([]*entry{e})
			return
		}
		c.m.dlq.WithLabelValues(topic).Inc()
		c.complete(e.part, []*entry{e})
	})
}
