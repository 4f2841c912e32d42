package shardmap_test

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ferrylabs/ferry/shardmap"
)

// h parses a decimal hash key or fails the test.
func h(t testing.TB, s string) shardmap.Hash {
	t.Helper()
	v, err := shardmap.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// add returns x+d computed with math/big.
func add(t testing.TB, x shardmap.Hash, d int64) shardmap.Hash {
	t.Helper()
	return fromBig(t, new(big.Int).Add(toBig(x), big.NewInt(d)))
}

func mustNew(t testing.TB, shards []shardmap.Shard) *shardmap.Map {
	t.Helper()
	m, err := shardmap.New(shards)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEvenShards(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 10, 500, 4096} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			shards := shardmap.EvenShards(n)
			if len(shards) != n {
				t.Fatalf("len = %d, want %d", len(shards), n)
			}
			for i, s := range shards {
				// floor(i * 2^128 / n), as CreateStream lays out a new stream.
				want := new(big.Int).Mul(big.NewInt(int64(i)), two128)
				want.Quo(want, big.NewInt(int64(n)))
				if toBig(s.Start).Cmp(want) != 0 {
					t.Fatalf("shard %d start = %s, want %s", i, s.Start, want)
				}
				if wantID := fmt.Sprintf("shardId-%012d", i); s.ID != wantID || !s.Open {
					t.Fatalf("shard %d = %q open=%v, want %q open", i, s.ID, s.Open, wantID)
				}
			}
			mustNew(t, shards) // contiguous and complete
		})
	}
	if got := shardmap.EvenShards(0); got != nil {
		t.Fatalf("EvenShards(0) = %v, want nil", got)
	}
	// Boundaries of a 2- and 4-shard stream, as ListShards prints them.
	if got := shardmap.EvenShards(2)[0].End.String(); got != "170141183460469231731687303715884105727" {
		t.Fatalf("EvenShards(2)[0].End = %s", got)
	}
	if got := shardmap.EvenShards(4)[1].Start.String(); got != "85070591730234615865843651857942052864" {
		t.Fatalf("EvenShards(4)[1].Start = %s", got)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	even2 := shardmap.EvenShards(2)
	mid := even2[1].Start
	maxH := shardmap.MaxHash
	open := func(id string, start, end shardmap.Hash) shardmap.Shard {
		return shardmap.Shard{ID: id, Start: start, End: end, Open: true}
	}
	tests := []struct {
		name    string
		shards  []shardmap.Shard
		wantErr []string // substrings of the error; nil means valid
		wantIDs []string
	}{
		{name: "one shard", shards: shardmap.EvenShards(1), wantIDs: []string{"shardId-000000000000"}},
		{
			name:    "unsorted input is sorted",
			shards:  []shardmap.Shard{even2[1], even2[0]},
			wantIDs: []string{"shardId-000000000000", "shardId-000000000001"},
		},
		{
			name: "closed shards ignored even if they overlap",
			shards: []shardmap.Shard{
				{ID: "parent", Start: shardmap.Hash{}, End: maxH},
				open("a", shardmap.Hash{}, add(t, mid, -1)),
				open("b", mid, maxH),
			},
			wantIDs: []string{"a", "b"},
		},
		{name: "nothing", shards: nil, wantErr: []string{"no open shards among 0"}},
		{
			name:    "only closed",
			shards:  []shardmap.Shard{{ID: "parent", End: maxH}},
			wantErr: []string{"no open shards among 1"},
		},
		{
			name:    "gap at start",
			shards:  []shardmap.Shard{open("a", h(t, "10"), maxH)},
			wantErr: []string{`gap 0..9 before shard "a"`},
		},
		{
			name:    "gap at end",
			shards:  []shardmap.Shard{open("a", shardmap.Hash{}, add(t, maxH, -5))},
			wantErr: []string{`gap ` + add(t, maxH, -4).String() + `..` + maxH.String() + ` after shard "a"`},
		},
		{
			name: "gap in middle",
			shards: []shardmap.Shard{
				open("a", shardmap.Hash{}, h(t, "99")),
				open("b", h(t, "200"), maxH),
			},
			wantErr: []string{`gap 100..199 between shards "a" and "b"`},
		},
		{
			name: "one-key gap",
			shards: []shardmap.Shard{
				open("a", shardmap.Hash{}, add(t, mid, -2)),
				open("b", mid, maxH),
			},
			wantErr: []string{"gap " + add(t, mid, -1).String() + ".." + add(t, mid, -1).String()},
		},
		{
			name: "overlap",
			shards: []shardmap.Shard{
				open("a", shardmap.Hash{}, h(t, "150")),
				open("b", h(t, "100"), maxH),
			},
			wantErr: []string{`overlap 100..150 between shards "a" and "b"`},
		},
		{
			name: "one-key overlap",
			shards: []shardmap.Shard{
				open("a", shardmap.Hash{}, mid),
				open("b", mid, maxH),
			},
			wantErr: []string{"overlap " + mid.String() + ".." + mid.String()},
		},
		{
			name: "nested shard overlaps its container, not its predecessor",
			shards: []shardmap.Shard{
				open("big", shardmap.Hash{}, maxH),
				open("small", h(t, "5"), h(t, "6")),
				open("late", h(t, "100"), h(t, "200")),
			},
			wantErr: []string{`overlap 5..6 between shards "big" and "small"`, `overlap 100..200 between shards "big" and "late"`},
		},
		{
			name:    "split child still open together with parent",
			shards:  []shardmap.Shard{even2[0], even2[1], open("child", shardmap.Hash{}, h(t, "1000"))},
			wantErr: []string{`overlap 0..1000`},
		},
		{
			name: "every problem reported",
			shards: []shardmap.Shard{
				open("a", h(t, "1"), h(t, "10")),
				open("b", h(t, "5"), h(t, "20")),
				open("c", h(t, "30"), add(t, maxH, -1)),
			},
			wantErr: []string{"gap 0..0 before", `overlap 5..10 between shards "a" and "b"`, `gap 21..29 between shards "b" and "c"`, `after shard "c"`},
		},
		{
			name:    "start after end",
			shards:  []shardmap.Shard{open("a", h(t, "10"), h(t, "9"))},
			wantErr: []string{`shard "a": start 10 is after end 9`},
		},
		{
			name:    "duplicate id",
			shards:  []shardmap.Shard{open("a", shardmap.Hash{}, add(t, mid, -1)), open("a", mid, maxH)},
			wantErr: []string{`shard "a" appears more than once`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := shardmap.New(tc.shards)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("New succeeded with %d shards, want error", m.Len())
				}
				if !errors.Is(err, shardmap.ErrInvalidShards) {
					t.Fatalf("error %v does not wrap ErrInvalidShards", err)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, s := range m.Shards() {
				ids = append(ids, s.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.wantIDs) || m.Len() != len(tc.wantIDs) {
				t.Fatalf("shards = %v (Len %d), want %v", ids, m.Len(), tc.wantIDs)
			}
		})
	}
}

func TestShardsIsACopy(t *testing.T) {
	t.Parallel()
	m := mustNew(t, shardmap.EvenShards(3))
	m.Shards()[0].ID = "mutated"
	if _, id := m.Lookup(shardmap.Hash{}); id != "shardId-000000000000" {
		t.Fatalf("Lookup after mutating Shards() = %q", id)
	}
}

// TestLookupBoundaries checks the first key, last key and one past the last
// key of every shard of streams of 1 to 7 shards.
func TestLookupBoundaries(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 7; n++ {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			m := mustNew(t, shardmap.EvenShards(n))
			shards := m.Shards()
			for i, s := range shards {
				probes := []struct {
					name string
					key  shardmap.Hash
					want int
				}{
					{name: "start", key: s.Start, want: i},
					{name: "start+1", key: add(t, s.Start, 1), want: i},
					{name: "end", key: s.End, want: i},
				}
				if i+1 < n {
					probes = append(probes, struct {
						name string
						key  shardmap.Hash
						want int
					}{name: "end+1", key: add(t, s.End, 1), want: i + 1})
				}
				for _, p := range probes {
					idx, id := m.Lookup(p.key)
					if idx != p.want || id != shards[p.want].ID {
						t.Errorf("shard %d %s (%s): Lookup = %d %q, want %d %q", i, p.name, p.key, idx, id, p.want, shards[p.want].ID)
					}
				}
			}
			if idx, _ := m.Lookup(shardmap.MaxHash); idx != n-1 {
				t.Errorf("Lookup(max) = %d, want %d", idx, n-1)
			}
		})
	}
}

