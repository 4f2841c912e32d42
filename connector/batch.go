package connector

import (
	"context"
	"sync"
	"time"
)

// entry is one record on its way to Kinesis.
type entry struct {
	part   *partition
	offset int64
	key    string
	data   []byte
	size   int // len(data) + len(key): what Kinesis counts
}

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

	// byKey is ordering "key": a partition key with a record in flight
	// (sent, or failed and waiting to be re-sent) is held, so its later
	// records wait in the queue. Two records of one key are then never
	// in flight together, and a failed entry is re-sent before any later
	// record of its key: per-key Kafka order survives partial failures.
	byKey bool

	mu    sync.Mutex
	queue []*entry
	bytes int
	since time.Time // arrival of the oldest queued entry
	flush bool      // shutting down: never linger again
	rush  bool      // send what is queued now, once
	held  map[string]struct{}
	wake  chan struct{}
}

func newBatcher(c *Connector, stream string) *batcher {
	return &batcher{
		c:          c,
		stream:     stream,
		maxRecords: c.cfg.Delivery.Batch.MaxRecords,
		maxBytes:   int(c.cfg.Delivery.Batch.MaxBytes),
		linger:     c.cfg.Delivery.Batch.Linger,
		byKey:      c.cfg.Delivery.Ordering == "key",
		held:       make(map[string]struct{}),
		wake:       make(chan struct{}, 1),
	}
}

// release ends the hold on the keys of entries that are done (delivered or
// given up), letting their keys' next records go.
func (b *batcher) release(es []*entry) {
	if !b.byKey || len(es) == 0 {
		return
	}
	b.mu.Lock()
	for _, e := range es {
		delete(b.held, e.key)
	}
	b.mu.Unlock()
	b.signal()
}

func (b *batcher) add(e *entry) {
	b.mu.Lock()
	first := len(b.queue) == 0
	if first {
		b.since = time.Now()
	}
	b.queue = append(b.queue, e)
	b.bytes += e.size
	full := len(b.queue) == b.maxRecords || b.bytes >= b.maxBytes
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

func (b *batcher) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch, wait := b.next()
		if len(batch) > 0 {
			select {
			case b.c.sem <- struct{}{}:
			case <-ctx.Done():
				b.c.abandon(b, batch)
				b.abandonQueue()
				return
			}
			b.c.sends.Go(func() {
				defer func() { <-b.c.sem }()
				b.c.deliver(ctx, b, batch)
			})
			continue
		}
		if wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			b.abandonQueue()
			return
		case <-b.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// next cuts a batch if one is due. Otherwise it returns how long to wait
// for the linger to pass (0: wait for a signal).
func (b *batcher) next() ([]*entry, time.Duration) {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.rush = false
		b.mu.Unlock()
		return nil, 0
	}
	full := len(b.queue) >= b.maxRecords || b.bytes >= b.maxBytes
	if !full && !b.flush && !b.rush {
		if waited := time.Since(b.since); waited < b.linger {
			b.mu.Unlock()
			return nil, b.linger - waited
		}
	}
	batch := make([]*entry, 0, min(len(b.queue), b.maxRecords))
	var dropped []*entry
	bytes, i := 0, 0
	// kept collects, in order, entries passed over because their key is
	// held; they are written back to the front of the queue. The scan is
	// bounded so that a queue full of one hot key costs little per cut.
	kept := 0
	scanLimit := 8 * b.maxRecords
	for ; i < len(b.queue) && len(batch) < b.maxRecords && i < scanLimit; i++ {
		e := b.queue[i]
		if bytes+e.size > b.maxBytes && len(batch) > 0 {
			break
		}
		if b.byKey {
			if _, busy := b.held[e.key]; busy {
				if e.part.stopping.Load() {
					dropped = append(dropped, e)
				} else {
					b.queue[kept] = e
					kept++
				}
				continue
			}
		}
		// Count the entry in flight before checking stopping: a revoke sets
		// stopping and then waits for inflight to reach zero, so either it
		// sees this entry or this entry sees stopping.
		e.part.inflight.Add(1)
		if e.part.stopping.Load() {
			e.part.inflight.Add(-1)
			dropped = append(dropped, e)
			continue
		}
		if b.byKey {
			b.held[e.key] = struct{}{}
		}
		batch = append(batch, e)
		bytes += e.size
	}
	rest := kept + copy(b.queue[kept:], b.queue[i:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	b.bytes = 0
	for _, e := range b.queue {
		b.bytes += e.size
	}
	// After a full batch the rest are newer arrivals: they linger anew.
	// Entries held back by their key have waited already and go as soon
	// as the key is released.
	if full && rest > 0 && kept == 0 {
		b.since = time.Now()
	}
	b.mu.Unlock()
	if len(dropped) > 0 {
		b.c.drop(dropped)
	}
	return batch, 0
}

// abandonQueue drops whatever is still queued when the batcher stops.
func (b *batcher) abandonQueue() {
	b.mu.Lock()
	q := b.queue
	b.queue, b.bytes = nil, 0
	b.mu.Unlock()
	b.c.drop(q)
}
