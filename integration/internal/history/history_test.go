package history

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

type prod struct {
	topic string
	part  int32
	off   int64
	key   string
}

// produced numbers the records in order; values carry "topic|index|".
func produced(recs ...prod) []harness.Produced {
	out := make([]harness.Produced, len(recs))
	for i, r := range recs {
		out[i] = harness.Produced{Topic: r.topic, Partition: r.part, Offset: r.off, Key: []byte(r.key),
			Value: fmt.Appendf(nil, "%s|%d|payload", r.topic, i)}
	}
	return out
}

// readOf reads produced records by index into one shard, in the given order.
func readOf(ps []harness.Produced, order ...int) []harness.StreamRecord {
	out := make([]harness.StreamRecord, len(order))
	for i, pi := range order {
		p := ps[pi]
		out[i] = harness.StreamRecord{ShardID: "shardId-000000000000", SequenceNumber: strconv.Itoa(1000 + i),
			PartitionKey: string(p.Key), Data: p.Value}
	}
	return out
}

// base is a passing history: offsets with gaps (compaction, transaction
// markers), two keys in t/0, one in t/1, and key "a" again in topic u.
func base() History {
	ps := produced(
		prod{"t", 0, 0, "a"},  // 0
		prod{"t", 0, 2, "b"},  // 1
		prod{"t", 0, 5, "a"},  // 2
		prod{"t", 0, 9, "b"},  // 3
		prod{"t", 1, 0, "c"},  // 4
		prod{"t", 1, 1, "c"},  // 5
		prod{"t", 1, 3, "c"},  // 6
		prod{"u", 0, 10, "a"}, // 7
		prod{"u", 0, 11, "a"}, // 8
	)
	return History{
		Produced: ps,
		// Interleaved across keys and topics; in order within each.
		Read: readOf(ps, 7, 0, 4, 1, 8, 5, 2, 6, 3),
		Samples: []Sample{
			{at(1 * time.Second), map[TP]int64{{"t", 0}: 3}},
			{at(2 * time.Second), map[TP]int64{{"t", 0}: 10, {"t", 1}: 4, {"u", 0}: 12}},
		},
	}
}

func appendRead(h *History, idx ...int) {
	for _, i := range idx {
		r := readOf(h.Produced, i)[0]
		r.SequenceNumber = strconv.Itoa(2000 + len(h.Read))
		h.Read = append(h.Read, r)
	}
}