// TestPredictAfterSplit simulates SplitShard on shard 0 of a 2-shard stream:
// ListShards then returns the closed parent and two open children, and every
// record that went to the parent must now go to one of the children.
func TestPredictAfterSplit(t *testing.T) {
	t.Parallel()
	before := shardmap.EvenShards(2)
	parent := before[0]
	split := fromBig(t, new(big.Int).Rsh(toBig(parent.End), 1)) // NewStartingHashKey
	after := []shardmap.Shard{
		{ID: parent.ID, Start: parent.Start, End: parent.End, Open: false},
		before[1],
		{ID: "shardId-000000000002", Start: parent.Start, End: add(t, split, -1), Open: true},
		{ID: "shardId-000000000003", Start: split, End: parent.End, Open: true},
	}
	mBefore, mAfter := mustNew(t, before), mustNew(t, after)
	if mAfter.Len() != 3 {
		t.Fatalf("Len = %d, want 3", mAfter.Len())
	}
	// Shard knows closed shards too: a record stored on the parent before
	// the split is checked against the parent's range.
	if s, ok := mAfter.Shard(parent.ID); !ok || s.Open || s.End != parent.End {
		t.Fatalf("Shard(parent) = %+v, %t", s, ok)
	}
	if _, ok := mBefore.Shard("shardId-000000000003"); ok {
		t.Fatal("the map before the split knows a child")
	}
	children := 0
	for i := range 5000 {
		key := "key-" + strconv.Itoa(i)
		_, was, err := mBefore.Predict(key, "")
		if err != nil {
			t.Fatal(err)
		}
		idx, now, err := mAfter.Predict(key, "")
		if err != nil {
			t.Fatal(err)
		}
		if !mAfter.Shards()[idx].Contains(shardmap.HashKey(key)) {
			t.Fatalf("%q predicted to %s, whose range lacks its hash", key, now)
		}
		switch {
		case was == parent.ID:
			if now != "shardId-000000000002" && now != "shardId-000000000003" {
				t.Fatalf("%q went to parent %s, now to %s, want a child", key, was, now)
			}
			children++
		case now != was:
			t.Fatalf("%q moved from %s to %s though its shard was not split", key, was, now)
		}
	}
	if children < 2000 || children > 3000 {
		t.Fatalf("%d of 5000 keys hashed to the parent's half", children)
	}
	for _, tc := range []struct {
		explicit, want string
	}{
		{explicit: "0", want: "shardId-000000000002"},
		{explicit: add(t, split, -1).String(), want: "shardId-000000000002"},
		{explicit: split.String(), want: "shardId-000000000003"},
		{explicit: parent.End.String(), want: "shardId-000000000003"},
		{explicit: before[1].Start.String(), want: before[1].ID},
	} {
		if _, id, err := mAfter.Predict("ignored", tc.explicit); err != nil || id != tc.want {
			t.Errorf("Predict(explicit %s) = %q, %v, want %q", tc.explicit, id, err, tc.want)
		}
	}
}

