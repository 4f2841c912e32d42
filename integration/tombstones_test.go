//go:build integration

package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// Tombstones (records with a null value, as compacted topics and CDC streams
// carry them) on a real broker, in a compacted topic, mixed with live
// records of the same keys, under each delivery.tombstones policy. Read back
// from kinesis-mock: `empty` delivers a zero-length record with the key's
// partition key in the key's order, `skip` and `dlq` deliver none, and every
// offset is committed (a tombstone used to stall its partition forever).
func TestTombstonesOnARealBroker(t *testing.T) {
	for _, policy := range []string{"empty", "skip", "dlq"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t, harness.KindMock, 0, 1, 1)
			compact := "compact"
			topic := e.name + ".compacted"
			if err := harness.CreateTopicWithConfigs(t.Context(), e.brokers, topic, 2, map[string]*string{"cleanup.policy": &compact}); err != nil {
				t.Fatal(err)
			}
			e.topics = []string{topic}
			dlq := e.name + ".dlq"
			if err := harness.CreateTopic(t.Context(), e.brokers, dlq, 1); err != nil {
				t.Fatal(err)
			}
			// Per key: live, tombstone, live, and every fifth key ends on a
			// tombstone.
			const keys = 50
			var recs []*kgo.Record
			for round := range 3 {
				for k := range keys {
					r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "key-%d", k)}
					if round != 1 && (round != 2 || k%5 != 0) {
						r.Value = fmt.Appendf(nil, "%s|%d|", topic, round*keys+k)
					}
					recs = append(recs, r)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			if _, err := harness.Produce(ctx, e.brokers, recs); err != nil {
				t.Fatal(err)
			}
			tombstones := 0
			for _, r := range recs {
				if r.Value == nil {
					tombstones++
				}
			}
			cfg := e.config(fmt.Sprintf("  tombstones: %s\n  dlq_topic: %s\n", policy, dlq))
			p := e.start(cfg, "ferry")
			e.waitCommitted(-1, time.Minute, p)
			_, body := httpGet(t, p, "/metrics")
			if got := metric(body, "ferry_tombstones_total", `policy="`+policy+`"`); got != float64(tombstones) {
				t.Errorf("ferry_tombstones_total{policy=%q} = %v, want %d", policy, got, tombstones)
			}
			e.stop(p)

			read, err := harness.ReadAll(ctx, e.kc, e.stream)
			if err != nil {
				t.Fatal(err)
			}
			// What each key's consumer sees, in stream order ("" for a tombstone).
			got := map[string][]string{}
			for _, r := range read {
				got[r.PartitionKey] = append(got[r.PartitionKey], string(r.Data))
			}
			for k := range keys {
				key := fmt.Sprintf("key-%d", k)
				var want []string
				for _, r := range recs {
					if string(r.Key) != key {
						continue
					}
					if r.Value != nil {
						want = append(want, string(r.Value))
					} else if policy == "empty" {
						want = append(want, "")
					}
				}
				if !slices.Equal(got[key], want) {
					t.Fatalf("%s read back %q, want %q", key, got[key], want)
				}
			}
			if policy == "dlq" {
				dead := consumeTopic(t, e.brokers, dlq, tombstones)
				for _, r := range dead {
					if r.Value != nil {
						t.Fatalf("dead-lettered tombstone of %s has a value %q", r.Key, r.Value)
					}
				}
				if len(dead) != tombstones {
					t.Fatalf("%d dead-lettered records, want %d", len(dead), tombstones)
				}
			}
		})
	}
}
