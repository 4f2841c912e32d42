package shardmap

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// Shard is one Kinesis shard as ListShards describes it. Start and End bound
// its inclusive hash-key range. Open is false for a closed shard (a parent
// after a split or merge, which has an EndingSequenceNumber); closed shards
// take no new records, so New ignores them.
type Shard struct {
	ID         string
	Start, End Hash
	Open       bool
}

// Contains reports whether h falls in s's inclusive range.
func (s Shard) Contains(h Hash) bool {
	return s.Start.Cmp(h) <= 0 && h.Cmp(s.End) <= 0
}

// ErrInvalidShards is wrapped by New's error when the open shards don't
// partition the hash-key space exactly once.
var ErrInvalidShards = errors.New("invalid shard map")

// Map routes hash keys to the open shards of one stream. It is immutable once
// built, so one Map may be shared by any number of goroutines; after a reshard,
// build a new Map from a fresh ListShards and swap it in (an atomic.Pointer
// works).
type Map struct {
	shards []Shard // open shards sorted by Start
	starts []Hash  // shards[i].Start, kept apart so the search touches one array
	// byID holds every listed shard, closed ones too: a record stored on a
	// shard that has closed since is still checked against its range.
	byID map[string]Shard
}

// New builds a Map from a stream's shards. Closed shards are ignored. The open
// shards must cover 0..2^128-1 with no gap and no overlap, have Start <= End
// and distinct IDs; otherwise New returns an error wrapping ErrInvalidShards
// that lists every gap, overlap and bad shard found.
func New(shards []Shard) (*Map, error) {
	open := make([]Shard, 0, len(shards))
	for _, s := range shards {
		if s.Open {
			open = append(open, s)
		}
	}
	if len(open) == 0 {
		return nil, fmt.Errorf("%w: no open shards among %d", ErrInvalidShards, len(shards))
	}
	slices.SortFunc(open, func(a, b Shard) int {
		return cmp.Or(a.Start.Cmp(b.Start), a.End.Cmp(b.End), cmp.Compare(a.ID, b.ID))
	})

	var errs []error
	seen := make(map[string]struct{}, len(open))
	for _, s := range open {
		if _, dup := seen[s.ID]; dup {
			errs = append(errs, fmt.Errorf("shard %q appears more than once", s.ID))
		}
		seen[s.ID] = struct{}{}
		if s.Start.Cmp(s.End) > 0 {
			errs = append(errs, fmt.Errorf("shard %q: start %s is after end %s", s.ID, s.Start, s.End))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidShards, errors.Join(errs...))
	}

	if open[0].Start != (Hash{}) {
		errs = append(errs, fmt.Errorf("gap 0..%s before shard %q", open[0].Start.prev(), open[0].ID))
	}
	// reach is the shard with the highest End so far: with nested ranges the
	// previous shard in Start order is not necessarily the one that overlaps.
	reach := open[0]
	for _, s := range open[1:] {
		switch {
		case s.Start.Cmp(reach.End) <= 0:
			end := reach.End
			if s.End.Cmp(end) < 0 {
				end = s.End
			}
			errs = append(errs, fmt.Errorf("overlap %s..%s between shards %q and %q", s.Start, end, reach.ID, s.ID))
		default:
			if after, _ := reach.End.next(); after != s.Start {
				errs = append(errs, fmt.Errorf("gap %s..%s between shards %q and %q", after, s.Start.prev(), reach.ID, s.ID))
			}
		}
		if s.End.Cmp(reach.End) > 0 {
			reach = s
		}
	}
	if reach.End != MaxHash {
		after, _ := reach.End.next()
		errs = append(errs, fmt.Errorf("gap %s..%s after shard %q", after, MaxHash, reach.ID))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidShards, errors.Join(errs...))
	}

	m := &Map{shards: open, starts: make([]Hash, len(open)), byID: make(map[string]Shard, len(shards))}
	for i, s := range open {
		m.starts[i] = s.Start
	}
	for _, s := range shards {
		m.byID[s.ID] = s
	}
	return m, nil
}

