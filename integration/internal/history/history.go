// Package history checks a Jepsen-style history of one ferry integration run
// against the reliability properties P1–P6 of RELIABILITY.md section (c).
//
// A run records what Kafka acknowledged (harness.Produce), what Kinesis holds
// afterwards (harness.ReadAll), the group's committed offsets sampled over time
// (Sampler), every ferry process's JSON log (Member) and the faults injected
// (Fault). Check sets them against each other:
//
//	P1 lost      an acknowledged record that was never read back.
//	P2 dups      a record read more than once, or a record that was never produced
//	             ("phantom"). Under Options.AllowDuplicates a duplicate is allowed
//	             when some unclean fault explains it: its offset is at or above what
//	             was committed for its partition when that fault struck.
//	P3 order     per (topic, partition, Kinesis partition key), Kafka offsets must
//	             increase in Kinesis order, keeping the first occurrence of each
//	             record (strict, Ordering "key") or the last one (Ordering "relaxed").
//	P4 monotonic committed offsets never decrease from one sample to the next.
//	P5 ownership a member only commits partitions it owns, judged from its own log.
//	P6 liveness  nothing unseen at the end, and the committed offsets reach the end
//	             offsets within Options.DrainWithin of the last fault's end.
//
// Order limitation: Check takes History.Read in slice order as Kinesis order.
// harness.ReadAll returns shards sorted by shard id, each by sequence number;
// after a reshard, parent shards (lower ids, listed first) therefore come
// before their children, which is right as long as a partition key maps to one
// shard chain. Records of one partition key spread over unrelated shards have
// no order, and the checker would compare them anyway.
//
// P5 is judged per member from its own log (a commit logged inside the revoke
// callback precedes "partitions revoked", so it counts as owned); a zombie
// that never logged the loss is not caught here, only by P4 on the samples.
//
// Only tests import this package.
package history

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// TP is a Kafka topic partition.
type TP struct {
	Topic     string
	Partition int32
}

// String renders tp as "topic/partition", the form ferry's commit log lines use.
func (tp TP) String() string { return tp.Topic + "/" + strconv.Itoa(int(tp.Partition)) }

// ParseTP parses "topic/partition" (Kafka topic names cannot contain '/').
func ParseTP(s string) (TP, bool) {
	i := strings.LastIndexByte(s, '/')
	if i <= 0 {
		return TP{}, false
	}
	p, err := strconv.ParseInt(s[i+1:], 10, 32)
	if err != nil {
		return TP{}, false
	}
	return TP{Topic: s[:i], Partition: int32(p)}, true
}

// Sample is a group's committed offsets (the next offset to consume) at one
// instant. A partition without a commit is absent.
type Sample struct {
	Time      time.Time
	Committed map[TP]int64
}

// Fault is one injected fault.
type Fault struct {
	Name       string
	Start, End time.Time // End zero means an instantaneous fault at Start
	// Committed is the group's committed offsets just before the fault struck
	// (Snapshot or Sampler.Last). A partition that is absent, or a nil map,
	// counts as committed at 0: any duplicate of it is explained.
	Committed map[TP]int64
	// Clean marks a fault after which zero duplicates are required (a graceful
	// stop): it never explains a duplicate.
	Clean bool
}

// Member is one ferry process; its JSON log (log_format: json) is at LogPath.
// A restarted instance is a new Member with its own log file.
type Member struct {
	Name    string
	LogPath string
}

// History is everything one run recorded.
type History struct {
	Produced []harness.Produced     // what Kafka acknowledged
	Read     []harness.StreamRecord // harness.ReadAll of the stream, in its order
	Samples  []Sample               // Sampler.Stop
	Members  []Member
	Faults   []Fault
	// Ends is the end offsets (high watermarks) at the end of the run. When nil
	// it is derived from Produced as max offset + 1 per partition.
	Ends map[TP]int64
	// Ordering is "key" (strict: keep-first order asserted; also ""), "relaxed"
	// (keep-last order asserted) or "none" (order reported only).
	Ordering string
	// ID is the identity of a record, applied both to a produced Value and to a
	// read record's Data; nil means the "topic|index|" prefix test producers write.
	ID func(data []byte) string
}

// Options tunes what Check counts as a violation.
type Options struct {
	// AllowDuplicates is for unclean faults: duplicates are allowed when some
	// unclean Fault has Committed[TP] <= offset (P2).
	AllowDuplicates bool
	// MaxDuplicates bounds the extra copies read (reads beyond the first, over
	// all records); 0 means no bound.
	MaxDuplicates int
	// DrainWithin is P6: after the last fault's End (the first sample when there
	// are no faults) the committed offsets must reach Ends within this. 0 skips
	// the check (the drain time is still reported).
	DrainWithin time.Duration
}

