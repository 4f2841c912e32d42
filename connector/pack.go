package connector

import (
	"slices"
	"time"

	"github.com/ferrylabs/ferry/aggregation"
	"github.com/ferrylabs/ferry/shardmap"
)

// unit is one PutRecords entry: one user record, or (aggregation) several
// user records of one predicted shard packed into one KPL aggregated record.
// A unit succeeds or fails as a whole: its records are acknowledged, or
// re-sent, together.
type unit struct {
	entries []*entry
	data    []byte
	key     string // the Kinesis record's partition key
	ehk     string // its explicit hash key, if any
	size    int    // len(data) + len(key): what Kinesis counts
	shard   int    // predicted shard index, -1 when unknown
	shardID string // the predicted shard's ID, when the cut predicted it
	// attempts counts the failed sends; due is when a failed unit may be
	// sent again (see batcher.retry).
	attempts int
	due      time.Time
	// repack marks an aggregate that Kinesis stored on a shard whose range
	// lacks some of its records (the shard map was stale): once due, its
	// records are cut again, by the fresh map, instead of re-sent as they
	// were (see batcher.repack).
	repack bool
}

// cutVerdict says what a cut does with the next queued entry.
type cutVerdict int

const (
	cutTake cutVerdict = iota // it fits: take it
	cutKeep                   // not in this request: leave it queued (order kept)
	cutFull                   // the request is full: stop scanning
	cutDrop                   // a record of a revoked partition: drop it (offer only)
)

// cut builds one request's units from queued entries, within the request's
// record and byte limits.
type cut struct {
	b *batcher
	// shards is the shard map of the whole cut, loaded once: a map swapped
	// in mid-cut could put two records of one key into two aggregates of
	// one request, and a failure of the first would land them out of order.
	shards *shardmap.Map
	units  []*unit
	bytes  int // bytes of the closed units
	// taken collects the records of a cut without aggregation, in the
	// batcher's reused scratch slice; finish then makes their units in two
	// allocations of the exact size. Under ordering "key" many cuts take
	// a few records or none (their keys are held), and buffers sized for
	// a full request each time cost more in clearing memory than the
	// records did.
	taken []*entry
	// aggregation
	open    map[int]*openAgg // predicted shard -> aggregate being filled
	openLen int
	// openSize is what the open aggregates will count once closed (the
	// sum of their KinesisSize), kept up to date by add and close so that
	// fits costs the same with 4 open shards or 4,000.
	openSize int
	blocked  map[string]bool // ordering "key": keys whose aggregate closed in this cut
}

type openAgg struct {
	agg     *aggregation.Aggregator
	entries []*entry
	shard   int
}

func (b *batcher) newCut() *cut {
	c := &cut{b: b, taken: b.scratch[:0], shards: b.shards.Load()}
	if b.agg {
		c.open = make(map[int]*openAgg)
		if b.byKey {
			c.blocked = make(map[string]bool)
		}
	}
	return c
}

// add puts e into the open aggregate o, keeping openSize; false when o is
// full.
func (c *cut) add(o *openAgg, e *entry) bool {
	before := o.agg.KinesisSize()
	if !o.agg.Add(aggregation.Record{PartitionKey: e.key, ExplicitHashKey: e.ehk, Data: e.data}) {
		return false
	}
	c.openSize += o.agg.KinesisSize() - before
	return true
}

// seed starts the request with units due for a re-send: they go before
// any newer record.
func (c *cut) seed(us []*unit) {
	c.units = append(c.units, us...)
	for _, u := range us {
		c.bytes += u.size
	}
}

// fits decides about entry e without taking it.
func (c *cut) fits(e *entry) cutVerdict {
	b := c.b
	if !b.agg {
		if len(c.units)+len(c.taken) >= b.maxRecords {
			return cutFull
		}
		if c.bytes+e.size > b.maxBytes && len(c.units)+len(c.taken) > 0 {
			return cutFull
		}
		return cutTake
	}
	if b.byKey && c.blocked[e.key] {
		return cutKeep
	}
	c.place(e)
	// Worst case e starts a new aggregate of its own.
	if c.bytes+c.openSize+e.size+aggregation.Overhead+8 > b.maxBytes && (len(c.units) > 0 || c.openLen > 0) {
		return cutFull
	}
	if _, ok := c.open[e.shard]; !ok && len(c.units)+c.openLen >= b.maxRecords {
		return cutFull
	}
	return cutTake
}

