package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrylabs/ferry/mapping"
	"github.com/ferrylabs/ferry/offsets"
)

// maxPollRecords bounds one poll; the byte budget is enforced between polls.
const maxPollRecords = 10_000

// pollLoop fetches and dispatches until ctx ends or a fatal error. Under
// BlockRebalanceOnPoll, rebalance callbacks run only between
// AllowRebalance and the next poll, so every record handed out by a poll is
// tracked before its partition can be revoked.
func (c *Connector) pollLoop(ctx context.Context) {
	for {
		if !c.waitForBuffer(ctx) {
			return
		}
		c.resumeDrained()
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if c.hotPaused.Load() > 0 {
			// A paused partition is resumed between polls: do not block
			// in a poll for longer than that check should wait.
			pollCtx, cancel = context.WithTimeout(ctx, 250*time.Millisecond)
		}
		fetches := c.cl.PollRecords(pollCtx, maxPollRecords)
		cancel()
		if fetches.IsClientClosed() || ctx.Err() != nil {
			// Records of this poll are not tracked, so not committed:
			// whoever owns the partitions next reads them again.
			c.cl.AllowRebalance()
			return
		}
		if gen := c.generation(); gen > 0 {
			c.joined.Store(true)
		}
		var err error
		fetches.EachError(func(topic string, p int32, ferr error) {
			if errors.Is(ferr, context.DeadlineExceeded) {
				return // our short poll ended
			}
			if e := c.onFetchError(ctx, topic, p, ferr); e != nil && err == nil {
				err = e
			}
		})
		if err == nil && c.dec != nil {
			// Before any record of the poll is dispatched, so that decoding
			// does no I/O and a registry outage holds the whole poll back.
			if err = c.dec.prefetch(ctx, fetches); ctx.Err() != nil {
				c.cl.AllowRebalance()
				return
			}
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if err != nil {
					break
				}
				if err = c.dispatch(ctx, r); errors.Is(err, errResync) {
					err = nil
					break
				}
			}
			if p := c.lookup(fp.Topic, fp.Partition); p != nil {
				if len(fp.Records) > 0 {
					c.pauseIfHot(p)
				}
				end := fp.HighWatermark
				if c.cfg.Kafka.IsolationLevel == "read_committed" {
					end = fp.LastStableOffset
				}
				if end >= 0 {
					p.end.Store(end)
				}
			}
		})
		c.cl.AllowRebalance()
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				// Stopped while a templated stream was being looked up:
				// that record and the rest of the poll are not tracked.
				return
			}
			c.fail(err)
			return
		}
	}
}

func (c *Connector) generation() int32 {
	_, gen := c.cl.GroupMetadata()
	return gen
}

// onFetchError handles a partition's fetch error. Only an out-of-range
// offset needs ferry: everything else franz-go retries by itself.
func (c *Connector) onFetchError(ctx context.Context, topic string, p int32, err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if errors.Is(err, kerr.OffsetOutOfRange) {
		return c.offsetOutOfRange(ctx, topic, p)
	}
	var loss *kgo.ErrDataLoss
	if errors.As(err, &loss) {
		c.log.Error("kafka reported data loss: offsets were reset", "topic", topic, "partition", p, "error", err.Error())
		return nil
	}
	c.log.Warn("fetch error (the client retries)", "topic", topic, "partition", p, "error", err.Error())
	return nil
}