// maxExamples is how many examples a Report keeps per property.
const maxExamples = 5

// Report is the outcome of Check. Counts are complete; Examples hold at most 5
// entries each.
type Report struct {
	Produced, Read int
	Ordering       string // effective mode: key, relaxed or none
	Samples        int
	Faults         []string // fault names, "(clean)" appended for clean ones
	Members        int

	// P1
	Lost         int
	LostExamples []string

	// P2
	Duplicated          int // distinct produced records read more than once
	DuplicateCopies     int // reads beyond the first, summed over records
	DupViolations       int // duplicated records not allowed (any, or not explained by an unclean fault)
	DupExamples         []string
	DupOverBound        bool // DuplicateCopies > Options.MaxDuplicates > 0
	MaxDuplicates       int
	Phantoms            int // read records whose identity was never produced
	PhantomExamples     []string
	ProducedIDClash     int // produced records sharing an identity with an earlier one (a broken history)
	KeyMismatch         int // info: partition key != Kafka key (expected if ferry maps keys)
	KeyMismatchExamples []string

	// P3
	Inversions        int // keep-first: records read after a record of the same key with a higher offset
	InversionExamples []string
	RelaxedInversions int // keep-last
	RelaxedExamples   []string

	// P4
	Regressions           int // in Samples
	RegressionExamples    []string
	LogRegressions        int // info: in "offsets committed" log lines of all members, by time
	LogRegressionExamples []string

	// P5
	ForeignCommits  int
	ForeignExamples []string
	LogErrors       []string // member logs that could not be read
	Commits         int      // "offsets committed" lines over all members
	CommitsByReason map[string]int

	// P6
	Unseen     int       // == Lost
	DrainFrom  time.Time // last fault End, or first sample time
	Drained    bool      // some sample at or after DrainFrom reached Ends
	DrainTime  time.Duration
	DrainAt    time.Time
	DrainLimit time.Duration
	NotDrained []string // partitions short of Ends in the last sample, when !Drained

	violations []string
}

func addExample(list *[]string, format string, args ...any) {
	if len(*list) < maxExamples {
		*list = append(*list, fmt.Sprintf(format, args...))
	}
}

// DefaultID is the identity test producers write: the "topic|index|" prefix of
// a value (the whole value when it has fewer than two '|').
func DefaultID(v []byte) string {
	s := string(v)
	first := strings.IndexByte(s, '|')
	if first < 0 {
		return s
	}
	second := strings.IndexByte(s[first+1:], '|')
	if second < 0 {
		return s
	}
	return s[:first+second+2]
}

func describe(p harness.Produced) string {
	return fmt.Sprintf("%s/%d@%d key %q", p.Topic, p.Partition, p.Offset, p.Key)
}