// Shard returns the listed shard (open or closed) with the given ID.
func (m *Map) Shard(id string) (Shard, bool) {
	s, ok := m.byID[id]
	return s, ok
}

// Lookup returns the open shard whose range holds h: its index into Shards()
// and its ID. It is a binary search over the range starts, without allocating.
func (m *Map) Lookup(h Hash) (index int, id string) {
	// Find the last start <= h. starts[0] is zero, so one always exists.
	lo, hi := 0, len(m.starts) // invariant: starts[lo] <= h, and h < starts[hi] when hi < len
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if m.starts[mid].Cmp(h) <= 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, m.shards[lo].ID
}

// Predict returns the open shard a record lands on: by explicitHashKey when it
// is not empty, as Kinesis does, and otherwise by HashKey(partitionKey). The
// only error is an unparsable explicitHashKey (wrapping ErrInvalidHash). It
// doesn't check Kinesis' own rules for partition keys (1 to 256 characters).
func (m *Map) Predict(partitionKey, explicitHashKey string) (index int, id string, err error) {
	if explicitHashKey == "" {
		index, id = m.Lookup(HashKey(partitionKey))
		return index, id, nil
	}
	h, err := ParseHash(explicitHashKey)
	if err != nil {
		return -1, "", fmt.Errorf("predict shard: %w", err)
	}
	index, id = m.Lookup(h)
	return index, id, nil
}

// Shards returns a copy of the open shards sorted by Start; Lookup's and
// Predict's indexes point into it.
func (m *Map) Shards() []Shard { return slices.Clone(m.shards) }

// Len returns the number of open shards.
func (m *Map) Len() int { return len(m.shards) }

// EvenShards returns n open shards that split the key space evenly, named
// "shardId-%012d", with the same boundaries CreateStream gives a new stream of
// n shards: shard i starts at floor(i * 2^128 / n). It returns nil for n < 1.
// Tests and the fake sink use it.
func EvenShards(n int) []Shard {
	if n < 1 {
		return nil
	}
	shards := make([]Shard, n)
	for i := range n {
		shards[i] = Shard{ID: fmt.Sprintf("shardId-%012d", i), Start: evenStart(i, n), Open: true}
		if i > 0 {
			shards[i-1].End = shards[i].Start.prev()
		}
	}
	shards[n-1].End = MaxHash
	return shards
}

// evenStart returns floor(i * 2^128 / n) for 0 <= i < n, dividing the 192-bit
// dividend (i, 0, 0) one 64-bit word at a time; i < n keeps the top quotient
// word zero, so the result fits in 128 bits.
func evenStart(i, n int) Hash {
	hi, rem := bits.Div64(uint64(i), 0, uint64(n))
	lo, _ := bits.Div64(rem, 0, uint64(n))
	return Hash{Hi: hi, Lo: lo}
}

// ID returns the id of the open shard at index i (as Lookup numbers them).
func (m *Map) ID(i int) string { return m.shards[i].ID }

// Mid returns the middle of a shard's range, floor((Start+End)/2): a hash key
// that stays inside the shard whatever its width, as far as it can be from
// the shard's own edges.
func (s Shard) Mid() Hash {
	// Start + (End-Start)/2, in 128 bits without overflow.
	lo, borrow := bits.Sub64(s.End.Lo, s.Start.Lo, 0)
	hi, _ := bits.Sub64(s.End.Hi, s.Start.Hi, borrow)
	lo = lo>>1 | hi<<63
	hi >>= 1
	lo, carry := bits.Add64(s.Start.Lo, lo, 0)
	hi, _ = bits.Add64(s.Start.Hi, hi, carry)
	return Hash{Hi: hi, Lo: lo}
}

// At returns the open shard at index i (as Lookup numbers them).
func (m *Map) At(i int) Shard { return m.shards[i] }