// Log lines in ferry's slog JSON form.
func logLine(t *testing.T, d time.Duration, msg string, attrs map[string]any) string {
	t.Helper()
	m := map[string]any{"time": at(d).Format(time.RFC3339Nano), "level": "INFO", "msg": msg}
	for k, v := range attrs {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assigned(t *testing.T, d time.Duration, parts map[string][]int32) string {
	t.Helper()
	return logLine(t, d, MsgAssigned, map[string]any{"partitions": parts})
}

func revoked(t *testing.T, d time.Duration, parts map[string][]int32) string {
	t.Helper()
	return logLine(t, d, MsgRevoked, map[string]any{"partitions": parts})
}

func lost(t *testing.T, d time.Duration, parts map[string][]int32) string {
	t.Helper()
	return logLine(t, d, MsgLost, map[string]any{"partitions": parts})
}

func committed(t *testing.T, d time.Duration, reason string, offs map[string]int64) string {
	t.Helper()
	return logLine(t, d, MsgCommitted, map[string]any{"reason": reason, "member": "m-1", "generation": 3, "offsets": offs})
}

func writeLog(t *testing.T, name string, lines ...string) Member {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Member{Name: name, LogPath: path}
}

func TestCheck(t *testing.T) {
	type tc struct {
		name    string
		edit    func(t *testing.T, h *History)
		opts    Options
		wantErr []string // substrings of Err; none means Err must be nil
		check   func(t *testing.T, r Report)
	}
	unclean := func(committed map[TP]int64) Fault {
		return Fault{Name: "crash", Start: at(time.Second), End: at(time.Second), Committed: committed}
	}
	cases := []tc{
		{
			name: "clean history with offset gaps",
			check: func(t *testing.T, r Report) {
				if r.Produced != 9 || r.Read != 9 || r.Lost != 0 || r.Duplicated != 0 || r.Inversions != 0 ||
					r.RelaxedInversions != 0 || r.Regressions != 0 || r.KeyMismatch != 0 || !r.Drained {
					t.Errorf("unexpected report:\n%s", r.Summary())
				}
			},
		},
		{
			name: "P1 lost record",
			edit: func(t *testing.T, h *History) {
				h.Read = slices.DeleteFunc(h.Read, func(r harness.StreamRecord) bool { return DefaultID(r.Data) == "t|2|" })
			},
			wantErr: []string{"P1: 1 records lost"},
			check: func(t *testing.T, r Report) {
				if r.Lost != 1 || r.Unseen != 1 || !strings.Contains(r.LostExamples[0], "t/0@5") {
					t.Errorf("lost %d unseen %d examples %v", r.Lost, r.Unseen, r.LostExamples)
				}
			},
		},
		{
			name:    "P2 any duplicate without AllowDuplicates",
			edit:    func(t *testing.T, h *History) { appendRead(h, 3) },
			wantErr: []string{"P2: 1 duplicated records where none are allowed"},
			check: func(t *testing.T, r Report) {
				if r.Duplicated != 1 || r.DuplicateCopies != 1 {
					t.Errorf("dups %d copies %d", r.Duplicated, r.DuplicateCopies)
				}
			},
		},
		{
			name: "P2 duplicate at or above the committed offset at an unclean fault",
			edit: func(t *testing.T, h *History) {
				appendRead(h, 2, 3) // t/0@5, t/0@9
				h.Faults = []Fault{unclean(map[TP]int64{{"t", 0}: 5})}
			},
			opts: Options{AllowDuplicates: true},
			check: func(t *testing.T, r Report) {
				if r.Duplicated != 2 || r.DupViolations != 0 {
					t.Errorf("dups %d violations %d", r.Duplicated, r.DupViolations)
				}
			},
		},
		{
			name: "P2 duplicate below the committed offset at every unclean fault",
			edit: func(t *testing.T, h *History) {
				appendRead(h, 1) // t/0@2
				h.Faults = []Fault{
					unclean(map[TP]int64{{"t", 0}: 5}),
					{Name: "crash2", Start: at(2 * time.Second), Committed: map[TP]int64{{"t", 0}: 3}},
				}
			},
			opts:    Options{AllowDuplicates: true},
			wantErr: []string{"P2: 1 duplicated records below the offset committed"},
			check: func(t *testing.T, r Report) {
				if !strings.Contains(r.DupExamples[0], "below 3 committed") {
					t.Errorf("examples %v", r.DupExamples)
				}
			},
		},
		{
			name: "P2 duplicate explained by one of several unclean faults",
			edit: func(t *testing.T, h *History) {
				appendRead(h, 1) // t/0@2
				h.Faults = []Fault{
					unclean(map[TP]int64{{"t", 0}: 5}),
					{Name: "crash-early", Start: at(0), Committed: map[TP]int64{{"t", 1}: 1}}, // nothing on t/0: 0
				}
			},
			opts: Options{AllowDuplicates: true},
		},
		{
			name: "P2 a clean fault explains no duplicate",
			edit: func(t *testing.T, h *History) {
				appendRead(h, 3)
				h.Faults = []Fault{{Name: "sigterm", Start: at(time.Second), Clean: true}}
			},
			opts:    Options{AllowDuplicates: true},
			wantErr: []string{"P2: 1 duplicated records"},
			check: func(t *testing.T, r Report) {
				if !strings.Contains(r.DupExamples[0], "no unclean fault") {
					t.Errorf("examples %v", r.DupExamples)
				}
			},
		},
		{
			name: "P2 duplicate copies over the bound",
			edit: func(t *testing.T, h *History) {
				appendRead(h, 3, 3, 6)
				h.Faults = []Fault{unclean(nil)}
			},
			opts:    Options{AllowDuplicates: true, MaxDuplicates: 2},
			wantErr: []string{"P2: 3 duplicate copies exceed the bound 2"},
			check: func(t *testing.T, r Report) {
				if r.Duplicated != 2 || r.DuplicateCopies != 3 || r.DupViolations != 0 {
					t.Errorf("dups %d copies %d violations %d", r.Duplicated, r.DuplicateCopies, r.DupViolations)
				}
			},
		},
		{
			name: "P2 phantom record",
			edit: func(t *testing.T, h *History) {
				h.Read = append(h.Read, harness.StreamRecord{ShardID: "shardId-000000000000", SequenceNumber: "9999",
					PartitionKey: "a", Data: []byte("t|99|never produced")})
			},
			opts:    Options{AllowDuplicates: true},
			wantErr: []string{"P2: 1 phantom records"},
		},
		{
			name: "P3 inversion only keep-first flags (11, 10, 11)",
			edit: func(t *testing.T, h *History) {
				h.Read = readOf(h.Produced, 8, 7, 8, 0, 1, 2, 3, 4, 5, 6)
				h.Faults = []Fault{unclean(nil)}
			},
			opts:    Options{AllowDuplicates: true},
			wantErr: []string{"P3: 1 per-key order inversions (keep-first)"},
			check: func(t *testing.T, r Report) {
				if r.Inversions != 1 || r.RelaxedInversions != 0 || !strings.Contains(r.InversionExamples[0], "offset 10 read after 11") {
					t.Errorf("inversions %d relaxed %d %v", r.Inversions, r.RelaxedInversions, r.InversionExamples)
				}
			},
		},
		{
			name: "P3 relaxed mode accepts (11, 10, 11)",
			edit: func(t *testing.T, h *History) {
				h.Read = readOf(h.Produced, 8, 7, 8, 0, 1, 2, 3, 4, 5, 6)
				h.Faults = []Fault{unclean(nil)}
				h.Ordering = "relaxed"
			},
			opts: Options{AllowDuplicates: true},
		},
		{
			name: "P3 relaxed mode flags (10, 11, 10)",
			edit: func(t *testing.T, h *History) {
				h.Read = readOf(h.Produced, 7, 8, 7, 0, 1, 2, 3, 4, 5, 6)
				h.Faults = []Fault{unclean(nil)}
				h.Ordering = "relaxed"
			},
			opts:    Options{AllowDuplicates: true},
			wantErr: []string{"P3: 1 per-key order inversions (keep-last)"},
			check: func(t *testing.T, r Report) {
				if r.Inversions != 0 || r.RelaxedInversions != 1 {
					t.Errorf("inversions %d relaxed %d", r.Inversions, r.RelaxedInversions)
				}
			},
		},
		{
			name: "P3 mode none reports without failing",
			edit: func(t *testing.T, h *History) {
				h.Read = readOf(h.Produced, 8, 7, 0, 1, 2, 3, 4, 5, 6)
				h.Ordering = "none"
			},
			check: func(t *testing.T, r Report) {
				if r.Inversions != 1 || r.Ordering != "none" {
					t.Errorf("inversions %d mode %s", r.Inversions, r.Ordering)
				}
			},
		},
		{
			name: "P3 no order across partitions or topics for one key",
			edit: func(t *testing.T, h *History) {
				// Key "a" in t/0 (offsets 0, 5) and u/0 (10, 11), plus t/1 records moved
				// to key "a" read before lower offsets of other partitions.
				for i := 4; i <= 6; i++ {
					h.Produced[i].Key = []byte("a")
				}
				h.Read = readOf(h.Produced, 7, 8, 4, 5, 6, 0, 2, 1, 3)
			},
		},
		{
			name: "P3 inversion within a key across offset gaps",
			edit: func(t *testing.T, h *History) {
				h.Read = readOf(h.Produced, 7, 8, 4, 5, 6, 2, 0, 1, 3) // t/0 key a: 5 before 0
			},
			wantErr: []string{"P3: 1 per-key order inversions (keep-first)"},
		},
		{
			name: "P4 committed offset regression in samples",
			edit: func(t *testing.T, h *History) {
				h.Samples = append(h.Samples,
					Sample{at(3 * time.Second), map[TP]int64{{"t", 0}: 6, {"t", 1}: 4, {"u", 0}: 12}},
					Sample{at(4 * time.Second), map[TP]int64{{"t", 0}: 10, {"t", 1}: 4, {"u", 0}: 12}})
			},
			wantErr: []string{"P4: 1 committed offset regressions"},
			check: func(t *testing.T, r Report) {
				if !strings.Contains(r.RegressionExamples[0], "t/0: committed 10 -> 6") {
					t.Errorf("examples %v", r.RegressionExamples)
				}
			},
		},
		{
			name: "P4 samples out of order are sorted by time; missing partitions are no regression",
			edit: func(t *testing.T, h *History) {
				h.Samples = []Sample{
					{at(2 * time.Second), map[TP]int64{{"t", 0}: 10, {"t", 1}: 4, {"u", 0}: 12}},
					{at(1500 * time.Millisecond), map[TP]int64{{"t", 0}: 7}},
					{at(1 * time.Second), map[TP]int64{{"t", 0}: 3, {"t", 1}: 2}},
				}
			},
		},
		{
			name: "P4 log-line regression is info only",
			edit: func(t *testing.T, h *History) {
				parts := map[string][]int32{"t": {0}}
				h.Members = []Member{
					writeLog(t, "a", assigned(t, 0, parts), committed(t, time.Second, "autocommit", map[string]int64{"t/0": 8}),
						committed(t, 2*time.Second, "revoke", map[string]int64{"t/0": 10}), revoked(t, 2*time.Second, parts)),
					writeLog(t, "b", assigned(t, 3*time.Second, parts), committed(t, 4*time.Second, "autocommit", map[string]int64{"t/0": 9})),
				}
			},
			check: func(t *testing.T, r Report) {
				if r.LogRegressions != 1 || r.Commits != 3 || r.CommitsByReason["revoke"] != 1 ||
					!strings.Contains(r.LogRegressionExamples[0], "b committed 9 after a committed 10") {
					t.Errorf("log regressions %d commits %d %v", r.LogRegressions, r.Commits, r.LogRegressionExamples)
				}
			},
		},
		{
			name: "P5 commit inside the revoke callback is owned",
			edit: func(t *testing.T, h *History) {
				parts := map[string][]int32{"t": {0, 1}}
				h.Members = []Member{writeLog(t, "a",
					"not json: stderr noise",
					assigned(t, 0, parts),
					committed(t, time.Second, "autocommit", map[string]int64{"t/0": 3, "t/1": 1}),
					committed(t, 2*time.Second, "revoke", map[string]int64{"t/0": 10, "t/1": 4}),
					revoked(t, 2*time.Second, map[string][]int32{"t": {1}}),
					committed(t, 3*time.Second, "shutdown", map[string]int64{"t/0": 10}),
					revoked(t, 3*time.Second, map[string][]int32{"t": {0}}),
				)}
			},
		},
		{
			name: "P5 foreign commit after revoke",
			edit: func(t *testing.T, h *History) {
				h.Members = []Member{writeLog(t, "a",
					assigned(t, 0, map[string][]int32{"t": {0, 1}}),
					revoked(t, time.Second, map[string][]int32{"t": {1}}),
					committed(t, 2*time.Second, "autocommit", map[string]int64{"t/0": 10, "t/1": 4}),
				)}
			},
			wantErr: []string{"P5: 1 commits of partitions the member did not own"},
			check: func(t *testing.T, r Report) {
				if !strings.Contains(r.ForeignExamples[0], "a committed t/1=4 (autocommit, generation 3)") {
					t.Errorf("examples %v", r.ForeignExamples)
				}
			},
		},
		{
			name: "P5 commit after lost, and after reassignment",
			edit: func(t *testing.T, h *History) {
				parts := map[string][]int32{"t": {0}}
				h.Members = []Member{writeLog(t, "a",
					assigned(t, 0, parts),
					lost(t, time.Second, parts),
					committed(t, 2*time.Second, "autocommit", map[string]int64{"t/0": 5}), // violation
					assigned(t, 3*time.Second, parts),
					committed(t, 4*time.Second, "autocommit", map[string]int64{"t/0": 10}), // fine
				)}
			},
			wantErr: []string{"P5: 1 commits"},
		},
		{
			name: "P5 unreadable member log",
			edit: func(t *testing.T, h *History) {
				h.Members = []Member{{Name: "gone", LogPath: filepath.Join(t.TempDir(), "missing.log")}}
			},
			wantErr: []string{"P5: 1 member logs unreadable"},
		},
		{
			name: "P6 drain time after the last fault",
			edit: func(t *testing.T, h *History) {
				h.Faults = []Fault{
					{Name: "a", Start: at(time.Second), End: at(2 * time.Second)},
					{Name: "b", Start: at(3 * time.Second), End: at(5 * time.Second)},
				}
				h.Ends = map[TP]int64{{"t", 0}: 12, {"t", 1}: 4, {"u", 0}: 12} // 12: a transaction marker past 9
				h.Samples = []Sample{
					{at(4 * time.Second), map[TP]int64{{"t", 0}: 12, {"t", 1}: 4, {"u", 0}: 12}}, // before End
					{at(6 * time.Second), map[TP]int64{{"t", 0}: 10, {"t", 1}: 4, {"u", 0}: 12}},
					{at(7500 * time.Millisecond), map[TP]int64{{"t", 0}: 12, {"t", 1}: 4, {"u", 0}: 12}},
				}
			},
			opts:    Options{DrainWithin: 3 * time.Second},
			wantErr: []string{"P4: 1"}, // 12 -> 10 between the first two samples
			check: func(t *testing.T, r Report) {
				if !r.Drained || r.DrainTime != 2500*time.Millisecond || !r.DrainFrom.Equal(at(5*time.Second)) {
					t.Errorf("drained %v in %s from %s", r.Drained, r.DrainTime, r.DrainFrom)
				}
			},
		},
		{
			name: "P6 drain too slow",
			edit: func(t *testing.T, h *History) {
				h.Faults = []Fault{{Name: "a", Start: at(0)}} // instantaneous: End = Start
			},
			opts:    Options{DrainWithin: time.Second},
			wantErr: []string{"P6: drain took 2s > 1s"},
		},
		{
			name: "P6 never drained (Ends derived from produced)",
			edit: func(t *testing.T, h *History) {
				h.Samples = h.Samples[:1]
			},
			opts:    Options{DrainWithin: time.Minute},
			wantErr: []string{"P6: committed offsets never reached"},
			check: func(t *testing.T, r Report) {
				want := []string{"t/0 3<10", "t/1 0<4", "u/0 0<12"}
				if r.Drained || !slices.Equal(r.NotDrained, want) {
					t.Errorf("drained %v short %v, want %v", r.Drained, r.NotDrained, want)
				}
			},
		},
		{
			name: "custom identity",
			edit: func(t *testing.T, h *History) {
				for i := range h.Produced {
					h.Produced[i].Value = fmt.Appendf(nil, "id=%d;", i)
				}
				h.Read = readOf(h.Produced, 0, 1, 2, 3, 4, 5, 6, 7, 8)
				h.ID = func(b []byte) string { return strings.SplitN(string(b), ";", 2)[0] }
			},
		},
		{
			name: "several violations are all named",
			edit: func(t *testing.T, h *History) {
				h.Read = readOf(h.Produced, 8, 7, 8, 0, 1, 2, 3, 4, 5) // u/0 inverted and duplicated, t/1@3 lost
			},
			wantErr: []string{"P1: 1", "P2: 1", "P3: 1"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := base()
			if c.edit != nil {
				c.edit(t, &h)
			}
			r := Check(h, c.opts)
			err := r.Err()
			if len(c.wantErr) == 0 && err != nil {
				t.Errorf("unexpected violation: %v\n%s", err, r.Summary())
			}
			for _, w := range c.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not contain %q\n%s", err, w, r.Summary())
				}
			}
			if c.check != nil {
				c.check(t, r)
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("\n%s", r.Summary())
			}
		})
	}
}

