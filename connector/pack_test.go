package connector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/offsets"
	"github.com/ferrylabs/ferry/shardmap"
)

// With aggregation and ordering "key", a key never spans two entries of one
// request: when its aggregate fills up, its next record waits for the next
// request (if the first entry failed and the second succeeded, the key's
// order would break).
func TestCutKeepsAKeyInOneAggregate(t *testing.T) {
	t.Parallel()
	b := aggBatcher(t, 4<<10)
	p := &partition{tracker: offsets.NewTracker()}
	data := make([]byte, 1000)
	// 20 records of one key: 4 fit in a 4 KiB aggregate.
	for i := range 20 {
		b.add(&entry{part: p, offset: int64(i), key: "k", data: data, size: len(data) + 1})
	}
	b.flushAll()
	units, _ := b.next()
	keys := map[string]int{}
	taken := 0
	for _, u := range units {
		seen := map[string]bool{}
		for _, e := range u.entries {
			seen[e.key] = true
			taken++
		}
		for k := range seen {
			keys[k]++
		}
	}
	if keys["k"] != 1 {
		t.Fatalf("key k is in %d entries of one request, want 1", keys["k"])
	}
	if taken == 0 || taken == 20 {
		t.Fatalf("took %d of 20 records: the aggregate limit was not exercised", taken)
	}
	if left := len(b.queue) - b.head; left != 20-taken {
		t.Fatalf("%d records left queued, want %d", left, 20-taken)
	}
}

// With aggregation over many shards, a cut's request stays within the byte
// limit (the running size of the open aggregates is exact), and every
// record taken is in exactly one unit.
func TestCutRequestBytesWithManyOpenAggregates(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Delivery.Aggregation.Enabled = true
	cfg.Delivery.Aggregation.MaxBytes = 4 << 10
	cfg.Delivery.Batch.MaxBytes = 64 << 10
	b := bareBatcher(cfg)
	m, err := shardmap.New(shardmap.EvenShards(64))
	if err != nil {
		t.Fatal(err)
	}
	b.shards.Store(m)
	p := &partition{tracker: offsets.NewTracker()}
	for round := range 20 {
		cut := b.newCut()
		taken := 0
		for i := range 2_000 {
			data := make([]byte, 50+(i*37)%400)
			e := &entry{part: p, key: fmt.Sprintf("key-%d-%d", round, i), data: data}
			e.size = len(data) + len(e.key)
			if cut.fits(e) == cutFull {
				break
			}
			if cut.take(e) {
				taken++
			}
		}
		units := cut.finish()
		total, records := 0, 0
		for _, u := range units {
			total += u.size
			records += len(u.entries)
		}
		if total > int(cfg.Delivery.Batch.MaxBytes) {
			t.Fatalf("round %d: request of %d bytes over the limit of %d", round, total, cfg.Delivery.Batch.MaxBytes)
		}
		if records != taken || cut.openSize != 0 || cut.openLen != 0 {
			t.Fatalf("round %d: %d records in units, %d taken; open size %d, open %d after finish",
				round, records, taken, cut.openSize, cut.openLen)
		}
		if total < int(cfg.Delivery.Batch.MaxBytes)*3/4 {
			t.Fatalf("round %d: request of only %d bytes: the open sizes are overcounted", round, total)
		}
	}
}

// Kinesis counts an aggregated record as one record against a shard's 1,000
// records/s (its bytes count in full): pacing must too, or aggregation would
// be held to the unaggregated record rate.
func TestPaceCountsAnAggregateAsOneRecord(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	b := bareBatcher(cfg)
	b.limiter = newLimiter(true, 1)
	var us []*unit
	for range 5 { // 5 aggregates of 400 user records, 20 KB each: 2,000 user records
		entries := make([]*entry, 400)
		us = append(us, &unit{entries: entries, size: 20_000, shard: 0})
	}
	start := time.Now()
	if !b.pace(context.Background(), us) {
		t.Fatal("pace gave up")
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("5 Kinesis records of 2,000 user records waited %s: paced as user records", took)
	}
	// 1,500 single-record units are over the 1,000 records/s budget.
	us = us[:0]
	for range 1500 {
		us = append(us, &unit{entries: make([]*entry, 1), size: 100, shard: 0})
	}
	start = time.Now()
	b.pace(context.Background(), us)
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("1,500 records on one shard waited only %s", took)
	}
}