// take adds e to the request. It reports false when e cannot join this
// request after all (ordering "key": its key's aggregate just filled up);
// the caller leaves it queued.
func (c *cut) take(e *entry) bool {
	b := c.b
	if !b.agg {
		if e.pin {
			c.place(e)
		}
		c.taken = append(c.taken, e)
		c.bytes += e.size
		if b.byKey {
			b.hold(e)
		}
		return true
	}
	o := c.open[e.shard]
	if o == nil {
		o = &openAgg{agg: aggregation.NewAggregator(b.aggMax), shard: e.shard}
		c.open[e.shard] = o
		c.openLen++
	}
	if !c.add(o, e) {
		// The aggregate is full: close it and start another for the shard.
		c.close(o)
		if b.byKey {
			// A key with records in the closed aggregate must not have
			// later records in another entry of the same request: if the
			// first failed and the second succeeded, order would break.
			for _, x := range o.entries {
				c.blocked[x.key] = true
			}
		}
		if b.byKey && c.blocked[e.key] {
			return false // e's predecessors are in the aggregate just closed
		}
		o = &openAgg{agg: aggregation.NewAggregator(b.aggMax), shard: e.shard}
		c.open[e.shard] = o
		c.openLen++
		c.add(o, e) // an empty aggregate takes any record
	}
	o.entries = append(o.entries, e)
	return true
}

// place predicts e's shard by the cut's map. A pinned record (hash_key:
// kafka_partition) goes to open shard p mod N, at the middle of its range,
// so a topic's partitions spread over every shard and each lands on one;
// without a map it falls back to its partition key.
func (c *cut) place(e *entry) {
	if e.pin && c.shards != nil {
		pt := c.b.pinsFor(c.shards)
		e.shard = pinnedShard(c.shards, e.part.id)
		e.ehk = pt.ehk[e.shard]
		return
	}
	e.ehk = ""
	e.shard = predictIn(c.shards, e.key)
}

// pinnedShard is the index of the open shard Kafka partition p is pinned to.
func pinnedShard(m *shardmap.Map, p int32) int { return int(p) % m.Len() }

// pinTable holds the explicit hash keys of one shard map's open shards.
type pinTable struct {
	m   *shardmap.Map
	ehk []string
}

// pinsFor returns the pin table of m, built once per map.
func (b *batcher) pinsFor(m *shardmap.Map) *pinTable {
	if pt := b.pins.Load(); pt != nil && pt.m == m {
		return pt
	}
	pt := &pinTable{m: m, ehk: make([]string, m.Len())}
	for i := range pt.ehk {
		pt.ehk[i] = m.At(i).Mid().String()
	}
	b.pins.Store(pt)
	return pt
}

// close turns an open aggregate into a unit.
func (c *cut) close(o *openAgg) {
	delete(c.open, o.shard)
	c.openLen--
	c.openSize -= o.agg.KinesisSize()
	var u *unit
	if len(o.entries) == 1 || o.agg.Size() > o.agg.MaxBytes() {
		// One record (or one bigger than an aggregate may be): send it as
		// it is, as the KPL does; consumers read both forms.
		if len(o.entries) == 1 {
			e := o.entries[0]
			u = &unit{entries: o.entries, data: e.data, key: e.key, ehk: e.ehk, size: e.size, shard: o.shard}
		}
	}
	if u == nil {
		data, key, ehk := o.agg.Encode(make([]byte, 0, o.agg.Size()))
		u = &unit{entries: o.entries, data: data, key: key, ehk: ehk, size: len(data) + len(key), shard: o.shard}
	}
	if c.shards != nil && o.shard >= 0 {
		u.shardID = c.shards.ID(o.shard)
	}
	c.units = append(c.units, u)
	c.bytes += u.size
}

// finish closes the open aggregates and returns the request's units.
func (c *cut) finish() []*unit {
	if c.b.agg {
		for _, o := range c.open {
			c.close(o)
		}
		return c.units
	}
	if n := len(c.taken); n > 0 {
		ubuf := make([]unit, n)
		ebuf := make([]*entry, n)
		copy(ebuf, c.taken)
		c.units = slices.Grow(c.units, n)
		for i, e := range ebuf {
			ubuf[i] = unit{entries: ebuf[i : i+1 : i+1], data: e.data, key: e.key, size: e.size, shard: -1}
			if e.pin {
				ubuf[i].ehk, ubuf[i].shard = e.ehk, e.shard
			}
			c.units = append(c.units, &ubuf[i])
		}
	}
	clear(c.taken) // the scratch slice must not keep records alive
	c.b.scratch = c.taken[:0]
	return c.units
}