func TestResharding(t *testing.T) {
	// Key "a" in the parent shard, then in a child shard after a reshard: ReadAll
	// lists the parent first, so slice order is per-key order.
	ps := produced(prod{"t", 0, 0, "a"}, prod{"t", 0, 1, "a"}, prod{"t", 0, 2, "a"})
	read := []harness.StreamRecord{
		{ShardID: "shardId-000000000000", SequenceNumber: "5", PartitionKey: "a", Data: ps[0].Value},
		{ShardID: "shardId-000000000000", SequenceNumber: "7", PartitionKey: "a", Data: ps[1].Value},
		{ShardID: "shardId-000000000002", SequenceNumber: "3", PartitionKey: "a", Data: ps[2].Value},
	}
	r := Check(History{Produced: ps, Read: read}, Options{})
	if err := r.Err(); err != nil {
		t.Fatalf("%v\n%s", err, r.Summary())
	}
}

func TestKeyMismatchIsInfo(t *testing.T) {
	h := base()
	h.Read[0].PartitionKey = "hashed"
	r := Check(h, Options{})
	if r.KeyMismatch != 1 || r.Err() != nil {
		t.Fatalf("mismatch %d err %v", r.KeyMismatch, r.Err())
	}
}

func TestProducedIDClash(t *testing.T) {
	h := base()
	h.Produced[1].Value = h.Produced[0].Value
	r := Check(h, Options{})
	if err := r.Err(); r.ProducedIDClash != 1 || r.Lost != 0 || err == nil || !strings.Contains(err.Error(), "ID is not unique") {
		t.Fatalf("clash %d lost %d err %v", r.ProducedIDClash, r.Lost, err)
	}
}