// Under ordering "key" a cut looks past the records held behind their keys
// far enough to fill a request from other keys: as far as max_in_flight
// full requests reach. A shorter window (8 requests' worth) left requests
// small and in-flight slots idle whenever a partition's backlog of busy
// keys sat at the head of the queue.
func TestCutLooksPastHeldKeys(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Delivery.Batch.MaxRecords = 100
	cfg.Delivery.MaxInFlight = 16 // a window of 1,600 records
	b := bareBatcher(cfg)
	p := &partition{tracker: offsets.NewTracker()}
	data := make([]byte, 10)
	off := int64(0)
	add := func(key string) {
		b.add(&entry{part: p, offset: off, key: key, data: data, size: len(data) + len(key)})
		off++
	}
	for range 12 { // 1,200 records of 100 keys: the first cut holds them all
		for k := range 100 {
			add(fmt.Sprintf("busy-%d", k))
		}
	}
	for k := range 100 { // then 100 keys that are free
		add(fmt.Sprintf("free-%d", k))
	}
	b.flushAll()
	first, _ := b.next()
	if len(first) != 100 {
		t.Fatalf("first cut took %d records, want 100", len(first))
	}
	second, _ := b.next()
	if len(second) != 100 {
		t.Fatalf("second cut took %d records, want the 100 free keys behind 1,100 held records", len(second))
	}
	for _, u := range second {
		if key := u.entries[0].key; key[:5] != "free-" {
			t.Fatalf("second cut took %q, whose key is held", key)
		}
	}
	// The busy keys' records wait parked; as each key's record is done,
	// its next record goes, in Kafka order.
	for round := 1; round < 12; round++ {
		b.release(first)
		next, _ := b.next()
		if len(next) != 100 {
			t.Fatalf("round %d: cut took %d records, want the 100 busy keys' next ones", round, len(next))
		}
		for i, u := range next {
			if want := int64(round*100 + i); u.entries[0].offset != want {
				t.Fatalf("round %d: record %d has offset %d, want %d", round, i, u.entries[0].offset, want)
			}
		}
		first = next
	}
	b.release(first)
	b.release(second)
	if rest, _ := b.next(); len(rest) != 0 || len(b.keys) != 0 || len(b.ready) != 0 || b.parkedBytes != 0 {
		t.Fatalf("left: %d records cut, %d busy keys, %d ready, %d parked bytes", len(rest), len(b.keys), len(b.ready), b.parkedBytes)
	}
}

// A re-send that comes due lingers like a new record, so that it rides in
// the next request with the records queued meanwhile instead of going alone.
func TestResendRidesWithNewRecords(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Delivery.Batch.Linger = 200 * time.Millisecond
	b := bareBatcher(cfg)
	p := &partition{tracker: offsets.NewTracker()}
	data := make([]byte, 10)
	failed := &entry{part: p, offset: 0, key: "a", data: data, size: len(data) + 1}
	b.retry([]*unit{{entries: []*entry{failed}, data: data, key: "a", size: failed.size, shard: -1, due: time.Now()}})
	if units, wait := b.next(); len(units) != 0 || wait <= 0 {
		t.Fatalf("a re-send just due went at once (%d units, wait %v), want it to linger", len(units), wait)
	}
	b.add(&entry{part: p, offset: 1, key: "b", data: data, size: len(data) + 1})
	time.Sleep(250 * time.Millisecond)
	units, _ := b.next()
	if len(units) != 2 || units[0].entries[0] != failed {
		t.Fatalf("after the linger: %d units, want the re-send first and the new record", len(units))
	}
}

