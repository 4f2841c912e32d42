package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/ferrylabs/ferry/connector"
)

// A bounded run (ferry run --until) shows its progress: bars on a terminal
// (github.com/vbauerster/mpb), otherwise a log line every --progress-interval.
// The arithmetic (rate, remaining, ETA) is pure and lives in meter.

// rateWindow is how far back the rate looks: long enough to smooth commit
// steps, short enough to follow a change of pace.
const rateWindow = 30 * time.Second

// meter turns progress samples into a rate over the last rateWindow.
type meter struct {
	samples []sample
}

type sample struct {
	at             time.Time
	records, bytes int64
}

// add records a sample; samples must come in time order.
func (m *meter) add(at time.Time, records, bytes int64) {
	m.samples = append(m.samples, sample{at, records, bytes})
	// Keep one sample older than the window, so the rate spans all of it.
	drop := 0
	for drop+1 < len(m.samples) && at.Sub(m.samples[drop+1].at) >= rateWindow {
		drop++
	}
	m.samples = m.samples[drop:]
}

// rate is records and bytes per second between the oldest and newest
// samples; 0 with fewer than two samples or no time between them.
func (m *meter) rate() (records, bytes float64) {
	if len(m.samples) < 2 {
		return 0, 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0, 0
	}
	return float64(last.records-first.records) / secs, float64(last.bytes-first.bytes) / secs
}

// remaining is what is left to do, never negative.
func remaining(done, total int64) int64 { return max(total-done, 0) }

// eta is how long the remaining records take at rate; false when it cannot
// be told (no progress measured yet) and 0 when nothing remains.
func eta(done, total int64, rate float64) (time.Duration, bool) {
	left := remaining(done, total)
	if left == 0 {
		return 0, true
	}
	if rate <= 0 {
		return 0, false
	}
	secs := float64(left) / rate
	if secs > float64(1<<62)/float64(time.Second) {
		return 0, false // centuries: as good as unknown, and no overflow
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Second), true
}

// percent is done of total, 100 for an empty total.
func percent(done, total int64) float64 {
	if total <= 0 {
		return 100
	}
	return min(100, 100*float64(done)/float64(total))
}

// etaString is eta for people: "12s", "1h3m0s", or "unknown".
func etaString(done, total int64, rate float64) string {
	d, ok := eta(done, total, rate)
	if !ok {
		return "unknown"
	}
	return d.String()
}

// mb is bytes in megabytes (10^6), for display.
func mb(bytes int64) float64 { return float64(bytes) / 1e6 }

// isTerminal reports whether w is a terminal with a size: mpb draws
// nothing on a pseudo-terminal of width 0 (one made without a size, as
// script(1) makes with no terminal of its own), so that gets log lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0
}

// topicLine is one topic in a progress log line.
type topicLine struct {
	Records int64 `json:"records"`
	Total   int64 `json:"total"`
	Bytes   int64 `json:"bytes"`
}

func topicLines(p connector.Progress) map[string]topicLine {
	out := make(map[string]topicLine, len(p.Topics))
	for _, t := range p.Topics {
		out[t.Topic] = topicLine{Records: t.Records, Total: t.Total, Bytes: t.Bytes}
	}
	return out
}

// logProgress logs a progress line every interval until ctx ends.
func logProgress(ctx context.Context, log *slog.Logger, src func() connector.Progress, interval time.Duration) {
	var m meter
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			p := src()
			sum := p.Sum()
			m.add(now, sum.Records, sum.Bytes)
			rate, byteRate := m.rate()
			log.Info("bounded run progress", "until", p.Until.String(), "records", sum.Records, "total_records", sum.Total,
				"percent", fmt.Sprintf("%.1f", percent(sum.Records, sum.Total)), "bytes", sum.Bytes,
				"records_per_second", fmt.Sprintf("%.0f", rate), "bytes_per_second", fmt.Sprintf("%.0f", byteRate),
				"eta", etaString(sum.Records, sum.Total, rate), "partitions", sum.Partitions, "topics", topicLines(p))
		}
	}
}

