package connector

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrylabs/ferry/ratelimit"
	"github.com/ferrylabs/ferry/shardmap"
)

// entry is one record on its way to Kinesis.
type entry struct {
	part   *partition
	offset int64
	key    string
	data   []byte
	size   int // len(data) + len(key): what Kinesis counts
	shard  int // predicted shard, set when a cut needs it
	// ts is the Kafka record's timestamp (Unix ms) and tsType its type
	// (0 CreateTime, 1 LogAppendTime), for the end-to-end latency.
	ts     int64
	tsType int8
	// pin says the route pins the record's Kafka partition to one shard
	// (hash_key: kafka_partition); ehk is then the explicit hash key the
	// cut gave it, from the shard map of that cut.
	pin bool
	ehk string
	// keyHash identifies key in batcher.held (ordering "key"), set by
	// batcher.add. Two keys sharing a hash only hold each other back.
	keyHash uint64
}

// unwanted reports whether e belongs to a partition being revoked and lies
// above what it sent: the next owner reads it from the commit.
func (e *entry) unwanted() bool { return e.part.stopping.Load() && !e.part.owes(e.offset) }

// batcher collects one stream's records into PutRecords requests of at most
// delivery.batch.max_records records and max_bytes bytes, sending a partial
// batch once its oldest record has waited delivery.batch.linger.
//
// Adding never blocks: memory is bounded by the connector's byte budget,
// which stops polling, not by this queue. Sending blocks on a free in-flight
// slot, which is what slows the pipeline down when Kinesis is slow.
type batcher struct {
	c          *Connector
	stream     string
	maxRecords int
	maxBytes   int
	linger     time.Duration
	// maxRecord is the largest record the stream takes: the smaller of
	// delivery.max_record_bytes and its MaxRecordSizeInKiB.
	maxRecord int

	// byKey is ordering "key": a partition key with a record in flight
	// (sent, or failed and waiting to be re-sent) is held, so its later
	// records wait, parked on the key (keys.go). Two records of one key are then never
	// in flight together, and a failed entry is re-sent before any later
	// record of its key: per-key Kafka order survives partial failures.
	byKey bool

	// agg packs records of one predicted shard into KPL aggregated records
	// of at most aggMax bytes (delivery.aggregation).
	agg    bool
	aggMax int
	// shards is the stream's shard map (nil until listed, or when the
	// stream cannot be listed); limiter paces requests per shard and aimd
	// adapts the stream's concurrency to throttling.
	shards  atomic.Pointer[shardmap.Map]
	pins    atomic.Pointer[pinTable] // explicit hash keys of shards' middles, by map
	limiter *ratelimit.Limiter
	// paceUse and paceShards are pace's scratch, under paceMu: the records
	// and bytes per shard of the request being paced.
	paceMu     sync.Mutex
	paceUse    []shardUse
	paceShards []int
	aimd       *ratelimit.AIMD
	active     atomic.Int64 // requests of this stream in flight
	refresh    chan struct{}
	// refreshMu serialises shard listings, so deliveries that find the
	// same unknown shard list the stream once.
	refreshMu sync.Mutex

	mu sync.Mutex
	// queue holds the waiting entries from queue[head:]. Cuts advance head
	// instead of copying the rest of the queue, which can hold a million
	// entries; the slice is compacted once head passes half of it.
	queue []*entry
	head  int
	bytes int
	since time.Time // arrival of the oldest queued entry
	flush bool      // shutting down: never linger again
	rush  bool      // send what is queued now, once
	// keys has the busy keys (ordering "key"), by a hash of the key worked
	// out once in add; ready has records whose key came free, parked
	// (parkedBytes) those waiting behind a busy key. See keys.go.
	keys        map[uint64]*keyState
	freeKeys    []*keyState
	ready       []*entry
	readySince  time.Time // when the oldest of ready came free
	parkedBytes int
	seed        maphash.Seed
	wake        chan struct{}
	// scratch is reused by every cut (under mu) to collect its records.
	scratch []*entry
	// scanLimit bounds how many queued records a cut looks at (records
	// it parks aside). It must reach far enough to fill every in-flight
	// request when many queued records wait behind their keys: a window
	// of 8 requests' worth, with busy keys' records kept in the queue,
	// held the benchmark (10,000 keys, 12 partitions, max_in_flight 64)
	// to requests of 160 records and 57 % of the SDK-only rate.
	scanLimit int
	// latency observes the end-to-end latency, by timestamp type.
	latency [2]prometheus.Observer
	// retries are units whose send failed, each due after its backoff
	// (see Connector.retryLater). Due ones go first into the next request.
	retries []*unit
}

