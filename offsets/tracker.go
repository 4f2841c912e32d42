// Package offsets decides which Kafka offset is safe to commit when the
// records of a partition are delivered out of order.
//
// A Tracker follows one partition for one assignment. Records are tracked in
// fetch order; they may be marked done in any order; the committable offset is
// one past the highest offset whose every earlier tracked record is done.
// Offsets need not be contiguous: compaction and transaction markers leave
// gaps, so the tracker only ever reasons about offsets it has seen.
//
// The package does no I/O. The caller commits, but it does so from inside the
// callback that Done and Revoke run under the tracker's lock, so that a late
// acknowledgement can never mark an offset after the partition was revoked.
package offsets

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Mark is a commit position: Offset is the next offset to read (one past the
// last delivered record) and Epoch the leader epoch of that last record, as
// franz-go's EpochOffset expects.
type Mark struct {
	Offset int64
	Epoch  int32
}

// ErrOutOfOrder is returned by Track for an offset at or below one already
// tracked: fetch order must be offset order within a partition.
var ErrOutOfOrder = errors.New("offset tracked out of order")

// ErrRevoked is returned by Track once the tracker was revoked.
var ErrRevoked = errors.New("tracker revoked")

type slot struct {
	offset int64
	bytes  int64
	time   int64 // the record's timestamp (Unix ms), 0 if unknown
	epoch  int32
	done   bool
}

// Tracker tracks one partition's undelivered records for one assignment. It
// is safe for concurrent use. The zero value is not usable; use NewTracker.
type Tracker struct {
	mu sync.Mutex
	// slots holds tracked records not yet released, in offset order, from
	// slots[head] on. Released slots are dropped from the front.
	slots []slot
	head  int

	last     int64 // last tracked offset; -1 before the first
	mark     Mark
	hasMark  bool
	pending  int
	bytes    int64
	revoked  bool
	released int64 // count of records released, for tests and metrics
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{last: -1}
}

// Track registers a fetched record. Offsets must increase.
func (t *Tracker) Track(offset int64, epoch int32, bytes int64) error {
	return t.TrackTimed(offset, epoch, bytes, 0)
}

// TrackTimed is Track for a record with a timestamp (Unix ms), which Oldest
// reports for lag measurements.
func (t *Tracker) TrackTimed(offset int64, epoch int32, bytes, timestamp int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.revoked {
		return ErrRevoked
	}
	if offset <= t.last {
		return fmt.Errorf("%w: %d after %d", ErrOutOfOrder, offset, t.last)
	}
	t.last = offset
	// Reclaim the released prefix once it dominates the slice, so memory
	// stays proportional to what is pending.
	if t.head > 0 && t.head >= len(t.slots)/2 {
		n := copy(t.slots, t.slots[t.head:])
		clear(t.slots[n:])
		t.slots = t.slots[:n]
		t.head = 0
	}
	t.slots = append(t.slots, slot{offset: offset, bytes: bytes, time: timestamp, epoch: epoch})
	t.pending++
	t.bytes += bytes
	return nil
}

// Done marks the record at offset delivered. If that moves the committable
// mark and the tracker is not revoked, onAdvance runs with the new mark while
// the tracker's lock is held: the caller marks the offset for commit there,
// which makes "check not revoked, then mark" atomic with Revoke.
//
// Done reports whether the offset was pending. Unknown or repeated offsets
// are ignored, so a duplicate acknowledgement is harmless.
func (t *Tracker) Done(offset int64, onAdvance func(Mark)) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.slots[t.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	if i == len(live) || live[i].offset != offset || live[i].done {
		return false
	}
	live[i].done = true
	t.pending--
	t.bytes -= live[i].bytes
	if i != 0 {
		return true
	}
	// The oldest pending record is done: release the done prefix.
	for t.head < len(t.slots) && t.slots[t.head].done {
		s := t.slots[t.head]
		t.mark = Mark{Offset: s.offset + 1, Epoch: s.epoch}
		t.hasMark = true
		t.head++
		t.released++
	}
	if t.revoked {
		return true
	}
	if onAdvance != nil {
		onAdvance(t.mark)
	}
	return true
}

// Committable returns the current mark, if any record has been released.
func (t *Tracker) Committable() (Mark, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mark, t.hasMark
}

// Pending returns the number and bytes of tracked records not yet done.
func (t *Tracker) Pending() (records int, bytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending, t.bytes
}

// Revoke stops the tracker: later Done calls no longer run their callback
// and Track fails. It returns the final mark. Revoke is idempotent.
func (t *Tracker) Revoke() (Mark, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.revoked = true
	return t.mark, t.hasMark
}

// Oldest returns the oldest tracked record not yet done, if any: its offset
// and timestamp (0 when tracked without one).
func (t *Tracker) Oldest() (offset, timestamp int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.slots[t.head:] {
		if !s.done {
			return s.offset, s.time, true
		}
	}
	return 0, 0, false
}

// Last returns the last tracked offset, or -1 before the first.
func (t *Tracker) Last() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Revoked reports whether Revoke was called.
func (t *Tracker) Revoked() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.revoked
}
