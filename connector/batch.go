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

	mu    sync.Mutex
	queue []*entry
	bytes int
	since time.Time // arrival of the oldest queued entry
	flush bool      // shutting down: never linger again
	rush  bool      // send what is queued now, once
	wake  chan struct{}
}

func newBatcher(c *Connector, stream string) *batcher {
	return &batcher{
		c:          c,
		stream:     stream,
		maxRecords: c.cfg.Delivery.Batch.MaxRecords,
		maxBytes:   int(c.cfg.Delivery.Batch.MaxBytes),
		linger:     c.cfg.Delivery.Batch.Linger,
		wake:       make(chan struct{}, 1),
	}
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
				b.c.abandon(batch)
				b.abandonQueue()
				return
			}
			b.c.sends.Go(func() {
				defer func() { <-b.c.sem }()
				b.c.deliver(ctx, b.stream, batch)
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
	for ; i < len(b.queue) && len(batch) < b.maxRecords; i++ {
		e := b.queue[i]
		if bytes+e.size > b.maxBytes && len(batch) > 0 {
			break
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
		batch = append(batch, e)
		bytes += e.size
	}
	rest := copy(b.queue, b.queue[i:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	b.bytes = 0
	for _, e := range b.queue {
		b.bytes += e.size
	}
	if full && rest > 0 {
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