// offsetOutOfRange applies kafka.on_offset_lost to a partition whose next
// offset no longer exists: retention (or DeleteRecords) removed records that
// were never delivered. It runs in the poll loop, before AllowRebalance, as
// SetOffsets requires.
func (c *Connector) offsetOutOfRange(ctx context.Context, topic string, p int32) error {
	adm := kadm.NewClient(c.cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fatalf("offset out of range on %s/%d, and listing its start offset failed: %w", topic, p, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fatalf("offset out of range on %s/%d, and listing its end offset failed: %w", topic, p, err)
	}
	start, _ := starts.Lookup(topic, p)
	end, _ := ends.Lookup(topic, p)
	part := c.lookup(topic, p)
	from := c.commitPoint(ctx, adm, part, topic, p)
	policy := c.cfg.Kafka.OnOffsetLost
	if policy == "fail" {
		return fatalf("kafka %s/%d: offset %d is out of range [%d, %d): retention deleted records before ferry delivered them "+
			"(kafka.on_offset_lost: fail; set earliest or latest to skip them)", topic, p, from, start.Offset, end.Offset)
	}
	to := start.Offset
	if policy == "latest" {
		to = end.Offset
	}
	// SetOffsets marks `to` for commit at once. The records ferry still
	// holds of the partition all lie below it (the fetch position was below
	// the log start), so they go with the old tracker: dropped, their
	// memory released, and no late acknowledgement marks an offset below
	// `to` again (that mark would sort above `to`'s epoch -1 and move the
	// commit back).
	if part != nil {
		c.restartPartition(part, to)
	}
	lost := max(to-from, 0)
	c.m.offsetsLost.WithLabelValues(topic).Add(float64(lost))
	c.log.Error("kafka records were deleted before ferry delivered them: skipping ahead",
		"topic", topic, "partition", p, "from", from, "to", to, "skipped_offsets", lost, "policy", policy)
	c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: {p: {Epoch: -1, Offset: to}}})
	return nil
}

// commitPoint is where the partition's commit stands: one past the records
// delivered without a gap, the first record fetched when none was released
// yet, or the group's committed offset when nothing was fetched (a tracker
// with records has one of the first two). Everything from there on that ferry
// has not delivered is what a skip loses.
func (c *Connector) commitPoint(ctx context.Context, adm *kadm.Client, part *partition, topic string, p int32) int64 {
	if part != nil {
		if m, ok := part.tracker.Committable(); ok {
			return m.Offset
		}
		if o, _, ok := part.tracker.Oldest(); ok {
			return o // nothing released yet in this assignment
		}
	}
	offs, err := adm.FetchOffsets(ctx, c.cfg.Kafka.Group)
	if err == nil {
		if o, ok := offs.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
			return o.At
		}
	}
	return -1
}

// restartPartition gives an assigned partition a new tracker, for a
// position that moved under ferry (a skip past deleted records, a log
// truncation). The old partition is revoked at once: the batchers drop its
// queued records and release their bytes, and acknowledgements of its
// records in flight release their bytes but mark nothing. It returns the
// new partition, which a bounded run takes to start at from (-1: where the
// old one started): a bound below a skip must not mark the commit back.
// Only the poll loop calls it.
func (c *Connector) restartPartition(old *partition, from int64) *partition {
	np := &partition{topic: old.topic, id: old.id, tracker: offsets.NewTracker(), bound: old.bound, boundAt: max(old.boundAt, from)}
	c.mu.Lock()
	c.parts[topicPartition{old.topic, old.id}] = np
	c.mu.Unlock()
	old.stopping.Store(true)
	old.revoked.Store(true)
	old.mu.Lock()
	old.tracker.Revoke()
	old.mu.Unlock()
	if old.paused.Load() {
		c.unpause(old)
		c.pauseMu.Lock()
		if !c.paused {
			c.cl.ResumeFetchPartitions(map[string][]int32{old.topic: {old.id}})
		}
		c.pauseMu.Unlock()
	}
	for _, b := range c.allBatchers() {
		b.signal() // let them drop its queued records now
	}
	return np
}

