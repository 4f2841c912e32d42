package main

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestHistogramQuantile(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	tests := []struct {
		name   string
		counts []uint64 // cumulative, bounds 1, 2, 4, +Inf
		q      float64
		want   float64
	}{
		{"median interpolated in the second bucket", []uint64{10, 30, 40, 40}, 0.5, 1.5},
		{"p99 interpolated in the third bucket", []uint64{10, 30, 40, 40}, 0.99, 3.92},
		{"first bucket starts at 0", []uint64{10, 10, 10, 10}, 0.5, 0.5},
		{"rank on a bucket's upper edge", []uint64{10, 20, 20, 20}, 0.5, 1},
		{"+Inf bucket gives the highest finite bound", []uint64{1, 1, 1, 10}, 0.5, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := histogram{bounds: []float64{1, 2, 4, inf}, counts: tc.counts, count: tc.counts[3]}
			if got := h.quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	if got := (histogram{bounds: []float64{1, inf}, counts: []uint64{0, 0}}).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("empty histogram: quantile = %v, want NaN", got)
	}
}

const exposition = `# HELP ferry_end_to_end_latency_seconds x
# TYPE ferry_end_to_end_latency_seconds histogram
ferry_end_to_end_latency_seconds_bucket{stream="bench",timestamp_type="create_time",le="0.001"} %d
ferry_end_to_end_latency_seconds_bucket{stream="bench",timestamp_type="create_time",le="0.0015"} %d
ferry_end_to_end_latency_seconds_bucket{stream="bench",timestamp_type="create_time",le="+Inf"} %d
ferry_end_to_end_latency_seconds_sum{stream="bench",timestamp_type="create_time"} %g
ferry_end_to_end_latency_seconds_count{stream="bench",timestamp_type="create_time"} %d
ferry_end_to_end_latency_seconds_bucket{stream="bench",timestamp_type="log_append_time",le="0.001"} 0
ferry_end_to_end_latency_seconds_bucket{stream="bench",timestamp_type="log_append_time",le="0.0015"} 0
ferry_end_to_end_latency_seconds_bucket{stream="bench",timestamp_type="log_append_time",le="+Inf"} 0
ferry_end_to_end_latency_seconds_sum{stream="bench",timestamp_type="log_append_time"} 0
ferry_end_to_end_latency_seconds_count{stream="bench",timestamp_type="log_append_time"} 0
ferry_end_to_end_latency_seconds_bucket{stream="other",timestamp_type="create_time",le="0.001"} 7
ferry_end_to_end_latency_seconds_bucket{stream="other",timestamp_type="create_time",le="0.0015"} 7
ferry_end_to_end_latency_seconds_bucket{stream="other",timestamp_type="create_time",le="+Inf"} 7
ferry_end_to_end_latency_seconds_sum{stream="other",timestamp_type="create_time"} 0.007
ferry_end_to_end_latency_seconds_count{stream="other",timestamp_type="create_time"} 7
`

func TestLatencyDelta(t *testing.T) {
	t.Parallel()
	parse := func(le1, le15, inf uint64, sum float64) histogram {
		t.Helper()
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(strings.NewReader(fmt.Sprintf(exposition, le1, le15, inf, sum, inf)))
		if err != nil {
			t.Fatal(err)
		}
		h, err := latencyOf(mfs[latencyMetric], "bench")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h0 := parse(5, 5, 5, 0.004)
	h1 := parse(5, 15, 25, 0.5)
	d := h1.sub(h0)
	if d.count != 20 || math.Abs(d.sum-0.496) > 1e-9 {
		t.Fatalf("delta count %d sum %v, want 20 and 0.496", d.count, d.sum)
	}
	// Ten samples in (1 ms, 1.5 ms], ten above: the median is the top of the second bucket.
	if got := d.quantile(0.5); math.Abs(got-0.0015) > 1e-12 {
		t.Errorf("p50 = %v, want 0.0015", got)
	}
	if got := d.maxLE(); !math.IsInf(got, 1) {
		t.Errorf("maxLE = %v, want +Inf", got)
	}
	if got := h0.maxLE(); got != 0.001 {
		t.Errorf("maxLE of the first scrape = %v, want 0.001", got)
	}
	if got := (histogram{}).sub(histogram{}); got.count != 0 {
		t.Errorf("empty delta count %d", got.count)
	}
}