func TestPredict(t *testing.T) {
	t.Parallel()
	m := mustNew(t, shardmap.EvenShards(4))
	tests := []struct {
		name, key, explicit string
		wantIdx             int
		wantErr             bool
	}{
		{name: "explicit overrides key", key: "k", explicit: "0", wantIdx: 0},
		{name: "explicit last key", key: "k", explicit: shardmap.MaxHash.String(), wantIdx: 3},
		{name: "explicit 2^126 starts shard 1", key: "k", explicit: "85070591730234615865843651857942052864", wantIdx: 1},
		{name: "explicit 2^126-1 ends shard 0", key: "k", explicit: "85070591730234615865843651857942052863", wantIdx: 0},
		// MD5("abc") = 0x9001..., in the third quarter.
		{name: "key hashed", key: "abc", wantIdx: 2},
		{name: "explicit too big", key: "k", explicit: two128.String(), wantErr: true},
		{name: "explicit junk", key: "k", explicit: "12a", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			idx, id, err := m.Predict(tc.key, tc.explicit)
			if tc.wantErr {
				if err == nil || !errors.Is(err, shardmap.ErrInvalidHash) {
					t.Fatalf("Predict = %d %q %v, want ErrInvalidHash", idx, id, err)
				}
				return
			}
			if err != nil || idx != tc.wantIdx || id != m.Shards()[tc.wantIdx].ID {
				t.Fatalf("Predict = %d %q %v, want %d", idx, id, err, tc.wantIdx)
			}
		})
	}
}