// dispatch tracks one record and hands it to its stream's batcher.
func (c *Connector) dispatch(ctx context.Context, r *kgo.Record) error {
	p := c.lookup(r.Topic, r.Partition)
	if p == nil {
		// A record of a partition we no longer own (revoked or lost while
		// it sat in franz-go's buffer). Not tracking it is safe: only an
		// assignment's own tracker marks commits, and a later assignment
		// fetches from the committed offset, at or below this record.
		c.log.Debug("ignoring a record of a partition not assigned here",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		return nil
	}
	if p.bound != nil && c.pastBound(p, r) {
		return nil // a bounded run's partition at its end: not sent, not tracked
	}
	if r.Attrs.IsControl() {
		// A transaction marker: nothing to deliver, but its offset must be
		// passed by the commit like any delivered record's.
		e, err := c.trackBare(p, r)
		if err != nil {
			return err
		}
		c.complete(e.part, []*entry{e})
		return nil
	}
	// Every record counts, whatever becomes of it (sent, filtered, skipped,
	// dead-lettered), so that the policies' counters add up to this one.
	if p.consumed == nil { // the label lookup costs more than the rest of the count
		p.consumed = c.m.consumed.WithLabelValues(r.Topic)
	}
	p.consumed.Inc()
	c.hdrs = mappingRecord(&c.rec, r, c.hdrs)
	if c.dec != nil {
		if done, err := c.decodeRecord(p, r); done {
			return err
		}
	}
	// With no buffer to append to, the payload comes back in memory of its
	// own length: the value franz-go hands out is a slice of the whole
	// decompressed batch (or fetch response), and a record that waits
	// behind its key, in a retry backoff or in flight would keep all of it
	// alive, outside the byte budget, which counts only the record.
	var rnd uint64
	if c.mapper.UsesRandom() {
		rnd = rand.Uint64()
	}
	t, err := c.mapper.MapTo(nil, &c.rec, c.keys, rnd)
	switch {
	case err != nil:
		return c.unmapped(p, r, err)
	case t.Dropped != "":
		// Filtered: delivered as far as the commit is concerned.
		e, err := c.trackBare(p, r)
		if err != nil {
			return err
		}
		c.m.filtered.WithLabelValues(r.Topic, t.Dropped).Inc()
		c.complete(e.part, []*entry{e})
		return nil
	}
	b := c.batchers[t.Stream]
	if b == nil {
		if b, err = c.openStream(ctx, t.Stream); err != nil {
			return c.noStream(p, r, t.Stream, err)
		}
	}
	size := t.Size()
	ts := c.rec.Timestamp
	if p, err = c.track(p, r, int64(size)+recordOverhead); err != nil {
		return err
	}
	c.addBuffered(int64(size) + recordOverhead)
	e := c.newEntry()
	*e = entry{part: p, offset: r.Offset, key: t.PartitionKey, data: t.Data[:len(t.Data):len(t.Data)], size: size,
		ts: ts, tsType: int8(c.rec.TimestampType), pin: t.PinPartition}
	if r.Value == nil && !c.tombstone(r, e) {
		return nil
	}
	if size > b.maxRecord {
		return c.invalid(r, e, fmt.Sprintf("record is %d bytes (data plus partition key), over the limit of %d bytes "+
			"(the smaller of delivery.max_record_bytes and the stream's MaxRecordSizeInKiB)", size, b.maxRecord))
	}
	b.add(e)
	return nil
}

// unmapped handles a record that maps to nothing: one without a partition
// key follows its route's on_missing policy; any other error (no route)
// stops ferry.
func (c *Connector) unmapped(p *partition, r *kgo.Record, err error) error {
	var missing *mapping.MissingKeyError
	if errors.As(err, &missing) {
		return c.noKey(p, r, missing)
	}
	if errors.Is(err, mapping.ErrInvalidStream) {
		return c.noStream(p, r, "", err)
	}
	return fatalf("record %s/%d@%d: %w (add a route for this topic)", r.Topic, r.Partition, r.Offset, err)
}

// noKey applies a route's on_missing policy to a record whose partition key
// source yielded nothing: stop (fail), count it and pass it (skip), or
// dead-letter it (dlq); it counts as delivered in the last two.
func (c *Connector) noKey(p *partition, r *kgo.Record, missing *mapping.MissingKeyError) error {
	policy := missing.Policy.String()
	if missing.Policy == mapping.MissingFail {
		return fatalf("record %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, missing)
	}
	e, err := c.trackBare(p, r)
	if err != nil {
		return err
	}
	c.m.missingKey.WithLabelValues(r.Topic, policy).Inc()
	if missing.Policy == mapping.MissingDLQ {
		c.deadLetter(r, e, "missing_partition_key", missing.Error())
		return nil
	}
	c.log.Debug("skipping a record without a partition key (on_missing: skip)",
		"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "source", missing.Source)
	c.complete(e.part, []*entry{e})
	return nil
}

// trackBare tracks a record that sends nothing (a transaction marker, a
// filtered record, one without a key) and counts it in the budget, so that
// completing it releases what it holds like any record's.
func (c *Connector) trackBare(p *partition, r *kgo.Record) (*entry, error) {
	e := &entry{offset: r.Offset}
	p, err := c.track(p, r, e.held())
	if err != nil {
		return nil, err
	}
	e.part = p
	c.addBuffered(e.held())
	return e, nil
}

// mappingRecord fills rec from r for the mapper, reusing hdrs for its
// headers, and returns hdrs.
func mappingRecord(rec *mapping.Record, r *kgo.Record, hdrs []mapping.Header) []mapping.Header {
	hdrs = hdrs[:0]
	for _, h := range r.Headers {
		hdrs = append(hdrs, mapping.Header{Key: h.Key, Value: h.Value})
	}
	*rec = mapping.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Timestamp: r.Timestamp.UnixMilli(), TimestampType: mapping.TimestampType(r.Attrs.TimestampType()), Headers: hdrs}
	return hdrs
}

// errResync reports that dispatch moved a partition's fetch position: the
// rest of that partition's records in the poll are stale, and come again.
var errResync = errors.New("partition position reset")

// track registers r with its partition's tracker. A record at or below one
// already tracked means the log was truncated under ferry (an unclean leader
// election: franz-go found that the leader's log ends below its position,
// and fetched from there): the partition starts over at r with a new
// tracker, its commit moved back to r, and track returns errResync.
func (c *Connector) track(p *partition, r *kgo.Record, held int64) (*partition, error) {
	err := p.tracker.TrackTimed(r.Offset, r.LeaderEpoch, held, r.Timestamp.UnixMilli())
	if err == nil {
		p.tracked(r.Offset, r.Timestamp.UnixMilli())
	}
	if errors.Is(err, offsets.ErrOutOfOrder) {
		last := p.tracker.Last()
		c.restartPartition(p, -1)
		c.m.truncations.WithLabelValues(r.Topic).Inc()
		c.log.Error("kafka log truncated below records ferry had fetched (an unclean leader election?): "+
			"the partition starts over at the new position; the records above it still held are dropped, and the commit moves back to it",
			"topic", r.Topic, "partition", r.Partition, "last_fetched", last, "new_offset", r.Offset, "leader_epoch", r.LeaderEpoch)
		// The old marks may stand above the new position, and a mark
		// never moves back by itself: SetOffsets sets both the commit and
		// the fetch position to r, which the new tracker then reads from.
		c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{r.Topic: {r.Partition: {Epoch: -1, Offset: r.Offset}}})
		return nil, errResync
	}
	if err != nil {
		return p, fatalf("track %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return p, nil
}

// entrySlab is how many entries dispatch allocates at once. A slab lives
// while any of its entries does; entries that wait (parked, re-sent later)
// move out of it (entry.detach), so a slab is held only by records queued
// or in flight, which leave in fetch order.
const entrySlab = 128

// recordOverhead is what ferry holds for each record besides its value and
// partition key: its entry, its tracker slot, its place in the queues. It
// counts against delivery.buffer_bytes with the record, so that the budget
// bounds what ferry holds even for tiny records.
const recordOverhead = 192

// held is what e counts against the byte budget.
func (e *entry) held() int64 { return int64(e.size) + recordOverhead }

// detach returns a copy of e in memory of its own, for an entry that is
// about to wait (behind its key, or for a re-send): left in its slab, it
// would keep the whole slab alive. e no longer holds the value.
func (e *entry) detach() *entry {
	ne := new(entry)
	*ne = *e
	e.data = nil
	return ne
}

// newEntry hands out entries from a slab, so that dispatch allocates once
// per entrySlab records instead of once per record. A slab stays reachable
// while any of its entries is; complete and drop clear an entry's data, so
// that a long-lived entry pins only the slab's small structs, never the
// Kafka record bytes of its neighbours. Only the poll loop calls it.
func (c *Connector) newEntry() *entry {
	if len(c.slab) == 0 {
		c.slab = make([]entry, entrySlab)
	}
	e := &c.slab[0]
	c.slab = c.slab[1:]
	return e
}

func (c *Connector) lookup(topic string, id int32) *partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parts[topicPartition{topic, id}]
}

// complete acknowledges delivered entries of one partition and marks the new
// committable offset, if any, for the next commit.
func (c *Connector) complete(p *partition, es []*entry) {
	p.mu.Lock()
	var (
		mark     offsets.Mark
		advanced bool
		released int64
	)
	for _, e := range es {
		if p.tracker.Done(e.offset, func(m offsets.Mark) { mark, advanced = m, true }) {
			released += e.held()
		}
		e.data = nil // see newEntry
	}
	// Done runs its callback only while the tracker is not revoked, and
	// Revoke takes p.mu too: a revoked partition is never marked.
	if advanced {
		p.marked(mark.Offset)
		c.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{
			p.topic: {p.id: {Epoch: mark.Epoch, Offset: mark.Offset}},
		})
	}
	p.mu.Unlock()
	c.release(released)
}

// drop forgets entries that will not be delivered here (their partition was
// revoked or lost, or the pipeline is stopping): their memory is released,
// their offsets stay uncommitted.
func (c *Connector) drop(es []*entry) {
	var n int64
	for _, e := range es {
		n += e.held()
		e.data = nil // see newEntry
	}
	c.release(n)
}

func (c *Connector) addBuffered(n int64) {
	c.m.buffered.Set(float64(c.buffered.Add(n)))
}

func (c *Connector) release(n int64) {
	if n == 0 {
		return
	}
	c.m.buffered.Set(float64(c.buffered.Add(-n)))
	select {
	case c.drained <- struct{}{}:
	default:
	}
}

// waitForBuffer blocks while buffered bytes are at the limit. Fetching of
// every assigned partition is paused meanwhile, so franz-go stops filling
// its own buffers too; the pause is lifted once the buffer is down to three
// quarters. It reports false when ctx ended.
//
// Bytes held by partitions paused on their own (pauseIfHot) count against
// the low-water mark only: those partitions fetch nothing more, so they
// cannot grow, and waiting for them to drain would let one hot shard stall
// every partition. The budget itself is a hard cap: everything buffered
// stays under it, plus at most one poll.
func (c *Connector) waitForBuffer(ctx context.Context) bool {
	limit := int64(c.cfg.Delivery.BufferBytes)
	over := func(max int64) bool {
		total := c.buffered.Load()
		return total >= limit || total-c.hotBytes() > max
	}
	if !over(limit - 1) {
		return ctx.Err() == nil
	}
	c.setPaused(true)
	defer c.setPaused(false)
	c.log.Debug("buffer full: fetching paused", "buffered_bytes", c.buffered.Load(), "limit", limit)
	low := limit * 3 / 4
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for over(low) {
		c.resumeDrained()
		select {
		case <-ctx.Done():
			return false
		case <-c.drained:
		case <-tick.C:
		}
	}
	return true
}

// hotBudget is how many undelivered bytes one partition may hold before it
// alone is paused: twice its share of the byte budget, but at most half the
// budget, so that one hot partition is paused before it can fill the whole
// budget and stall the others.
func (c *Connector) hotBudget() int64 {
	c.mu.Lock()
	n := len(c.parts)
	c.mu.Unlock()
	total := int64(c.cfg.Delivery.BufferBytes)
	return max(min(total*2/int64(max(n, 1)), total/2), 1)
}

// pauseIfHot pauses one partition whose records pile up undelivered: they
// wait for a hot or throttled shard (or for their keys, under ordering
// "key"). Only that partition stops fetching; the others go on, instead of
// everything stalling on the global budget.
func (c *Connector) pauseIfHot(p *partition) {
	if p.paused.Load() {
		return
	}
	topic, id := p.topic, p.id
	if _, bytes := p.tracker.Pending(); bytes > c.hotBudget() {
		p.paused.Store(true)
		c.hotPaused.Add(1)
		c.m.pausedPartitions.Inc()
		c.cl.PauseFetchPartitions(map[string][]int32{topic: {id}})
		c.log.Debug("partition paused: its records wait for delivery", "topic", topic, "partition", id, "pending_bytes", bytes)
	}
}

// hotBytes is what the partitions paused by pauseIfHot hold undelivered.
func (c *Connector) hotBytes() int64 {
	if c.hotPaused.Load() == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, p := range c.parts {
		if p.paused.Load() {
			_, b := p.tracker.Pending()
			n += b
		}
	}
	return n
}

// resumeDrained resumes the partitions paused by pauseIfHot once half of
// their backlog is delivered.
func (c *Connector) resumeDrained() {
	if c.hotPaused.Load() == 0 {
		return
	}
	budget := c.hotBudget()
	c.mu.Lock()
	var resume []*partition
	for _, p := range c.parts {
		if p.paused.Load() {
			if _, bytes := p.tracker.Pending(); bytes <= budget/2 {
				resume = append(resume, p)
			}
		}
	}
	c.mu.Unlock()
	for _, p := range resume {
		c.unpause(p)
		c.pauseMu.Lock()
		if !c.paused && !p.held.Load() {
			c.cl.ResumeFetchPartitions(map[string][]int32{p.topic: {p.id}})
		}
		c.pauseMu.Unlock()
	}
}

func (c *Connector) unpause(p *partition) {
	if p.paused.CompareAndSwap(true, false) {
		c.hotPaused.Add(-1)
		c.m.pausedPartitions.Dec()
	}
}

// setPaused pauses or resumes every assigned partition. franz-go keeps a
// paused partition paused across rebalances, so the assignment callbacks
// consult c.paused too (see onAssigned and onRevoked).
func (c *Connector) setPaused(paused bool) {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	c.paused = paused
	assigned := c.assigned()
	if paused {
		c.m.paused.Set(1)
		if len(assigned) > 0 {
			c.cl.PauseFetchPartitions(assigned)
		}
		return
	}
	c.m.paused.Set(0)
	if all := c.cl.PauseFetchPartitions(nil); len(all) > 0 {
		// Keep the partitions paused on their own (pauseIfHot) paused.
		for topic, ps := range all {
			kept := ps[:0]
			for _, id := range ps {
				if p := c.lookup(topic, id); p == nil || !p.paused.Load() && !p.held.Load() {
					kept = append(kept, id)
				}
			}
			all[topic] = kept
		}
		c.cl.ResumeFetchPartitions(all)
	}
}

func (c *Connector) assigned() map[string][]int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]int32)
	for tp := range c.parts {
		out[tp.topic] = append(out[tp.topic], tp.partition)
	}
	return out
}

