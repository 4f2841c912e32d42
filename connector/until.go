package connector

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// UntilKind is what bounds a run.
type UntilKind int

// The kinds of bound: none (run until stopped), the end offsets, a time.
const (
	UntilNone UntilKind = iota
	UntilEnd
	UntilTime
)

// Until bounds a run (ferry run --until). Every partition is bounded by its
// end offset (the last stable offset under read_committed), captured when
// the partition is first assigned here; UntilTime also stops a partition at
// its first record timestamped at or after Time, if that comes first.
type Until struct {
	Kind UntilKind
	Time time.Time // UntilTime only
}

// untilTimestamp prefixes a point in time, as in kafka.start.
const untilTimestamp = "timestamp:"

// ParseUntil parses the value of --until: "end" or "timestamp:" followed by
// an RFC 3339 time.
func ParseUntil(s string) (Until, error) {
	if s == "end" {
		return Until{Kind: UntilEnd}, nil
	}
	v, ok := strings.CutPrefix(s, untilTimestamp)
	if !ok {
		return Until{}, fmt.Errorf("want end or timestamp:RFC3339 (e.g. timestamp:2026-06-01T00:00:00Z)")
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return Until{}, fmt.Errorf("%q is not an RFC 3339 time (e.g. 2026-06-01T00:00:00Z)", v)
	}
	return Until{Kind: UntilTime, Time: t}, nil
}

// String is the --until form of u ("" when unbounded).
func (u Until) String() string {
	switch u.Kind {
	case UntilEnd:
		return "end"
	case UntilTime:
		return untilTimestamp + u.Time.Format(time.RFC3339Nano)
	}
	return ""
}

// WithUntil bounds the run: Run returns nil once the bound is reached (see
// Until and the README's "Bounded runs").
func WithUntil(u Until) Opt { return optFunc(func(o *options) { o.until = u }) }

// TopicProgress is a bounded run's progress on one topic, over the
// partitions this instance was assigned. Records counts offsets (markers and
// compacted gaps included), so that Records reaches Total at the end.
type TopicProgress struct {
	Topic      string
	Partitions int
	Records    int64 // offsets delivered (or passed) since each partition's start position
	Total      int64 // offsets from each partition's start position to its bound
	Bytes      int64 // keys and values read from Kafka below the bound
}

// Progress is a bounded run's progress.
type Progress struct {
	Until    Until
	Elapsed  time.Duration
	Complete bool // the exit rule held: every partition reached its bound
	Topics   []TopicProgress
}

// Sum adds up the topics.
func (p Progress) Sum() TopicProgress {
	var s TopicProgress
	for _, t := range p.Topics {
		s.Partitions += t.Partitions
		s.Records += t.Records
		s.Total += t.Total
		s.Bytes += t.Bytes
	}
	return s
}

// bounded is a bounded run's state. The poll loop writes stops (boundPart
// atomics), onAssigned captures bounds, and watchUntil (one goroutine) does
// the rest; mu guards the maps and the progress fields.
type bounded struct {
	u       Until
	afterMs int64 // u.Time rounded up to a millisecond, as Kafka's timestamps are
	started time.Time

	mu    sync.Mutex
	parts map[topicPartition]*boundPart
	// snapshot is what the group as a whole must reach before this
	// instance leaves (see groupReached), listed before this instance
	// captured any bound of its own; starts is where a partition without
	// a commit begins.
	snapshot, starts map[topicPartition]int64
	complete         atomic.Bool
}

// boundPart is one partition's bound, captured at its first assignment
// here and kept for later assignments.
type boundPart struct {
	bound int64
	// stopAt is -1 until dispatch meets a record at or past the bound
	// (offset >= bound, or timestamp >= Until.Time): then the offset the
	// commit stops at. Only the poll loop writes it.
	stopAt    atomic.Int64
	stopEpoch atomic.Int32
	bytes     atomic.Int64

	// Under bounded.mu:
	owner *partition // the current assignment, once watchUntil saw it; nil when not assigned here
	start int64      // the position the current assignment started at
	at    int64      // the group's position as known here: committed, or the start before any commit
	pos   int64      // the furthest of at and the delivered position
	base  int64      // offsets done in earlier assignments here
	span  int64      // offsets to do in earlier assignments here
}