func newBatcher(c *Connector, stream string) *batcher {
	b := &batcher{
		c:          c,
		stream:     stream,
		maxRecords: c.cfg.Delivery.Batch.MaxRecords,
		maxBytes:   int(c.cfg.Delivery.Batch.MaxBytes),
		maxRecord:  c.maxRecord,
		limiter:    newLimiter(c.cfg.Delivery.RateLimit.Enabled, c.cfg.Delivery.RateLimit.Factor),
		linger:     c.cfg.Delivery.Batch.Linger,
		byKey:      c.cfg.Delivery.Ordering == "key",
		agg:        c.cfg.Delivery.Aggregation.Enabled,
		aggMax:     int(c.cfg.Delivery.Aggregation.MaxBytes),
		aimd:       ratelimit.NewAIMD(1, c.cfg.Delivery.MaxInFlight, 1, 0.5),
		refresh:    make(chan struct{}, 1),
		keys:       make(map[uint64]*keyState),
		scanLimit:  max(8, c.cfg.Delivery.MaxInFlight) * c.cfg.Delivery.Batch.MaxRecords,
		seed:       maphash.MakeSeed(),
		wake:       make(chan struct{}, 1),
	}
	b.latency[0] = c.m.latency.WithLabelValues(stream, "create_time")
	b.latency[1] = c.m.latency.WithLabelValues(stream, "log_append_time")
	if b.agg {
		// Aggregated records are small parts of a request: look as far
		// as a request of the smallest records could reach.
		b.scanLimit = max(b.scanLimit, 8*max(b.maxRecords, b.maxBytes/64))
	}
	return b
}

// release ends the hold on the keys of entries that are done (delivered or
// given up), letting their keys' next records go.
func (b *batcher) release(us []*unit) {
	if !b.byKey || len(us) == 0 {
		return
	}
	b.mu.Lock()
	for _, u := range us {
		for _, e := range u.entries {
			b.releaseKey(e)
		}
	}
	b.mu.Unlock()
	b.signal()
}

func (b *batcher) add(e *entry) {
	if b.byKey {
		e.keyHash = maphash.String(b.seed, e.key)
	}
	b.mu.Lock()
	first := len(b.queue) == b.head
	if first {
		b.since = time.Now()
	}
	if b.head > 0 && b.head >= len(b.queue)/2 {
		n := copy(b.queue, b.queue[b.head:])
		clear(b.queue[n:])
		b.queue = b.queue[:n]
		b.head = 0
	}
	b.queue = append(b.queue, e)
	b.bytes += e.size
	full := len(b.queue)-b.head == b.maxRecords || b.bytes >= b.maxBytes
	b.mu.Unlock()
	if first || full {
		b.signal()
	}
}