// onAssigned gives every newly assigned partition a fresh tracker.
func (c *Connector) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	c.joined.Store(true)
	var bounds map[topicPartition]assignedBound
	if c.bound != nil {
		bounds = c.captureBounds(ctx, cl, assigned)
	}
	c.mu.Lock()
	for topic, ps := range assigned {
		for _, id := range ps {
			tp := topicPartition{topic, id}
			b := bounds[tp]
			c.parts[tp] = &partition{topic: topic, id: id, tracker: offsets.NewTracker(), bound: b.bp, boundAt: b.at}
		}
	}
	c.mu.Unlock()
	c.pauseMu.Lock()
	if c.paused {
		cl.PauseFetchPartitions(assigned)
	} else {
		cl.ResumeFetchPartitions(assigned) // clear a pause left from an earlier assignment
	}
	c.pauseMu.Unlock()
	c.log.Info("partitions assigned", "partitions", assigned)
}

// onRevoked runs when partitions move to another member (and for all
// partitions when leaving the group). It stops dispatching them, waits a
// bounded time (delivery.drain_timeout) for their in-flight requests and for
// the holes below them, revokes their trackers so no late acknowledgement
// can mark them, and commits what was delivered.
//
// The queued records above the highest one sent are dropped: the next owner
// reads them from the commit, so they are not duplicated. The holes below it
// (records held behind their key, failed entries waiting for a re-send) are
// delivered before the commit; dropping them would leave the commit at the
// first hole and make the next owner re-send everything delivered above it.
func (c *Connector) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	parts := c.detach(revoked)
	if len(parts) == 0 {
		return
	}
	c.waitInflight(parts, c.cfg.Delivery.DrainTimeout)
	for _, p := range parts {
		p.revoked.Store(true)
		p.mu.Lock()
		p.tracker.Revoke()
		p.mu.Unlock()
	}
	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	c.commit(commitCtx, "revoke")
	cl.ResumeFetchPartitions(revoked) // do not leave a stale pause behind
	c.log.Info("partitions revoked", "partitions", revoked)
}