// Check evaluates h against P1–P6.
func Check(h History, o Options) Report {
	id := h.ID
	if id == nil {
		id = DefaultID
	}
	r := Report{
		Produced: len(h.Produced), Read: len(h.Read), Samples: len(h.Samples),
		Members: len(h.Members), MaxDuplicates: o.MaxDuplicates, DrainLimit: o.DrainWithin,
		CommitsByReason: map[string]int{},
	}
	switch h.Ordering {
	case "", "key", "strict":
		r.Ordering = "key"
	case "relaxed", "none":
		r.Ordering = h.Ordering
	default:
		r.Ordering = h.Ordering
		r.violations = append(r.violations, fmt.Sprintf("unknown Ordering %q", h.Ordering))
	}
	for _, f := range h.Faults {
		name := f.Name
		if f.Clean {
			name += " (clean)"
		}
		r.Faults = append(r.Faults, name)
	}

	// Match every read record to the produced record it came from.
	byID := make(map[string]int, len(h.Produced))
	clash := make([]bool, len(h.Produced)) // not matchable: excluded from P1
	for i, p := range h.Produced {
		k := id(p.Value)
		if _, dup := byID[k]; dup {
			r.ProducedIDClash++
			clash[i] = true
			continue
		}
		byID[k] = i
	}
	match := make([]int, len(h.Read)) // index in Produced, -1 for a phantom
	seen := make([]int, len(h.Produced))
	first := make([]int, len(h.Produced)) // position in Read of the first / last occurrence
	last := make([]int, len(h.Produced))
	for i, rec := range h.Read {
		pi, ok := byID[id(rec.Data)]
		if !ok {
			match[i] = -1
			r.Phantoms++
			addExample(&r.PhantomExamples, "%.60q in %s at %s", rec.Data, rec.ShardID, rec.SequenceNumber)
			continue
		}
		match[i] = pi
		if seen[pi] == 0 {
			first[pi] = i
		}
		last[pi] = i
		seen[pi]++
		if p := h.Produced[pi]; rec.PartitionKey != string(p.Key) {
			r.KeyMismatch++
			addExample(&r.KeyMismatchExamples, "%s read with partition key %q", describe(p), rec.PartitionKey)
		}
	}

	checkLossAndDups(&r, h, o, seen, clash)
	checkOrder(&r, h, match, first, last)
	checkSamples(&r, h)
	checkLogs(&r, h)
	checkDrain(&r, h)

	if r.ProducedIDClash > 0 {
		r.violations = append(r.violations, fmt.Sprintf("history: %d produced records share an identity with another (ID is not unique)", r.ProducedIDClash))
	}
	if r.Lost > 0 {
		r.violations = append(r.violations, fmt.Sprintf("P1: %d records lost", r.Lost))
	}
	if r.DupViolations > 0 {
		if o.AllowDuplicates {
			r.violations = append(r.violations, fmt.Sprintf("P2: %d duplicated records below the offset committed at every unclean fault", r.DupViolations))
		} else {
			r.violations = append(r.violations, fmt.Sprintf("P2: %d duplicated records where none are allowed", r.DupViolations))
		}
	}
	if r.DupOverBound {
		r.violations = append(r.violations, fmt.Sprintf("P2: %d duplicate copies exceed the bound %d", r.DuplicateCopies, o.MaxDuplicates))
	}
	if r.Phantoms > 0 {
		r.violations = append(r.violations, fmt.Sprintf("P2: %d phantom records (never produced)", r.Phantoms))
	}
	switch {
	case r.Ordering == "key" && r.Inversions > 0:
		r.violations = append(r.violations, fmt.Sprintf("P3: %d per-key order inversions (keep-first)", r.Inversions))
	case r.Ordering == "relaxed" && r.RelaxedInversions > 0:
		r.violations = append(r.violations, fmt.Sprintf("P3: %d per-key order inversions (keep-last)", r.RelaxedInversions))
	}
	if r.Regressions > 0 {
		r.violations = append(r.violations, fmt.Sprintf("P4: %d committed offset regressions in samples", r.Regressions))
	}
	if r.ForeignCommits > 0 {
		r.violations = append(r.violations, fmt.Sprintf("P5: %d commits of partitions the member did not own", r.ForeignCommits))
	}
	if len(r.LogErrors) > 0 {
		r.violations = append(r.violations, fmt.Sprintf("P5: %d member logs unreadable: %s", len(r.LogErrors), strings.Join(r.LogErrors, "; ")))
	}
	if o.DrainWithin > 0 {
		switch {
		case !r.Drained:
			r.violations = append(r.violations, fmt.Sprintf("P6: committed offsets never reached the end offsets after %s", fmtTime(r.DrainFrom)))
		case r.DrainTime > o.DrainWithin:
			r.violations = append(r.violations, fmt.Sprintf("P6: drain took %s > %s", r.DrainTime.Round(time.Millisecond), o.DrainWithin))
		}
	}
	return r
}

func checkLossAndDups(r *Report, h History, o Options, seen []int, clash []bool) {
	var unclean []Fault
	for _, f := range h.Faults {
		if !f.Clean {
			unclean = append(unclean, f)
		}
	}
	for i, n := range seen {
		p := h.Produced[i]
		switch {
		case clash[i]:
		case n == 0:
			r.Lost++
			addExample(&r.LostExamples, "%s", describe(p))
		case n > 1:
			r.Duplicated++
			r.DuplicateCopies += n - 1
			if !o.AllowDuplicates {
				r.DupViolations++
				addExample(&r.DupExamples, "%s read %d times", describe(p), n)
				continue
			}
			tp := TP{p.Topic, p.Partition}
			explained := false
			lowest := int64(-1)
			for _, f := range unclean {
				c := f.Committed[tp]
				if p.Offset >= c {
					explained = true
					break
				}
				if lowest < 0 || c < lowest {
					lowest = c
				}
			}
			if !explained {
				r.DupViolations++
				if len(unclean) == 0 {
					addExample(&r.DupExamples, "%s read %d times, and no unclean fault explains it", describe(p), n)
				} else {
					addExample(&r.DupExamples, "%s read %d times, below %d committed at every unclean fault", describe(p), n, lowest)
				}
			}
		}
	}
	r.Unseen = r.Lost
	r.DupOverBound = o.MaxDuplicates > 0 && r.DuplicateCopies > o.MaxDuplicates
}