func TestPredictConcurrent(t *testing.T) {
	t.Parallel()
	m := mustNew(t, shardmap.EvenShards(16))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				key := strconv.Itoa(g*10000 + i)
				idx, _, err := m.Predict(key, "")
				if err != nil || !m.Shards()[idx].Contains(shardmap.HashKey(key)) {
					t.Errorf("Predict(%q) = %d, %v", key, idx, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPredictAllocs(t *testing.T) {
	m := mustNew(t, shardmap.EvenShards(64))
	for _, key := range []string{"k", strings.Repeat("é", 256), strings.Repeat("😀", 128)} {
		if n := testing.AllocsPerRun(100, func() { _, _, _ = m.Predict(key, "") }); n != 0 {
			t.Errorf("Predict(len %d) allocates %.0f times", len(key), n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = m.Predict("k", "12345678901234567890123") }); n != 0 {
		t.Errorf("Predict with explicit hash key allocates %.0f times", n)
	}
}

// FuzzPredict checks, for any key and stream size, that the predicted shard's
// range holds the key's hash, that the result is deterministic, and that the
// binary search agrees with a linear scan.
func FuzzPredict(f *testing.F) {
	f.Add("user-42", uint16(1), "")
	f.Add("", uint16(7), "")
	f.Add("\xff\xfe", uint16(3), "")
	f.Add(strings.Repeat("😀", 128), uint16(500), "")
	f.Add("k", uint16(2), "170141183460469231731687303715884105728")
	f.Add("k", uint16(5), "-1")
	maps := make(map[uint16]*shardmap.Map)
	f.Fuzz(func(t *testing.T, key string, n uint16, explicit string) {
		n = n%1024 + 1
		m, ok := maps[n]
		if !ok {
			m = mustNew(t, shardmap.EvenShards(int(n)))
			maps[n] = m
		}
		shards := m.Shards()
		want := shardmap.HashKey(key)
		if explicit != "" {
			var err error
			if want, err = shardmap.ParseHash(explicit); err != nil {
				if _, _, perr := m.Predict(key, explicit); perr == nil {
					t.Fatalf("Predict accepted explicit %q that ParseHash rejects", explicit)
				}
				return
			}
		}
		idx, id, err := m.Predict(key, explicit)
		if err != nil {
			t.Fatal(err)
		}
		if idx < 0 || idx >= len(shards) || shards[idx].ID != id {
			t.Fatalf("Predict = %d %q, out of %d shards", idx, id, len(shards))
		}
		if !shards[idx].Contains(want) {
			t.Fatalf("shard %s [%s, %s] lacks hash %s of %q", id, shards[idx].Start, shards[idx].End, want, key)
		}
		for i, s := range shards {
			if s.Contains(want) != (i == idx) {
				t.Fatalf("linear scan: shard %d contains=%v, Predict chose %d", i, s.Contains(want), idx)
			}
		}
		if idx2, id2, _ := m.Predict(key, explicit); idx2 != idx || id2 != id {
			t.Fatalf("not deterministic: %d %q then %d %q", idx, id, idx2, id2)
		}
	})
}

func BenchmarkPredict(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("customer-%08d", i*7919)
	}
	for _, n := range []int{1, 4, 64, 1024} {
		b.Run("shards="+strconv.Itoa(n), func(b *testing.B) {
			m := mustNew(b, shardmap.EvenShards(n))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := m.Predict(keys[i%len(keys)], ""); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	m := mustNew(b, shardmap.EvenShards(1024))
	hashes := make([]shardmap.Hash, 1024)
	for i := range hashes {
		hashes[i] = shardmap.HashKey(strconv.Itoa(i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Lookup(hashes[i%len(hashes)])
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "lookups/s")
}

func TestShardMid(t *testing.T) {
	h := func(s string) shardmap.Hash {
		v, err := shardmap.ParseHash(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name       string
		start, end string
		want       string
	}{
		{"whole space", "0", "340282366920938463463374607431768211455", "170141183460469231731687303715884105727"},
		{"one key", "7", "7", "7"},
		{"two keys", "7", "8", "7"},
		{"upper half", "170141183460469231731687303715884105728", "340282366920938463463374607431768211455", "255211775190703847597530955573826158591"},
		{"across the word boundary", "18446744073709551615", "18446744073709551617", "18446744073709551616"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := shardmap.Shard{Start: h(tc.start), End: h(tc.end)}
			got := s.Mid()
			if got.String() != tc.want {
				t.Fatalf("Mid = %s, want %s", got, tc.want)
			}
			if !s.Contains(got) {
				t.Fatalf("Mid %s outside its shard", got)
			}
		})
	}
	// Every shard of an even split keeps its middle.
	for n := 1; n <= 9; n++ {
		m, err := shardmap.New(shardmap.EvenShards(n))
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.Len() {
			if j, _ := m.Lookup(m.At(i).Mid()); j != i {
				t.Fatalf("%d shards: the middle of shard %d maps to shard %d", n, i, j)
			}
		}
	}
}
