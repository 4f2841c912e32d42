package offsets

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestTrackerCommittable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tracked []int64
		done    []int64
		want    int64 // committable offset; -1 for none
		pending int
	}{
		{name: "nothing done", tracked: []int64{5, 6, 7}, want: -1, pending: 3},
		{name: "in order", tracked: []int64{5, 6, 7}, done: []int64{5, 6, 7}, want: 8},
		{name: "gap blocks", tracked: []int64{5, 6, 7}, done: []int64{7, 6}, want: -1, pending: 1},
		{name: "gap filled", tracked: []int64{5, 6, 7}, done: []int64{7, 5}, want: 6, pending: 1},
		{name: "non contiguous offsets", tracked: []int64{3, 10, 11, 40}, done: []int64{3, 10, 11}, want: 12, pending: 1},
		{name: "compaction gaps all done", tracked: []int64{3, 10, 11, 40}, done: []int64{40, 11, 10, 3}, want: 41},
		{name: "unknown offset ignored", tracked: []int64{3, 4}, done: []int64{5, 3}, want: 4, pending: 1},
		{name: "repeated done ignored", tracked: []int64{3, 4}, done: []int64{4, 4, 4}, want: -1, pending: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := NewTracker()
			for _, o := range tc.tracked {
				if err := tr.Track(o, 1, 10); err != nil {
					t.Fatal(err)
				}
			}
			for _, o := range tc.done {
				tr.Done(o, nil)
			}
			m, ok := tr.Committable()
			got := int64(-1)
			if ok {
				got = m.Offset
			}
			if got != tc.want {
				t.Errorf("committable = %d, want %d", got, tc.want)
			}
			n, b := tr.Pending()
			if n != tc.pending || b != int64(tc.pending)*10 {
				t.Errorf("pending = %d records %d bytes, want %d records", n, b, tc.pending)
			}
		})
	}
}

func TestTrackerRejectsOutOfOrder(t *testing.T) {
	t.Parallel()
	tr := NewTracker()
	if err := tr.Track(5, 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := tr.Track(5, 0, 1); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("Track(5) again = %v, want ErrOutOfOrder", err)
	}
	if err := tr.Track(4, 0, 1); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("Track(4) = %v, want ErrOutOfOrder", err)
	}
}

func TestTrackerRevokeStopsMarks(t *testing.T) {
	t.Parallel()
	tr := NewTracker()
	for o := int64(0); o < 3; o++ {
		_ = tr.Track(o, 7, 1)
	}
	var marks []Mark
	mark := func(m Mark) { marks = append(marks, m) }
	tr.Done(0, mark)
	final, ok := tr.Revoke()
	if !ok || final != (Mark{Offset: 1, Epoch: 7}) {
		t.Fatalf("Revoke = %v %v, want {1 7} true", final, ok)
	}
	// A late acknowledgement after the revoke must not reach the committer.
	tr.Done(1, mark)
	tr.Done(2, mark)
	if len(marks) != 1 {
		t.Fatalf("marks after revoke: %v", marks)
	}
	if err := tr.Track(3, 7, 1); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Track after revoke = %v, want ErrRevoked", err)
	}
}

func TestTrackerCallbackSeesEveryAdvance(t *testing.T) {
	t.Parallel()
	tr := NewTracker()
	for o := int64(10); o < 13; o++ {
		_ = tr.Track(o, 2, 1)
	}
	var got []int64
	mark := func(m Mark) { got = append(got, m.Offset) }
	tr.Done(12, mark) // blocked by 10, 11
	tr.Done(10, mark) // -> 11
	tr.Done(11, mark) // -> 13
	want := []int64{11, 13}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("marks = %v, want %v", got, want)
	}
}

// checkRandomOrder tracks n records with random gaps, completes them in a
// random order and checks after every completion that the committable offset
// never passes an undelivered record and that it reaches the end.
func checkRandomOrder(t *testing.T, seed uint64, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tr := NewTracker()
	offs := make([]int64, n)
	o := int64(r.IntN(5))
	for i := range offs {
		offs[i] = o
		if err := tr.TrackTimed(o, 0, 1, o*1000); err != nil {
			t.Fatal(err)
		}
		o += 1 + int64(r.IntN(3)) // gaps as compaction leaves them
	}
	delivered := make(map[int64]bool, n)
	lastMark := int64(-1)
	for _, i := range r.Perm(n) {
		delivered[offs[i]] = true
		tr.Done(offs[i], func(m Mark) {
			if m.Offset <= lastMark {
				t.Fatalf("mark went backwards: %d after %d", m.Offset, lastMark)
			}
			lastMark = m.Offset
		})
		m, ok := tr.Committable()
		if !ok {
			continue
		}
		for _, off := range offs {
			if off >= m.Offset {
				break
			}
			if !delivered[off] {
				t.Fatalf("committable %d passes undelivered offset %d", m.Offset, off)
			}
		}
	}
	m, _ := tr.Committable()
	if n > 0 && m.Offset != offs[n-1]+1 {
		t.Fatalf("final committable %d, want %d", m.Offset, offs[n-1]+1)
	}
	if p, b := tr.Pending(); p != 0 || b != 0 {
		t.Fatalf("pending after all done: %d records %d bytes", p, b)
	}
}

func TestTrackerRandomOrders(t *testing.T) {
	t.Parallel()
	for seed := uint64(0); seed < 200; seed++ {
		checkRandomOrder(t, seed, int(seed%50)+1)
	}
}

func FuzzTracker(f *testing.F) {
	f.Add(uint64(1), uint8(10))
	f.Add(uint64(42), uint8(200))
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		checkRandomOrder(t, seed, int(n))
	})
}

func BenchmarkTrackerInOrder(b *testing.B) {
	tr := NewTracker()
	var o int64
	b.ReportAllocs()
	for b.Loop() {
		_ = tr.Track(o, 0, 256)
		tr.Done(o, nil)
		o++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkTrackerWindow(b *testing.B) {
	// 500 records in flight, completed out of order within the window.
	const window = 500
	tr := NewTracker()
	var next, done int64
	b.ReportAllocs()
	for b.Loop() {
		_ = tr.Track(next, 0, 256)
		next++
		if next-done >= window {
			// complete the window back to front
			for o := next - 1; o >= done; o-- {
				tr.Done(o, nil)
			}
			done = next
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func TestTrackerOldest(t *testing.T) {
	t.Parallel()
	tr := NewTracker()
	if _, _, ok := tr.Oldest(); ok {
		t.Fatal("an empty tracker has an oldest pending offset")
	}
	for _, o := range []int64{3, 5, 9} {
		if err := tr.TrackTimed(o, 0, 1, o*1000); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		done int64
		want int64
		ok   bool
	}{{done: 5, want: 3, ok: true}, {done: 3, want: 9, ok: true}, {done: 9, ok: false}}
	for _, tc := range tests {
		tr.Done(tc.done, nil)
		got, ts, ok := tr.Oldest()
		if got != tc.want || ok != tc.ok || (ok && ts != got*1000) {
			t.Fatalf("after %d done: Oldest = %d (time %d), %t; want %d, %t", tc.done, got, ts, ok, tc.want, tc.ok)
		}
	}
}