// orderKey groups records whose relative order P3 checks: one Kafka partition
// (Kafka orders nothing across partitions) and one Kinesis partition key (which
// one shard, or one parent→child shard chain, orders).
type orderKey struct {
	tp TP
	pk string
}

type orderState struct{ max int64 }

func checkOrder(r *Report, h History, match, first, last []int) {
	strict := map[orderKey]*orderState{}
	relaxed := map[orderKey]*orderState{}
	step := func(states map[orderKey]*orderState, pi int, rec harness.StreamRecord, count *int, examples *[]string, rule string) {
		p := h.Produced[pi]
		k := orderKey{TP{p.Topic, p.Partition}, rec.PartitionKey}
		st := states[k]
		if st == nil {
			states[k] = &orderState{max: p.Offset}
			return
		}
		if p.Offset < st.max {
			*count++
			addExample(examples, "%s/%d partition key %q: offset %d read after %d (%s, %s at %s)",
				p.Topic, p.Partition, rec.PartitionKey, p.Offset, st.max, rule, rec.ShardID, rec.SequenceNumber)
			return
		}
		st.max = p.Offset
	}
	for i, rec := range h.Read {
		pi := match[i]
		if pi < 0 {
			continue
		}
		if first[pi] == i {
			step(strict, pi, rec, &r.Inversions, &r.InversionExamples, "keep-first")
		}
		if last[pi] == i {
			step(relaxed, pi, rec, &r.RelaxedInversions, &r.RelaxedExamples, "keep-last")
		}
	}
}

func checkSamples(r *Report, h History) {
	samples := slices.Clone(h.Samples)
	slices.SortStableFunc(samples, func(a, b Sample) int { return a.Time.Compare(b.Time) })
	prev := map[TP]int64{}
	for _, s := range samples {
		for tp, c := range s.Committed {
			if p, ok := prev[tp]; ok && c < p {
				r.Regressions++
				addExample(&r.RegressionExamples, "%s: committed %d -> %d at %s", tp, p, c, fmtTime(s.Time))
			}
			prev[tp] = c
		}
	}
}

func checkLogs(r *Report, h History) {
	type commit struct {
		time   time.Time
		member string
		offs   map[string]int64
	}
	var commits []commit
	for _, m := range h.Members {
		events, err := ReadLog(m.LogPath)
		if err != nil {
			r.LogErrors = append(r.LogErrors, fmt.Sprintf("%s: %v", m.Name, err))
			continue
		}
		owned := map[TP]bool{}
		set := func(parts map[string][]int32, v bool) {
			for topic, ps := range parts {
				for _, p := range ps {
					owned[TP{topic, p}] = v
				}
			}
		}
		for _, ev := range events {
			switch ev.Msg {
			case MsgAssigned:
				set(ev.Partitions, true)
			case MsgRevoked, MsgLost:
				set(ev.Partitions, false)
			case MsgCommitted:
				r.Commits++
				r.CommitsByReason[ev.Reason]++
				commits = append(commits, commit{ev.Time, m.Name, ev.Offsets})
				for _, s := range slices.Sorted(maps.Keys(ev.Offsets)) {
					tp, ok := ParseTP(s)
					if !ok || !owned[tp] {
						r.ForeignCommits++
						addExample(&r.ForeignExamples, "%s committed %s=%d (%s, generation %d) at %s while not owning it",
							m.Name, s, ev.Offsets[s], ev.Reason, ev.Generation, fmtTime(ev.Time))
					}
				}
			}
		}
	}
	slices.SortStableFunc(commits, func(a, b commit) int { return a.time.Compare(b.time) })
	type lastCommit struct {
		off    int64
		member string
	}
	prev := map[string]lastCommit{}
	for _, c := range commits {
		for _, s := range slices.Sorted(maps.Keys(c.offs)) {
			off := c.offs[s]
			if p, ok := prev[s]; ok && off < p.off {
				r.LogRegressions++
				addExample(&r.LogRegressionExamples, "%s: %s committed %d after %s committed %d, at %s",
					s, c.member, off, p.member, p.off, fmtTime(c.time))
			}
			prev[s] = lastCommit{off, c.member}
		}
	}
}