func TestUnknownOrdering(t *testing.T) {
	h := base()
	h.Ordering = "strictest"
	if err := Check(h, Options{}).Err(); err == nil || !strings.Contains(err.Error(), `unknown Ordering "strictest"`) {
		t.Fatalf("err %v", err)
	}
}

func TestSummary(t *testing.T) {
	h := base()
	appendRead(&h, 0, 0)
	h.Faults = []Fault{{Name: "kill-a", Start: at(0)}, {Name: "stop-b", Start: at(0), Clean: true}}
	s := Check(h, Options{AllowDuplicates: true, DrainWithin: time.Minute}).Summary()
	for _, want := range []string{
		"produced 9, read 11, samples 2, members 0", "faults 2 [kill-a, stop-b (clean)]", "P1 lost: 0",
		"P2 duplicated records: 1 (extra copies 2, bound none)", "P3 order (mode key): keep-first inversions 0, keep-last inversions 1",
		"P4 committed regressions in samples: 0", "P5 foreign commits: 0",
		"P6 unseen at end: 0; committed reached the end offsets 2s after", "violations: none",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if n := strings.Count(s, "\n"); n > 30 {
		t.Errorf("summary has %d lines", n)
	}
}

func TestParseTP(t *testing.T) {
	for _, c := range []struct {
		in   string
		want TP
		ok   bool
	}{
		{"t/3", TP{"t", 3}, true},
		{"a.b-c_d/12", TP{"a.b-c_d", 12}, true},
		{"t", TP{}, false},
		{"/1", TP{}, false},
		{"t/x", TP{}, false},
	} {
		got, ok := ParseTP(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseTP(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
		if ok && got.String() != c.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

func TestReadLogLenient(t *testing.T) {
	m := writeLog(t, "x",
		`{"time":"2026-01-02T03:04:05.123456789Z","level":"DEBUG","msg":"offsets committed","reason":"revoke","member":"m","generation":"seven","offsets":{"t/0":4}}`,
		`panic: boom`,
		`{"level":"INFO"}`,
		`{"time":"2026-01-02T03:04:06Z","msg":"partitions assigned","partitions":{"t":[0,1]}}`,
	)
	evs, err := ReadLog(m.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Offsets["t/0"] != 4 || evs[0].Reason != "revoke" || evs[0].Time.Nanosecond() != 123456789 ||
		!slices.Equal(evs[1].Partitions["t"], []int32{0, 1}) {
		t.Fatalf("events %+v", evs)
	}
}