// target is where the partition's commit must get to.
func (bp *boundPart) target() int64 {
	if s := bp.stopAt.Load(); s >= 0 {
		return s
	}
	return bp.bound
}

func newBounded(u Until) *bounded {
	ms := u.Time.UnixMilli()
	if u.Time.After(time.UnixMilli(ms)) {
		ms++ // a record of that millisecond is still before u.Time
	}
	return &bounded{u: u, afterMs: ms, started: time.Now(), parts: make(map[topicPartition]*boundPart)}
}

// pastBound reports whether r lies at or past its partition's bound; the
// first such record stops the partition: it is not sent, nor is anything
// after it, and the commit stops at the bound (or, for a timestamp, at
// that record). Stopping on the first record past the bound, instead of
// on the last record below it, is what makes the run end on the consumer
// position: the records just below the bound may be compacted away or be
// aborted, and the bound itself may be a marker's offset or the start of
// an open transaction. Only the poll loop calls it.
func (c *Connector) pastBound(p *partition, r *kgo.Record) bool {
	b := p.bound
	if s := b.stopAt.Load(); s >= 0 {
		if r.Offset >= s {
			p.boundHit.Store(true)
			return true
		}
		return false // an earlier assignment stopped before delivering these
	}
	switch {
	case r.Offset >= b.bound:
		b.stopEpoch.Store(r.LeaderEpoch)
		b.stopAt.Store(b.bound)
	case c.bound.u.Kind == UntilTime && !r.Attrs.IsControl() && !r.Timestamp.Before(c.bound.u.Time):
		b.stopEpoch.Store(r.LeaderEpoch)
		b.stopAt.Store(r.Offset)
	default:
		if !r.Attrs.IsControl() {
			b.bytes.Add(int64(len(r.Key) + len(r.Value)))
		}
		return false
	}
	p.boundHit.Store(true)
	c.log.Info("partition reached its bound", "topic", r.Topic, "partition", r.Partition,
		"stop_offset", b.stopAt.Load(), "record_offset", r.Offset, "record_timestamp", r.Timestamp.UTC().Format(time.RFC3339Nano))
	return true
}

// hold pauses p for good: it reached its bound. Under pauseMu, as every
// resume is, so that none can slip in between the flag and the pause.
func (c *Connector) hold(p *partition) {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	if p.held.CompareAndSwap(false, true) {
		c.cl.PauseFetchPartitions(map[string][]int32{p.topic: {p.id}})
	}
}

// captureBounds gives every newly assigned partition its bound (listed now
// if it is assigned here for the first time) and its start position. It runs
// in onAssigned, before any of their records is fetched. A failure stops
// ferry: a bounded run cannot tell when it is done without its bounds.
func (c *Connector) captureBounds(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) map[topicPartition]assignedBound {
	b := c.bound
	adm := kadm.NewClient(cl)
	if err := c.takeSnapshot(ctx, adm); err != nil {
		c.fail(fatalf("bounded run: %w", err))
		return nil
	}
	var fresh []string
	b.mu.Lock()
	for topic, ps := range assigned {
		for _, id := range ps {
			if b.parts[topicPartition{topic, id}] == nil {
				fresh = append(fresh, topic)
				break
			}
		}
	}
	b.mu.Unlock()
	var bounds, starts map[topicPartition]int64
	if len(fresh) > 0 {
		var err error
		if bounds, starts, err = c.listBounds(ctx, adm, fresh); err != nil {
			c.fail(fatalf("bounded run: capture end offsets: %w", err))
			return nil
		}
	}
	committed, err := c.groupCommitted(ctx, adm)
	if err != nil {
		c.fail(fatalf("bounded run: fetch committed offsets: %w", err))
		return nil
	}
	out := make(map[topicPartition]assignedBound)
	b.mu.Lock()
	defer b.mu.Unlock()
	for topic, ps := range assigned {
		for _, id := range ps {
			tp := topicPartition{topic, id}
			bp := b.parts[tp]
			again := bp != nil // assigned here before: its first bound stands
			if bp == nil {
				bound, ok := bounds[tp]
				if !ok {
					c.fail(fatalf("bounded run: no end offset listed for %s/%d", topic, id))
					return nil
				}
				bp = &boundPart{bound: bound}
				bp.stopAt.Store(-1)
				b.parts[tp] = bp
				if _, ok := committed[tp]; !ok {
					committed[tp] = starts[tp]
				}
			}
			at, ok := committed[tp]
			if !ok {
				at = b.starts[tp] // listed with the snapshot
			}
			out[tp] = assignedBound{bp, at}
			c.log.Info("partition bound captured", "topic", topic, "partition", id, "bound", bp.bound,
				"start", at, "done", at >= bp.target(), "assigned_before", again)
		}
	}
	return out
}

