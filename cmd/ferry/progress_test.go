package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"

	"github.com/ferrylabs/ferry/connector"
)

func TestMeterRate(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000, 0)
	tests := []struct {
		name          string
		samples       []sample
		records, byts float64
	}{
		{name: "no samples"},
		{name: "one sample", samples: []sample{{t0, 10, 100}}},
		{name: "no time between", samples: []sample{{t0, 10, 100}, {t0, 20, 200}}},
		{name: "steady", samples: []sample{{t0, 0, 0}, {t0.Add(time.Second), 100, 1000}, {t0.Add(2 * time.Second), 200, 2000}}, records: 100, byts: 1000},
		{
			name: "only the last window counts",
			samples: []sample{
				{t0, 0, 0}, {t0.Add(10 * time.Second), 10_000, 0},
				{t0.Add(40 * time.Second), 10_300, 0}, {t0.Add(50 * time.Second), 10_400, 0},
			},
			// The window keeps the 10 s sample (one older than 30 s before 50 s): 400 in 40 s.
			records: 10,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var m meter
			for _, s := range tc.samples {
				m.add(s.at, s.records, s.bytes)
			}
			r, b := m.rate()
			if math.Abs(r-tc.records) > 1e-9 || math.Abs(b-tc.byts) > 1e-9 {
				t.Fatalf("rate() = %v, %v; want %v, %v", r, b, tc.records, tc.byts)
			}
		})
	}
}

func TestETA(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		done, total int64
		rate        float64
		want        time.Duration
		ok          bool
		str         string
	}{
		{name: "done", done: 10, total: 10, rate: 0, want: 0, ok: true, str: "0s"},
		{name: "past the total", done: 12, total: 10, rate: 5, want: 0, ok: true, str: "0s"},
		{name: "no rate yet", done: 0, total: 10, rate: 0, ok: false, str: "unknown"},
		{name: "steady", done: 100, total: 1100, rate: 100, want: 10 * time.Second, ok: true, str: "10s"},
		{name: "rounded", done: 0, total: 10, rate: 3, want: 3 * time.Second, ok: true, str: "3s"},
		{name: "too slow to tell", done: 0, total: math.MaxInt64, rate: 1e-9, ok: false, str: "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := eta(tc.done, tc.total, tc.rate)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("eta(%d, %d, %v) = %v, %v; want %v, %v", tc.done, tc.total, tc.rate, got, ok, tc.want, tc.ok)
			}
			if s := etaString(tc.done, tc.total, tc.rate); s != tc.str {
				t.Fatalf("etaString = %q, want %q", s, tc.str)
			}
		})
	}
}

func TestRemainingAndPercent(t *testing.T) {
	t.Parallel()
	if remaining(3, 10) != 7 || remaining(11, 10) != 0 {
		t.Fatal("remaining")
	}
	if percent(5, 10) != 50 || percent(0, 0) != 100 || percent(20, 10) != 100 {
		t.Fatal("percent")
	}
}

// The non-terminal progress line and the summary carry the numbers and one
// entry per topic.
func TestProgressLogLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	p := connector.Progress{
		Until: connector.Until{Kind: connector.UntilEnd}, Elapsed: 3 * time.Second, Complete: true,
		Topics: []connector.TopicProgress{{Topic: "a", Partitions: 2, Records: 10, Total: 10, Bytes: 100}, {Topic: "b", Partitions: 1, Records: 5, Total: 5, Bytes: 50}},
	}
	ctx, cancel := contextWithTimeout(t, 120*time.Millisecond)
	defer cancel()
	logProgress(ctx, log, func() connector.Progress { return p }, 20*time.Millisecond)
	logSummary(log, p)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want progress lines and a summary, got:\n%s", buf.String())
	}
	var prog, sum struct {
		Msg      string                     `json:"msg"`
		Complete bool                       `json:"complete"`
		Records  int64                      `json:"records"`
		Total    int64                      `json:"total_records"`
		Bytes    int64                      `json:"bytes"`
		Topics   map[string]json.RawMessage `json:"topics"`
		Elapsed  string                     `json:"elapsed"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &prog); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	if prog.Msg != "bounded run progress" || prog.Records != 15 || prog.Total != 15 || prog.Bytes != 150 || len(prog.Topics) != 2 {
		t.Errorf("progress line %s", lines[0])
	}
	if sum.Msg != "bounded run finished" || !sum.Complete || sum.Records != 15 || sum.Elapsed != "3s" || len(sum.Topics) != 2 {
		t.Errorf("summary line %s", lines[len(lines)-1])
	}
}

// The bars take writes while they draw and after they close.
func TestBarsWriteAndClose(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	b := newBars(&out, mpb.WithAutoRefresh())
	p := connector.Progress{Topics: []connector.TopicProgress{{Topic: "a", Records: 1, Total: 2}, {Topic: "b", Records: 2, Total: 2}}}
	b.update(time.Now(), p)
	if _, err := b.Write([]byte("a log line\n")); err != nil {
		t.Fatal(err)
	}
	p.Complete = true
	p.Topics[0].Records = 2
	b.close(p)
	b.close(p)
	if _, err := b.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"a log line", "after", totalBar, "2/2 records"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(t.Context(), d)
}

// syncBuffer is a bytes.Buffer safe for the bars' goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "not-a-terminal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(&bytes.Buffer{}) || isTerminal(f) {
		t.Fatal("a buffer or a regular file taken for a terminal")
	}
}
