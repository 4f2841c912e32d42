package connector

import (
	"sync"
	"sync/atomic"
	"time"
)

// lagState is what a partition's lag metrics are worked out from, at scrape
// time: offsets from the tracker and the commits, seconds from the record
// timestamps ferry has seen.
//
// The commit lag in seconds is the age of the first record the committed
// offset does not cover. Commits take one of the marks ferry made, so each
// mark remembers the timestamp of the record just past it (the oldest record
// still pending then, or the next one tracked after it).
type lagState struct {
	mu    sync.Mutex
	marks [16]markTime // the latest marks, a ring
	n     int          // marks made
	// waiting is set while the latest mark has no record past it yet: the
	// next tracked record fills it in.
	waiting   atomic.Bool
	start     atomic.Int64 // the first offset tracked in this assignment, -1 before
	committed atomic.Int64 // the last offset committed in this assignment, -1 before
	commitTS  atomic.Int64 // timestamp (Unix ms) of the first record past it, 0 if none
	started   atomic.Bool
}

type markTime struct {
	offset int64
	next   int64 // timestamp (Unix ms) of the first record at or past offset, 0 if not yet seen
}

// tracked notes a record just tracked (the poll loop).
func (p *partition) tracked(offset, ts int64) {
	l := &p.lag
	if l.started.CompareAndSwap(false, true) {
		l.start.Store(offset)
		l.committed.Store(-1)
	}
	if !l.waiting.Load() {
		return
	}
	l.mu.Lock()
	if m := &l.marks[(l.n-1)%len(l.marks)]; l.n > 0 && m.next == 0 && offset >= m.offset {
		m.next = ts
	}
	l.waiting.Store(false)
	l.mu.Unlock()
}

// marked notes a new mark for commit; p.mu is held, so the tracker's oldest
// pending record is the one just past it.
func (p *partition) marked(offset int64) {
	l := &p.lag
	_, next, ok := p.tracker.Oldest()
	if !ok {
		next = 0
	}
	l.mu.Lock()
	l.marks[l.n%len(l.marks)] = markTime{offset: offset, next: next}
	l.n++
	l.waiting.Store(next == 0)
	l.mu.Unlock()
}

// committedAt notes a commit of offset: the age of the record just past it
// is the commit lag in seconds. A commit of a mark that has left the ring
// takes the oldest one's, a little younger.
func (p *partition) committedAt(offset int64) {
	l := &p.lag
	l.committed.Store(offset)
	l.mu.Lock()
	defer l.mu.Unlock()
	ts, best := int64(0), int64(-1)
	for i := range min(l.n, len(l.marks)) {
		m := l.marks[i]
		if m.offset == offset {
			ts = m.next
			break
		}
		if m.offset > offset && (best < 0 || m.offset < best) {
			best, ts = m.offset, m.next
		}
	}
	l.commitTS.Store(ts)
}

// partitionLag is one partition's lag at a scrape.
type partitionLag struct {
	topic           string
	partition       int32
	deliveryRecords int64
	commitRecords   int64
	deliverySeconds float64
	commitSeconds   float64
}

// lags works out every assigned partition's lag. A partition fetched from
// once has an end offset; before that it is left out.
func (c *Connector) lags() []partitionLag {
	c.mu.Lock()
	parts := make([]*partition, 0, len(c.parts))
	for _, p := range c.parts {
		parts = append(parts, p)
	}
	c.mu.Unlock()
	now := time.Now().UnixMilli()
	age := func(ts int64) float64 {
		if ts <= 0 || ts > now {
			return 0 // no timestamp, or a producer clock ahead of ours
		}
		return float64(now-ts) / 1000
	}
	out := make([]partitionLag, 0, len(parts))
	for _, p := range parts {
		end := p.end.Load()
		if end <= 0 || !p.lag.started.Load() {
			continue
		}
		l := partitionLag{topic: p.topic, partition: p.id}
		delivered := p.lag.start.Load()
		if m, ok := p.tracker.Committable(); ok {
			delivered = m.Offset
		}
		l.deliveryRecords = max(end-delivered, 0)
		if l.deliveryRecords > 0 {
			if _, ts, ok := p.tracker.Oldest(); ok {
				l.deliverySeconds = age(ts)
			}
		}
		committed := p.lag.committed.Load()
		if committed < 0 {
			committed = p.lag.start.Load() // where this assignment started reading
		}
		l.commitRecords = max(end-committed, 0)
		if l.commitRecords > 0 {
			if ts := p.lag.commitTS.Load(); ts > 0 {
				l.commitSeconds = age(ts)
			} else {
				l.commitSeconds = l.deliverySeconds
			}
		}
		out = append(out, l)
	}
	return out
}