// assignedBound is a partition's bound and where its assignment starts
// (the group's committed offset, or the start position without one).
type assignedBound struct {
	bp *boundPart
	at int64
}

// own starts counting an assignment. b.mu is held.
func (bp *boundPart) own(p *partition) {
	bp.fold()
	bp.owner = p
	bp.start, bp.at, bp.pos = p.boundAt, p.boundAt, p.boundAt
}

// fold credits the current assignment's progress to base when the
// partition leaves this instance. b.mu is held.
func (bp *boundPart) fold() {
	if bp.owner == nil {
		return
	}
	bp.base += bp.done()
	bp.span += bp.todo()
	bp.owner = nil
}

// done and todo are the current assignment's offsets delivered and to
// deliver. b.mu is held.
func (bp *boundPart) done() int64 {
	return min(max(bp.pos-bp.start, 0), bp.todo())
}

func (bp *boundPart) todo() int64 { return max(bp.target()-bp.start, 0) }

// takeSnapshot lists, once, the bound and start position of every
// partition of the subscribed topics, for the exit rule (groupReached).
func (c *Connector) takeSnapshot(ctx context.Context, adm *kadm.Client) error {
	b := c.bound
	b.mu.Lock()
	done := b.snapshot != nil
	b.mu.Unlock()
	if done {
		return nil
	}
	topics, err := consumedTopics(ctx, adm, c.cfg.Kafka)
	if err != nil {
		return err
	}
	bounds, starts, err := c.listBounds(ctx, adm, topics)
	if err != nil {
		return fmt.Errorf("list the end offsets of the subscribed topics: %w", err)
	}
	b.mu.Lock()
	b.snapshot, b.starts = bounds, starts
	b.mu.Unlock()
	return nil
}

// listBounds lists each partition's bound (its end offset, the last stable
// offset under read_committed, or for a timestamp the first offset at or
// after it when that is lower) and where a group without a commit starts
// reading it (kafka.start). It retries for up to 15 s.
func (c *Connector) listBounds(ctx context.Context, adm *kadm.Client, topics []string) (bounds, starts map[topicPartition]int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for attempt := 1; ; attempt++ {
		bounds, starts, err = c.listBoundsOnce(ctx, adm, topics)
		if err == nil || !sleepCtx(ctx, time.Duration(attempt)*200*time.Millisecond) {
			return bounds, starts, err
		}
	}
}