// onLost runs when the group session is lost: another member may already own
// the partitions, so nothing is committed.
func (c *Connector) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	parts := c.detach(lost)
	for _, p := range parts {
		p.revoked.Store(true)
		p.mu.Lock()
		p.tracker.Revoke()
		p.mu.Unlock()
	}
	cl.ResumeFetchPartitions(lost)
	c.log.Warn("partitions lost: not committing them", "partitions", lost)
}

// onBlocked runs when a rebalance waits for our poll loop. AllowRebalance
// follows each poll's dispatch, which is quick unless it looks up a new
// templated stream (DescribeStreamSummary) or fetches a new schema (up to
// decode.registry.timeout); cut lingering short so revoked partitions drain
// quickly.
func (c *Connector) onBlocked(context.Context, *kgo.Client) {
	for _, b := range c.allBatchers() {
		b.hurry()
	}
}

// detach removes partitions from the live set and stops their dispatch.
func (c *Connector) detach(tps map[string][]int32) []*partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*partition
	for topic, ps := range tps {
		for _, id := range ps {
			tp := topicPartition{topic, id}
			if p := c.parts[tp]; p != nil {
				p.stopping.Store(true)
				if p.paused.CompareAndSwap(true, false) {
					c.hotPaused.Add(-1)
					c.m.pausedPartitions.Dec()
				}
				delete(c.parts, tp)
				out = append(out, p)
			}
		}
	}
	return out
}

