package ratelimit_test

import (
	"sync"
	"testing"

	"github.com/ferrylabs/ferry/ratelimit"
)

func TestAIMD(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		min, max int
		increase int
		decrease float64
		events   string // s = OnSuccess, t = OnThrottle
		want     []int  // Limit after each event; want[0] is the start
	}{
		{name: "starts at max and stays there", min: 1, max: 8, increase: 1, decrease: 0.5, events: "ss", want: []int{8, 8, 8}},
		{name: "halves then climbs by one", min: 1, max: 8, increase: 1, decrease: 0.5, events: "tsss", want: []int{8, 4, 5, 6, 7}},
		{name: "climbs by increase up to max", min: 1, max: 10, increase: 3, decrease: 0.5, events: "tsss", want: []int{10, 5, 8, 10, 10}},
		{name: "floors at min", min: 2, max: 16, increase: 1, decrease: 0.5, events: "ttttt", want: []int{16, 8, 4, 2, 2, 2}},
		{name: "rounds down", min: 1, max: 7, increase: 1, decrease: 0.5, events: "tt", want: []int{7, 3, 1}},
		{name: "gentle factor still lowers small limits", min: 1, max: 3, increase: 1, decrease: 0.9, events: "ttt", want: []int{3, 2, 1, 1}},
		{name: "gentle factor on large limit", min: 1, max: 100, increase: 1, decrease: 0.9, events: "tt", want: []int{100, 90, 81}},
		{name: "min equals max", min: 4, max: 4, increase: 1, decrease: 0.5, events: "tst", want: []int{4, 4, 4, 4}},
		{name: "min below 1 becomes 1", min: 0, max: 2, increase: 1, decrease: 0.5, events: "tt", want: []int{2, 1, 1}},
		{name: "max below min becomes min", min: 5, max: 3, increase: 1, decrease: 0.5, events: "ts", want: []int{5, 5, 5}},
		{name: "increase below 1 becomes 1", min: 1, max: 8, increase: 0, decrease: 0.5, events: "ts", want: []int{8, 4, 5}},
		{name: "decrease 1 becomes 0.5", min: 1, max: 8, increase: 1, decrease: 1, events: "t", want: []int{8, 4}},
		{name: "decrease 0 becomes 0.5", min: 1, max: 8, increase: 1, decrease: 0, events: "t", want: []int{8, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := ratelimit.NewAIMD(tc.min, tc.max, tc.increase, tc.decrease)
			got := []int{a.Limit()}
			for _, e := range tc.events {
				if e == 's' {
					a.OnSuccess()
				} else {
					a.OnThrottle()
				}
				got = append(got, a.Limit())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("test table: %d events but %d wants", len(tc.events), len(tc.want)-1)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("limits = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestAIMDConcurrentStaysInBounds(t *testing.T) {
	t.Parallel()
	a := ratelimit.NewAIMD(2, 64, 1, 0.5)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				if (g+i)%5 == 0 {
					a.OnThrottle()
				} else {
					a.OnSuccess()
				}
				if l := a.Limit(); l < 2 || l > 64 {
					t.Errorf("limit %d out of [2, 64]", l)
					return
				}
			}
		})
	}
	wg.Wait()
	// Whatever the interleaving left, enough successes climb back to max.
	for range 64 {
		a.OnSuccess()
	}
	if a.Limit() != 64 {
		t.Fatalf("limit %d after 64 successes, want 64", a.Limit())
	}
}

func BenchmarkAIMD(b *testing.B) {
	a := ratelimit.NewAIMD(1, 64, 1, 0.5)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%16 == 0 {
			a.OnThrottle()
		} else {
			a.OnSuccess()
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
}
