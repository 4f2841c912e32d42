package connector

import "time"

// Ordering "key" keeps one record of a partition key in flight at a time.
// A record whose key is busy is parked on its key instead of staying in the
// queue: cuts then never pass over it again, so a backlog of busy keys (a
// hot key, or keys whose failed records wait out their backoff) cannot fill
// a cut's window and hide the free keys behind it. When its key's record is
// done, the key's next parked record moves to the ready list, which cuts
// take from first.
//
// A key is busy while it has a record in flight (held), a record in the
// ready list, or parked records: a later record of the key then parks
// behind them, so that the key's records leave in Kafka order. b.mu guards
// all of it.

// keyState is what the batcher knows of one busy key.
type keyState struct {
	held    bool     // a record of the key is in flight or waiting to be re-sent
	inReady int      // records of the key in b.ready
	parked  []*entry // the key's next records, in Kafka order
}

func (k *keyState) busy() bool { return k.held || k.inReady > 0 || len(k.parked) > 0 }

// keyOf returns the state of e's key, nil when the key is not busy.
func (b *batcher) keyOf(e *entry) *keyState { return b.keys[e.keyHash] }

// hold marks e's key busy: e is in flight.
func (b *batcher) hold(e *entry) {
	k := b.keys[e.keyHash]
	if k == nil {
		if n := len(b.freeKeys); n > 0 {
			k, b.freeKeys = b.freeKeys[n-1], b.freeKeys[:n-1]
		} else {
			k = &keyState{}
		}
		b.keys[e.keyHash] = k
	}
	k.held = true
}

// park puts e behind the busy key k.
func (b *batcher) park(k *keyState, e *entry) {
	k.parked = append(k.parked, e.detach())
	b.parkedBytes += e.size
}

// unblock moves the next parked records of a key that is no longer held
// to the ready list (with aggregation all of them: they may share one
// aggregated record), and forgets the key once nothing of it is left.
func (b *batcher) unblock(h uint64, k *keyState) {
	if k.held || k.inReady > 0 {
		return
	}
	if len(k.parked) > 0 {
		n := 1
		if b.agg {
			n = len(k.parked)
		}
		if len(b.ready) == 0 {
			b.readySince = time.Now()
		}
		for _, e := range k.parked[:n] {
			b.ready = append(b.ready, e)
			b.parkedBytes -= e.size
		}
		k.inReady += n
		rest := copy(k.parked, k.parked[n:])
		clear(k.parked[rest:])
		k.parked = k.parked[:rest]
		return
	}
	delete(b.keys, h)
	if cap(k.parked) > 64 {
		k.parked = nil // a hot key's long list is not kept for the next key
	}
	b.freeKeys = append(b.freeKeys, k)
}

// releaseKey ends e's hold on its key.
func (b *batcher) releaseKey(e *entry) {
	k := b.keys[e.keyHash]
	if k == nil {
		return
	}
	k.held = false
	b.unblock(e.keyHash, k)
}

// leftReady accounts for e leaving the ready list (taken or dropped).
func (b *batcher) leftReady(e *entry) {
	if k := b.keys[e.keyHash]; k != nil {
		k.inReady--
		b.unblock(e.keyHash, k)
	}
}

// dropParked empties the parked and ready lists (the batcher stops) and
// returns their records.
func (b *batcher) dropParked() []*entry {
	es := b.ready
	for h, k := range b.keys {
		es = append(es, k.parked...)
		delete(b.keys, h)
	}
	b.ready, b.parkedBytes = nil, 0
	return es
}

// cutReady adds the ready records to cut, in order, and returns the bytes
// it took from the batcher; more is false when the request is full. Records
// left for a later cut stay first in the ready list. b.mu is held.
func (b *batcher) cutReady(cut *cut, drop func(*entry)) (took int, more bool) {
	kept := 0
	keep := func(e *entry) {
		b.ready[kept] = e
		kept++
	}
	more = true
	r := 0
	// b.ready grows while it is read: a record leaving it can free the
	// next parked record of its key (leftReady).
	for ; more && r < len(b.ready); r++ {
		e := b.ready[r]
		if e.unwanted() {
			drop(e)
			b.leftReady(e)
			continue
		}
		if k := b.keyOf(e); k != nil && k.held {
			// A record of the key is in flight: taken by an earlier cut
			// or (without aggregation) by this one. With aggregation a
			// key is held only once its cut is over, so records of the
			// key taken by this cut still join its aggregate.
			keep(e)
			continue
		}
		switch b.offer(cut, e) {
		case cutFull:
			more = false
			r-- // e stays, first of the rest
		case cutKeep:
			keep(e)
		case cutDrop:
			drop(e)
			b.leftReady(e)
		case cutTake:
			took += e.size
			b.leftReady(e)
		}
	}
	n := kept + copy(b.ready[kept:], b.ready[r:])
	clear(b.ready[n:])
	b.ready = b.ready[:n]
	return took, more
}