// waitInflight waits until every partition of parts is drained (see
// partition.drained), or timeout. Once sending has stopped (shutdown past
// its deadline, a fatal error) it waits only for the requests in flight:
// the holes will not be delivered any more.
func (c *Connector) waitInflight(parts []*partition, timeout time.Duration) {
	for _, b := range c.allBatchers() {
		b.hurry()
	}
	deadline := time.Now().Add(timeout)
	for {
		busy := 0
		for _, p := range parts {
			if !p.drained(c.sendingStopped.Load()) {
				busy++
			}
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.log.Warn("revoke drain timeout: in-flight records will be re-read by the next owner",
				"partitions_busy", busy, "timeout", timeout.String())
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// commit synchronously commits every marked offset.
func (c *Connector) commit(ctx context.Context, why string) {
	marked := c.cl.MarkedOffsets()
	if err := c.cl.CommitMarkedOffsets(ctx); err != nil {
		c.m.commitErrors.Inc()
		c.log.Warn("offset commit failed", "reason", why, "error", err.Error())
		return
	}
	for topic, ps := range c.cl.CommittedOffsets() {
		for p, eo := range ps {
			c.m.setCommitted(topic, p, eo.Offset)
			if part := c.lookup(topic, p); part != nil {
				part.committedAt(eo.Offset)
			}
		}
	}
	if c.log.Enabled(ctx, slog.LevelDebug) && len(marked) > 0 {
		member, gen := c.cl.GroupMetadata()
		c.log.Debug("offsets committed", "reason", why, "member", member, "generation", gen,
			"offsets", formatOffsets(marked))
	}
}

// formatOffsets renders offsets as {"topic/partition": offset}, the form
// the commit log lines use (the integration tests read them).
func formatOffsets(offs map[string]map[int32]kgo.EpochOffset) map[string]int64 {
	out := make(map[string]int64)
	for t, ps := range offs {
		for p, eo := range ps {
			out[t+"/"+strconv.Itoa(int(p))] = eo.Offset
		}
	}
	return out
}

// onCommit observes autocommits.
func (c *Connector) onCommit(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			c.m.commitErrors.Inc()
			c.log.Warn("autocommit failed", "error", err.Error())
		}
		return
	}
	done := make(map[string]map[int32]kgo.EpochOffset)
	defer func() {
		if len(done) > 0 && c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("offsets committed", "reason", "autocommit", "member", req.MemberID,
				"generation", req.Generation, "offsets", formatOffsets(done))
		}
	}()
	for i, t := range resp.Topics {
		for j, p := range t.Partitions {
			if kerr.ErrorForCode(p.ErrorCode) != nil {
				c.m.commitErrors.Inc()
				c.log.Warn("autocommit partition failed", "topic", t.Topic, "partition", p.Partition,
					"error", kerr.ErrorForCode(p.ErrorCode).Error())
				continue
			}
			if i < len(req.Topics) && j < len(req.Topics[i].Partitions) {
				off := req.Topics[i].Partitions[j].Offset
				c.m.setCommitted(t.Topic, p.Partition, off)
				if part := c.lookup(t.Topic, p.Partition); part != nil {
					part.committedAt(off)
				}
				if done[t.Topic] == nil {
					done[t.Topic] = make(map[int32]kgo.EpochOffset)
				}
				done[t.Topic][p.Partition] = kgo.EpochOffset{Offset: off}
			}
		}
	}
}