func (c *Connector) listBoundsOnce(ctx context.Context, adm *kadm.Client, topics []string) (bounds, starts map[topicPartition]int64, err error) {
	k := c.cfg.Kafka
	list := func(what string, f func() (kadm.ListedOffsets, error)) (map[topicPartition]int64, error) {
		l, err := f()
		if err == nil {
			err = l.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("list %s offsets: %w", what, err)
		}
		out := make(map[topicPartition]int64)
		l.Each(func(o kadm.ListedOffset) { out[topicPartition{o.Topic, o.Partition}] = o.Offset })
		return out, nil
	}
	ends, err := list("end", func() (kadm.ListedOffsets, error) { return listEnds(ctx, adm, k, topics) })
	if err != nil {
		return nil, nil, err
	}
	bounds = ends
	if c.bound.u.Kind == UntilTime {
		after, err := list("by-time", func() (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, c.bound.afterMs, topics...)
		})
		if err != nil {
			return nil, nil, err
		}
		bounds = make(map[topicPartition]int64, len(ends))
		for tp, end := range ends {
			if a, ok := after[tp]; ok && a >= 0 {
				end = min(end, a)
			}
			bounds[tp] = end
		}
	}
	switch at, byTime := k.StartTime(); {
	case k.Start == "latest":
		starts = ends
	case byTime:
		starts, err = list("by-time", func() (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topics...)
		})
	default:
		starts, err = list("start", func() (kadm.ListedOffsets, error) { return adm.ListStartOffsets(ctx, topics...) })
	}
	return bounds, starts, err
}

// groupCommitted is the group's committed offsets.
func (c *Connector) groupCommitted(ctx context.Context, adm *kadm.Client) (map[topicPartition]int64, error) {
	offs, err := fetchOffsets(ctx, adm, c.cfg.Kafka.Group)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return nil, err
	}
	out := make(map[topicPartition]int64)
	offs.Each(func(o kadm.OffsetResponse) {
		if o.At >= 0 {
			out[topicPartition{o.Topic, o.Partition}] = o.At
		}
	})
	return out, nil
}

// untilTick is how often watchUntil looks at the partitions; the group's
// offsets are fetched at most every groupCheckEvery, and only once this
// instance's own partitions are done.
const (
	untilTick       = 200 * time.Millisecond
	groupCheckEvery = time.Second
)

// watchUntil ends a bounded run: it marks the commit of each stopped
// partition at its stop offset, pauses the partitions that are done, and
// calls stop (which ends the poll loop, so that Run shuts down as on
// SIGTERM: flush, commit, leave the group) once the exit rule holds:
//
//  1. every partition assigned here has its committed offset at or past its
//     target (the stop offset, or the bound), and this instance joined the
//     group; and
//  2. every partition of the subscribed topics has, in the group's committed
//     offsets (or, without a commit, at its start position), reached the
//     bound listed before this instance captured any of its own.
//
// Rule 2 keeps an instance from leaving while a partition it could still be
// given is unfinished, e.g. one in transit between two members. It cannot
// deadlock: every member lists its snapshot before capturing its own bounds,
// so the member whose snapshot came first needs nothing beyond what the
// others' bounds cover, leaves, and hands its partitions on to be captured
// afresh.
func (c *Connector) watchUntil(ctx context.Context, stop func()) {
	tick := time.NewTicker(untilTick)
	defer tick.Stop()
	var lastCheck time.Time
	waitLogged := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !c.untilStep() || time.Since(lastCheck) < groupCheckEvery {
			continue
		}
		lastCheck = time.Now()
		ok, why, err := c.groupReached(ctx)
		if err != nil {
			c.log.Warn("bounded run: checking the group's offsets failed (retrying)", "error", err.Error())
			continue
		}
		if !ok {
			if !waitLogged {
				// Said once at info: a member can wait a while for the others.
				c.log.Info("bounded run: this instance's partitions are at their bounds; waiting for the group's commits",
					"waiting_for", why)
				waitLogged = true
			}
			c.log.Debug("bounded run: waiting for the group", "waiting_for", why)
			continue
		}
		c.bound.complete.Store(true)
		c.log.Info("bounded run complete: every partition reached its bound", "until", c.bound.u.String())
		stop()
		return
	}
}