// logSummary logs the line that ends a bounded run.
func logSummary(log *slog.Logger, p connector.Progress) {
	sum := p.Sum()
	// complete is false for a run stopped early (SIGTERM, a fatal error).
	log.Info("bounded run finished", "complete", p.Complete, "until", p.Until.String(), "records", sum.Records, "total_records", sum.Total, "bytes", sum.Bytes,
		"elapsed", p.Elapsed.Round(time.Millisecond).String(), "partitions", sum.Partitions, "topics", topicLines(p))
}

// bars draws a bounded run's progress on a terminal: a line per topic and,
// with several topics, a total. It is also the log's writer meanwhile, so
// that log lines print above the bars instead of through them.
type bars struct {
	p   *mpb.Progress
	out io.Writer

	mu     sync.Mutex // never held by a decorator: mpb calls them from the goroutine SetTotal waits for
	closed bool
	bars   map[string]*mpb.Bar
	meters map[string]*meter

	linesMu sync.Mutex
	lines   map[string]string // the text after each bar
}

// newBars draws on out, a terminal (tests add mpb.WithAutoRefresh to draw
// on a buffer).
func newBars(out io.Writer, opts ...mpb.ContainerOption) *bars {
	opts = append([]mpb.ContainerOption{mpb.WithOutput(out), mpb.WithWidth(40), mpb.WithRefreshRate(200 * time.Millisecond)}, opts...)
	return &bars{
		p:   mpb.New(opts...),
		out: out, bars: map[string]*mpb.Bar{}, meters: map[string]*meter{}, lines: map[string]string{},
	}
}

// Write prints above the bars, or straight out once they are closed.
func (b *bars) Write(p []byte) (int, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if !closed {
		if n, err := b.p.Write(p); err == nil {
			return n, nil
		}
		// The container shut down meanwhile (close is waiting for it).
	}
	return b.out.Write(p)
}

const totalBar = "(all topics)"

// update redraws from a progress snapshot.
func (b *bars) update(now time.Time, p connector.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	rows := p.Topics
	if len(rows) > 1 {
		sum := p.Sum()
		sum.Topic = totalBar
		rows = append([]connector.TopicProgress{sum}, rows...)
	}
	for _, t := range rows {
		bar := b.bars[t.Topic]
		if bar == nil {
			name := t.Topic
			bar = b.p.AddBar(0,
				mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
					b.linesMu.Lock()
					defer b.linesMu.Unlock()
					return b.lines[name]
				})))
			b.bars[t.Topic] = bar
			b.meters[t.Topic] = &meter{}
		}
		m := b.meters[t.Topic]
		m.add(now, t.Records, t.Bytes)
		rate, _ := m.rate()
		line := fmt.Sprintf("%d/%d records  %.1f MB  %.0f rec/s  ETA %s",
			t.Records, t.Total, mb(t.Bytes), rate, etaString(t.Records, t.Total, rate))
		b.linesMu.Lock()
		b.lines[t.Topic] = line
		b.linesMu.Unlock()
		bar.SetTotal(max(t.Total, 1), false)
		bar.SetCurrent(min(t.Records, max(t.Total, 1)))
	}
}

// close completes the bars (or aborts them, for a run stopped early) and
// waits until they are drawn for the last time; the log then writes to the
// terminal directly. A second close does nothing.
func (b *bars) close(p connector.Progress) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	b.update(time.Now(), p)
	b.mu.Lock()
	for _, bar := range b.bars {
		if p.Complete {
			bar.SetTotal(bar.Current(), true)
		} else {
			bar.Abort(false)
		}
	}
	b.mu.Unlock()
	b.p.Wait()
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// drawProgress updates the bars until ctx ends.
func drawProgress(ctx context.Context, b *bars, src func() connector.Progress) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			b.update(now, src())
		}
	}
}