func (b *batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// flushAll makes the batcher send everything queued without lingering, for
// the rest of its life (shutdown).
func (b *batcher) flushAll() {
	b.mu.Lock()
	b.flush = true
	b.mu.Unlock()
	b.signal()
}

// hurry sends what is queued now without waiting for the linger (a
// rebalance is waiting).
func (b *batcher) hurry() {
	b.mu.Lock()
	b.rush = true
	b.mu.Unlock()
	b.signal()
}

// run cuts and sends batches until ctx ends; requestCtx is the parent of
// the PutRecords calls (see Connector.deliver). What is still queued then is
// dropped by Run, once the deliveries have ended too (abandonQueue).
func (b *batcher) run(ctx, requestCtx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch, wait := b.next()
		if len(batch) > 0 {
			select {
			case b.c.sem <- struct{}{}:
			case <-ctx.Done():
				b.c.abandon(b, batch)
				return
			}
			b.c.sends.Go(func() {
				defer func() { <-b.c.sem }()
				b.c.deliver(ctx, requestCtx, b, batch)
			})
			continue
		}
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-b.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// next cuts a batch if one is due. Otherwise it returns how long to wait
// for the linger to pass (0: wait for a signal).
//
// A batch is a list of units, one per PutRecords entry: a single record, or
// with aggregation several records of one predicted shard packed into one
// Kinesis record. Records are taken in queue order; a record whose key is
// held (ordering "key") stays queued, in order, for a later cut.
func (b *batcher) next() ([]*unit, time.Duration) {
	b.mu.Lock()
	now := time.Now()
	due, gone, retryWait := b.takeRetries(now)
	if len(gone) > 0 {
		defer b.c.abandon(b, gone) // after the unlock: abandon takes b.mu
	}
	if len(b.queue) == b.head && len(b.ready) == 0 && len(due) == 0 {
		b.rush = false
		b.mu.Unlock()
		return nil, retryWait
	}
	full := len(b.queue)-b.head+len(b.ready)+len(due) >= b.maxRecords || b.bytes-b.parkedBytes >= b.maxBytes
	if !full && !b.flush && !b.rush {
		// A re-send lingers from when it came due, as a record does from
		// its arrival, so that it rides with newer records: sent at once,
		// most re-sends went alone (with 1 % of entries throttled, a third
		// of all requests carried one record).
		oldest := now
		if len(b.queue) > b.head {
			oldest = b.since
		}
		if len(b.ready) > 0 && b.readySince.Before(oldest) {
			oldest = b.readySince
		}
		for _, u := range due {
			if u.due.Before(oldest) {
				oldest = u.due
			}
		}
		if waited := now.Sub(oldest); waited < b.linger {
			b.retries = append(due, b.retries...) // still first in line
			b.mu.Unlock()
			wait := b.linger - waited
			if retryWait > 0 {
				wait = min(wait, retryWait)
			}
			return nil, wait
		}
	}
	cut := b.newCut()
	cut.seed(due)
	var dropped []*entry
	removed := 0 // bytes of the entries taken or dropped
	drop := func(e *entry) {
		dropped = append(dropped, e)
		removed += e.size
	}
	// The queue is scanned from head. kept collects, in order, entries
	// left for a later cut (see cutKeep); they are written back to the
	// front of the queue. Records of busy keys are parked and leave the
	// queue, so the scan passes each of them once; scanLimit bounds the
	// entries it looks at otherwise, and eight times that the whole scan.
	i := b.head
	kept := 0
	keep := func(e *entry) {
		b.queue[b.head+kept] = e
		kept++
	}
	looked, parked := 0, false
	// Records whose key came free go first: they are older than anything
	// of their key still queued.
	if len(b.ready) > 0 {
		took, more := b.cutReady(cut, drop)
		removed += took
		if !more {
			goto done
		}
	}
	for ; i < len(b.queue) && looked < b.scanLimit && i < b.head+8*b.scanLimit; i++ {
		e := b.queue[i]
		if b.byKey {
			if k := b.keyOf(e); k != nil && k.busy() {
				if e.unwanted() {
					drop(e)
				} else {
					b.park(k, e)
					parked = true
				}
				continue
			}
		}
		looked++
		switch b.offer(cut, e) {
		case cutFull:
			goto done
		case cutKeep:
			keep(e)
		case cutDrop:
			drop(e)
		case cutTake:
			removed += e.size
		}
	}
done:
	units := cut.finish()
	if b.byKey {
		for _, u := range units {
			for _, e := range u.entries {
				b.hold(e)
			}
		}
	}
	// The kept entries sit at queue[head:head+kept]; slide them up to end
	// just before the unscanned rest (order kept), and start there.
	newHead := i - kept
	copy(b.queue[newHead:i], b.queue[b.head:b.head+kept])
	clear(b.queue[b.head:newHead])
	b.head = newHead
	b.bytes -= removed
	rest := len(b.queue) - b.head
	// After a full batch the rest are newer arrivals: they linger anew.
	if full && rest > 0 && kept == 0 {
		b.since = time.Now()
	}
	b.mu.Unlock()
	if len(dropped) > 0 {
		b.c.drop(dropped)
	}
	if len(units) == 0 && (len(dropped) > 0 || parked) && rest > kept {
		// The scan only dropped records of revoked partitions or parked
		// records of busy keys, and stopped at its limit: look further
		// now, or the rest would wait (holding budget bytes) for the next
		// signal.
		return b.next()
	}
	if len(units) == 0 {
		// Everything scanned waits behind held keys: wake for the next
		// re-send that comes due (a release signals by itself).
		return nil, retryWait
	}
	return units, 0
}

// offer tries e for the request being cut: cutTake (it joined, counted in
// flight), cutKeep (leave it queued for a later cut), cutDrop (a record of a
// revoked partition) or cutFull (the request is full). b.mu is held.
func (b *batcher) offer(cut *cut, e *entry) cutVerdict {
	if v := cut.fits(e); v != cutTake {
		return v
	}
	// Count the entry in flight before checking stopping: a revoke sets
	// stopping and then waits for inflight to reach zero, so either it
	// sees this entry or this entry sees stopping.
	e.part.inflight.Add(1)
	if e.unwanted() {
		e.part.inflight.Add(-1)
		return cutDrop
	}
	if !cut.take(e) {
		e.part.inflight.Add(-1)
		return cutKeep
	}
	e.part.taken(e.offset)
	return cutTake
}

// retry queues failed units for a re-send once they are due.
func (b *batcher) retry(us []*unit) {
	b.mu.Lock()
	b.retries = append(b.retries, us...)
	b.mu.Unlock()
	b.signal()
}

// takeRetries removes from b.retries the units due at now, up to one
// request's limits, and those of revoked partitions (gone); it returns how
// long until the next of the rest is due (0: none left). b.mu is held.
func (b *batcher) takeRetries(now time.Time) (due, gone []*unit, wait time.Duration) {
	if len(b.retries) == 0 {
		return nil, nil, 0
	}
	kept := b.retries[:0]
	bytes := 0
	for _, u := range b.retries {
		switch {
		case u.revoked():
			gone = append(gone, u)
		case u.repack && !u.due.After(now):
			b.repack(u, now)
		case !u.due.After(now) && len(due) < b.maxRecords && bytes+u.size <= b.maxBytes:
			due = append(due, u)
			bytes += u.size
		default:
			kept = append(kept, u)
			if d := u.due.Sub(now); d > 0 && (wait == 0 || d < wait) {
				wait = d
			} else if d <= 0 {
				wait = time.Millisecond // due, but over this request's limits
			}
		}
	}
	clear(b.retries[len(kept):])
	b.retries = kept
	return due, gone, wait
}

// repack puts the records of an aggregate that landed on the wrong shard
// first in the ready list, in order, to be cut again by the current shard
// map. They stay tracked; they leave the in-flight count (a cut counts them
// again), and under ordering "key" their keys stay busy (through the ready
// list), so no later record of a key overtakes them. b.mu is held.
func (b *batcher) repack(u *unit, now time.Time) {
	for _, e := range u.entries {
		e.part.inflight.Add(-1)
		b.bytes += e.size
		if b.byKey {
			b.hold(e) // the key's state, if it was forgotten
			b.keys[e.keyHash].inReady++
		}
	}
	if b.byKey {
		for _, e := range u.entries {
			b.keys[e.keyHash].held = false // inReady keeps the key busy
		}
	}
	b.ready = slices.Insert(b.ready, 0, u.entries...)
	b.readySince = now.Add(-b.linger) // they waited already: no linger
}

// abandonQueue drops whatever is still queued or waiting for a re-send when
// the batcher stops.
func (b *batcher) abandonQueue() {
	b.mu.Lock()
	q := slices.Concat(b.queue[b.head:], b.dropParked())
	b.queue, b.head, b.bytes = nil, 0, 0
	retries := b.retries
	b.retries = nil
	b.mu.Unlock()
	b.c.drop(q)
	if len(retries) > 0 {
		b.c.abandon(b, retries)
	}
}