func checkDrain(r *Report, h History) {
	ends := h.Ends
	if ends == nil {
		ends = map[TP]int64{}
		for _, p := range h.Produced {
			tp := TP{p.Topic, p.Partition}
			ends[tp] = max(ends[tp], p.Offset+1)
		}
	}
	samples := slices.Clone(h.Samples)
	slices.SortStableFunc(samples, func(a, b Sample) int { return a.Time.Compare(b.Time) })
	for _, f := range h.Faults {
		end := f.End
		if end.IsZero() {
			end = f.Start
		}
		if end.After(r.DrainFrom) {
			r.DrainFrom = end
		}
	}
	if r.DrainFrom.IsZero() && len(samples) > 0 {
		r.DrainFrom = samples[0].Time
	}
	short := func(s Sample) []string {
		var out []string
		for _, tp := range slices.SortedFunc(maps.Keys(ends), cmpTP) {
			if end := ends[tp]; end > 0 && s.Committed[tp] < end {
				out = append(out, fmt.Sprintf("%s %d<%d", tp, s.Committed[tp], end))
			}
		}
		return out
	}
	for _, s := range samples {
		if s.Time.Before(r.DrainFrom) {
			continue
		}
		if len(short(s)) == 0 {
			r.Drained, r.DrainAt, r.DrainTime = true, s.Time, s.Time.Sub(r.DrainFrom)
			return
		}
	}
	if len(samples) > 0 {
		r.NotDrained = short(samples[len(samples)-1])
	}
}

func cmpTP(a, b TP) int {
	return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "(start)"
	}
	return t.Format("15:04:05.000")
}

// Err is nil when no property is violated, and otherwise names every violated
// property with its count.
func (r Report) Err() error {
	if len(r.violations) == 0 {
		return nil
	}
	return errors.New("history: " + strings.Join(r.violations, "; "))
}

// Violations lists the violated properties, as Err does.
func (r Report) Violations() []string { return slices.Clone(r.violations) }

// Summary renders the report on one screen, with examples for every nonzero count.
func (r Report) Summary() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	examples := func(list []string) {
		for _, e := range list {
			line("    e.g. %s", e)
		}
	}
	faults := "none"
	if len(r.Faults) > 0 {
		faults = strings.Join(r.Faults, ", ")
	}
	line("produced %d, read %d, samples %d, members %d, faults %d [%s]", r.Produced, r.Read, r.Samples, r.Members, len(r.Faults), faults)
	var reasons []string
	for _, k := range slices.Sorted(maps.Keys(r.CommitsByReason)) {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, r.CommitsByReason[k]))
	}
	line("commits seen in logs: %d (%s)", r.Commits, strings.Join(reasons, ", "))
	line("P1 lost: %d", r.Lost)
	examples(r.LostExamples)
	bound := "none"
	if r.MaxDuplicates > 0 {
		bound = strconv.Itoa(r.MaxDuplicates)
	}
	line("P2 duplicated records: %d (extra copies %d, bound %s), not allowed / below commit at fault: %d, phantoms: %d",
		r.Duplicated, r.DuplicateCopies, bound, r.DupViolations, r.Phantoms)
	examples(r.DupExamples)
	examples(r.PhantomExamples)
	if r.ProducedIDClash > 0 || r.KeyMismatch > 0 {
		line("   produced identity clashes %d; info: partition key != Kafka key %d", r.ProducedIDClash, r.KeyMismatch)
		examples(r.KeyMismatchExamples)
	}
	line("P3 order (mode %s): keep-first inversions %d, keep-last inversions %d", r.Ordering, r.Inversions, r.RelaxedInversions)
	examples(r.InversionExamples)
	examples(r.RelaxedExamples)
	line("P4 committed regressions in samples: %d (info: in log lines %d)", r.Regressions, r.LogRegressions)
	examples(r.RegressionExamples)
	examples(r.LogRegressionExamples)
	line("P5 foreign commits: %d, unreadable logs: %d", r.ForeignCommits, len(r.LogErrors))
	examples(r.ForeignExamples)
	examples(r.LogErrors)
	drain := "never reached the end offsets"
	if r.Drained {
		drain = fmt.Sprintf("reached the end offsets %s after %s", r.DrainTime.Round(time.Millisecond), fmtTime(r.DrainFrom))
	}
	if r.DrainLimit > 0 {
		drain += fmt.Sprintf(" (limit %s)", r.DrainLimit)
	}
	line("P6 unseen at end: %d; committed %s", r.Unseen, drain)
	if !r.Drained {
		if len(r.NotDrained) > maxExamples {
			line("    short: %s, ... (%d partitions)", strings.Join(r.NotDrained[:maxExamples], ", "), len(r.NotDrained))
		} else if len(r.NotDrained) > 0 {
			line("    short: %s", strings.Join(r.NotDrained, ", "))
		}
	}
	if len(r.violations) == 0 {
		line("violations: none")
	} else {
		line("violations: %s", strings.Join(r.violations, "; "))
	}
	return b.String()
}