// A parked record whose partition was revoked meanwhile is dropped when its
// turn comes, and the next parked record of its key (from a partition still
// owned) goes in its place: dropping must not leave the key's later records
// parked with nothing in flight to release them.
func TestDroppedReadyRecordUnblocksItsKey(t *testing.T) {
	t.Parallel()
	b := bareBatcher(config.Default())
	live := &partition{tracker: offsets.NewTracker()}
	gone := &partition{tracker: offsets.NewTracker()}
	data := make([]byte, 10)
	a := &entry{part: live, offset: 0, key: "k", data: data, size: 11}
	bb := &entry{part: gone, offset: 0, key: "k", data: data, size: 11}
	c := &entry{part: live, offset: 1, key: "k", data: data, size: 11}
	for _, e := range []*entry{a, bb, c} {
		b.add(e)
	}
	b.flushAll()
	first, _ := b.next()
	if len(first) != 1 || first[0].entries[0] != a {
		t.Fatalf("first cut: %d units, want record a alone", len(first))
	}
	gone.stopping.Store(true)
	gone.revoked.Store(true)
	b.release(first)
	second, _ := b.next()
	// c waited parked, so it is a copy (entry.detach): compare what it is.
	if len(second) != 1 || second[0].entries[0].part != c.part || second[0].entries[0].offset != c.offset {
		t.Fatalf("second cut: %d units, want record c (b's partition is revoked)", len(second))
	}
	b.release(second)
	if len(b.keys) != 0 || len(b.ready) != 0 || b.parkedBytes != 0 || b.bytes != 0 {
		t.Fatalf("left: %d busy keys, %d ready, %d parked bytes, %d queued bytes", len(b.keys), len(b.ready), b.parkedBytes, b.bytes)
	}
}

// With aggregation, records of a key left in the ready list (their
// aggregate filled up) wait while the key's aggregate is in flight: two
// entries of one key in flight at once could land out of order.
func TestAggregatedKeyWaitsWhileItsAggregateIsInFlight(t *testing.T) {
	t.Parallel()
	b := aggBatcher(t, 4<<10)
	p := &partition{tracker: offsets.NewTracker()}
	data := make([]byte, 1000)
	add := func(off int) { b.add(&entry{part: p, offset: int64(off), key: "k", data: data, size: len(data) + 1}) }
	add(0)
	b.flushAll()
	first, _ := b.next()
	for i := 1; i < 10; i++ {
		add(i)
	}
	if units, _ := b.next(); len(units) != 0 {
		t.Fatalf("a cut took %d units while the key's record is in flight", len(units))
	}
	b.release(first)
	second, _ := b.next() // the ready records, as many as one aggregate holds
	if len(second) != 1 || len(second[0].entries) == 9 {
		t.Fatalf("second cut: %d units, want one aggregate that could not hold all 9 records", len(second))
	}
	if units, _ := b.next(); len(units) != 0 {
		t.Fatalf("a cut took %d units while the key's aggregate is in flight", len(units))
	}
	b.release(second)
	next := second[0].entries[len(second[0].entries)-1].offset + 1
	third, _ := b.next()
	if len(third) == 0 || third[0].entries[0].offset != next {
		t.Fatalf("after the release: want the key's next record (offset %d) first", next)
	}
}

// aggBatcher is a bare batcher (ordering key) that aggregates into records
// of at most maxBytes on a stream of one shard.
func aggBatcher(t *testing.T, maxBytes config.ByteSize) *batcher {
	t.Helper()
	cfg := config.Default()
	cfg.Delivery.Aggregation.Enabled = true
	cfg.Delivery.Aggregation.MaxBytes = maxBytes
	b := bareBatcher(cfg)
	m, err := shardmap.New(shardmap.EvenShards(1))
	if err != nil {
		t.Fatal(err)
	}
	b.shards.Store(m)
	return b
}