// untilStep updates every assigned partition's progress, marks stopped
// partitions for commit and pauses finished ones. It reports whether every
// partition assigned here is done and the group was joined.
func (c *Connector) untilStep() bool {
	b := c.bound
	c.mu.Lock()
	live := make([]*partition, 0, len(c.parts))
	for _, p := range c.parts {
		live = append(live, p)
	}
	c.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	allDone := true
	current := make(map[*partition]bool, len(live))
	for _, p := range live {
		bp := p.bound
		if bp == nil {
			continue
		}
		current[p] = true
		if bp.owner != p {
			bp.own(p)
		}
		target := bp.target()
		if p.boundHit.Load() {
			c.markStop(p, target)
		}
		if committed := p.lag.committed.Load(); committed > bp.at {
			bp.at = committed
		}
		bp.pos = bp.at
		if m, ok := p.tracker.Committable(); ok && m.Offset > bp.pos {
			bp.pos = m.Offset
		}
		if bp.pos >= target || p.boundHit.Load() {
			c.hold(p) // nothing more of it is sent: stop fetching it
		}
		if bp.at < target {
			allDone = false
		}
	}
	for _, bp := range b.parts {
		if bp.owner != nil && !current[bp.owner] {
			bp.fold() // revoked or lost
		}
	}
	if allDone && len(live) == 0 {
		// A member with no partitions gets no assignment callback: it
		// has joined once it has a generation.
		if _, gen := c.cl.GroupMetadata(); gen <= 0 {
			return false
		}
	}
	return allDone
}

// markStop marks a stopped partition's commit at its target once every
// record tracked below it is delivered: all of them were fetched (the stop
// record came after them), so the offsets in between hold nothing to send
// (a compacted gap, aborted records, a marker, an open transaction).
func (c *Connector) markStop(p *partition, target int64) {
	if target <= p.boundAt {
		// Already there when assigned (say, a timestamp bound below an
		// earlier run's commit): a mark must never move the commit back.
		return
	}
	if n, _ := p.tracker.Pending(); n > 0 {
		return
	}
	if m, ok := p.tracker.Committable(); ok && m.Offset >= target {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// The same rule as complete: a revoked partition is never marked.
	if p.revoked.Load() || p.tracker.Revoked() {
		return
	}
	if m, ok := p.tracker.Committable(); ok && m.Offset >= target {
		return
	}
	if p.lag.committed.Load() >= target {
		return
	}
	c.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{
		p.topic: {p.id: {Epoch: p.bound.stopEpoch.Load(), Offset: target}},
	})
}

// groupReached checks rule 2 of watchUntil. It returns a partition still
// short of its bound, for the log, when not.
func (c *Connector) groupReached(ctx context.Context) (bool, string, error) {
	b := c.bound
	adm := kadm.NewClient(c.cl)
	if err := c.takeSnapshot(ctx, adm); err != nil {
		return false, "", err
	}
	committed, err := c.groupCommitted(ctx, adm)
	if err != nil {
		return false, "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for tp, bound := range b.snapshot {
		at, ok := committed[tp]
		if !ok {
			at = b.starts[tp]
		}
		if bp := b.parts[tp]; bp != nil && bp.owner != nil {
			// Assigned here: rule 1 already holds for it.
			continue
		}
		if at < bound {
			return false, fmt.Sprintf("%s/%d at %d of %d", tp.topic, tp.partition, at, bound), nil
		}
	}
	return true, "", nil
}

// Progress reports a bounded run's progress (the zero Progress when the run
// is not bounded).
func (c *Connector) Progress() Progress {
	b := c.bound
	if b == nil {
		return Progress{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	byTopic := make(map[string]*TopicProgress)
	for tp, bp := range b.parts {
		t := byTopic[tp.topic]
		if t == nil {
			t = &TopicProgress{Topic: tp.topic}
			byTopic[tp.topic] = t
		}
		t.Partitions++
		t.Records += bp.base
		t.Total += bp.span
		t.Bytes += bp.bytes.Load()
		if bp.owner != nil {
			t.Records += bp.done()
			t.Total += bp.todo()
		}
	}
	out := Progress{Until: b.u, Elapsed: time.Since(b.started), Complete: b.complete.Load()}
	for _, t := range byTopic {
		out.Topics = append(out.Topics, *t)
	}
	sort.Slice(out.Topics, func(i, j int) bool { return out.Topics[i].Topic < out.Topics[j].Topic })
	return out
}
