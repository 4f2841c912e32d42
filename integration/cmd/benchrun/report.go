package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferrylabs/ferry/config"
)

// row is the summary of one variant over its runs.
type row struct {
	v                   variant
	records             int
	ok                  []result // runs without error or n/a
	failed              int
	na                  string
	med, lo, hi         float64 // records/s
	steady              float64 // median steady-state records/s, 0 if none
	delivered           float64 // median records/s until the fast sink had every record, 0 if none
	cpuPerM             float64 // median CPU-seconds per million records
	rssMiB              float64 // median peak RSS
	dups                []int64
	distinctOK          bool
	pctConsume, pctSDK  float64 // -1: no baseline
	baselineC, baseline string
	lat                 *latencySummary // latency variants
}

// latencySummary is a latency variant over its runs.
type latencySummary struct {
	linger           string
	target, achieved float64 // records/s; achieved is the median
	p50, p99, mean   float64 // medians, seconds
	p99lo, p99hi     float64
	maxLE            float64 // the highest over the runs
	samples          float64 // median
	cpuPct           float64 // median
	ackP50, ackP99   float64 // medians, seconds
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(variants []variant, results []result) []row {
	rows := make([]row, 0, len(variants))
	byID := map[string]*row{}
	for _, v := range variants {
		rows = append(rows, row{v: v, distinctOK: true, pctConsume: -1, pctSDK: -1})
	}
	for i := range rows {
		byID[rows[i].v.id] = &rows[i]
	}
	all := map[string][]result{}
	for _, r := range results {
		all[r.variant] = append(all[r.variant], r)
		w := byID[r.variant]
		w.records = r.records
		switch {
		case r.na != "":
			w.na = r.na
		case r.err != "":
			w.failed++
		default:
			w.ok = append(w.ok, r)
		}
	}
	for i := range rows {
		w := &rows[i]
		var rates, steadies, delivs, cpus, rss []float64
		for _, r := range w.ok {
			rates = append(rates, r.perSec())
			if r.steady > 0 {
				steadies = append(steadies, r.steady)
			}
			if r.delivered > 0 {
				delivs = append(delivs, float64(r.records)/r.delivered)
			}
			cpus = append(cpus, r.cpu/float64(r.records)*1e6)
			rss = append(rss, float64(r.rssKiB)/1024)
			if r.distinct >= 0 {
				w.dups = append(w.dups, r.dups)
				w.distinctOK = w.distinctOK && r.distinct == int64(r.records)
			}
		}
		if w.v.kind == "latency" {
			w.lat = summarizeLatency(all[w.v.id], w.ok)
		}
		if len(rates) == 0 {
			continue
		}
		w.med, w.lo, w.hi = median(rates), slices.Min(rates), slices.Max(rates)
		// A median over some of the runs only would mislead: the runs without a figure were short.
		if len(steadies) == len(w.ok) {
			w.steady = median(steadies)
		}
		if len(delivs) == len(w.ok) {
			w.delivered = median(delivs)
		}
		w.cpuPerM, w.rssMiB = median(cpus), median(rss)
	}
	for i := range rows {
		w := &rows[i]
		prefix := ""
		if w.v.dest == "kinesalite" {
			prefix = "kinesalite/"
		}
		w.baselineC, w.baseline = prefix+"consume-only", prefix+"sdk-only"
		if c := byID[w.baselineC]; c != nil && c.med > 0 && w.med > 0 {
			w.pctConsume = 100 * w.med / c.med
		}
		if s := byID[w.baseline]; s != nil && s.med > 0 && w.med > 0 && w.v.kind != "consume" {
			w.pctSDK = 100 * w.med / s.med
		}
	}
	return rows
}

// summarizeLatency takes the linger and target from any run and the figures from the good ones
// (nil if no run got as far as a linger).
func summarizeLatency(all, ok []result) *latencySummary {
	var ach, p50, p99, mean, samples, cpu, ack50, ack99 []float64
	nan := math.NaN()
	s := &latencySummary{maxLE: nan, achieved: nan, p50: nan, p99: nan, mean: nan, p99lo: nan, p99hi: nan, ackP50: nan, ackP99: nan}
	for _, r := range all {
		if r.lat != nil {
			s.linger, s.target = r.lat.linger, r.lat.target
		}
	}
	if s.linger == "" {
		return nil
	}
	for _, r := range ok {
		l := r.lat
		if l == nil {
			continue
		}
		ach, p50, p99 = append(ach, l.achieved), append(p50, l.p50), append(p99, l.p99)
		mean, samples, cpu = append(mean, l.mean), append(samples, float64(l.samples)), append(cpu, l.cpuPct)
		ack50, ack99 = append(ack50, l.ackP50), append(ack99, l.ackP99)
		if math.IsNaN(s.maxLE) || l.maxLE > s.maxLE {
			s.maxLE = l.maxLE
		}
	}
	if len(p50) == 0 {
		return s
	}
	s.achieved, s.p50, s.p99, s.mean = median(ach), median(p50), median(p99), median(mean)
	s.p99lo, s.p99hi = slices.Min(p99), slices.Max(p99)
	s.samples, s.cpuPct = median(samples), median(cpu)
	s.ackP50, s.ackP99 = median(ack50), median(ack99)
	return s
}

// ms formats seconds as milliseconds.
func ms(sec float64) string {
	switch {
	case math.IsNaN(sec):
		return "—"
	case math.IsInf(sec, 1):
		return "+Inf"
	case sec < 0.01:
		return fmt.Sprintf("%.2f", sec*1e3)
	case sec < 0.1:
		return fmt.Sprintf("%.1f", sec*1e3)
	}
	return fmt.Sprintf("%.0f", sec*1e3)
}

var latencyHeaders = []string{"variant", "linger", "target records/s", "produced records/s", "latencies measured",
	"p50 ms", "p99 ms", "max ms (bucket bound)", "mean ms", "produce→ack p50 / p99 ms", "ferry CPU % of a core"}

// latencyCells returns a latency row's cells after the variant name.
func (w row) latencyCells() []string {
	l := w.lat
	if l == nil {
		l = &latencySummary{}
	}
	target := "—"
	if l.target > 0 {
		target = fmtInt(l.target)
	}
	switch {
	case w.na != "":
		return []string{l.linger, target, "n/a", "", "", "", "", "", "", ""}
	case len(w.ok) == 0:
		return []string{l.linger, target, fmt.Sprintf("failed (%d runs)", w.failed), "", "", "", "", "", "", ""}
	}
	p99 := ms(l.p99)
	if len(w.ok) > 1 {
		p99 += " (" + ms(l.p99lo) + "–" + ms(l.p99hi) + ")"
	}
	if w.failed > 0 {
		p99 += fmt.Sprintf(" [%d failed]", w.failed)
	}
	return []string{l.linger, target, fmtInt(l.achieved), fmtInt(l.samples), ms(l.p50), p99,
		"≤ " + ms(l.maxLE), ms(l.mean), ms(l.ackP50) + " / " + ms(l.ackP99), fmt.Sprintf("%.0f", l.cpuPct)}
}

func fmtInt(f float64) string {
	n := int64(f + 0.5)
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// cells returns a row's table cells after the variant name:
// records, records/s (median, min-max), steady, delivered, MB/s, CPU-s/1M, RSS, duplicates,
// % consume, % sdk.
func (w row) cells(valueSize int) []string {
	rec := fmtInt(float64(w.records))
	if w.na != "" {
		return []string{rec, "n/a", "", "", "", "", "", "", "", ""}
	}
	if len(w.ok) == 0 {
		return []string{rec, fmt.Sprintf("failed (%d runs)", w.failed), "", "", "", "", "", "", "", ""}
	}
	rate := fmtInt(w.med)
	if len(w.ok) > 1 {
		rate += " (" + fmtInt(w.lo) + "–" + fmtInt(w.hi) + ")"
	}
	if w.failed > 0 {
		rate += fmt.Sprintf(" [%d failed]", w.failed)
	}
	steady, delivered := "—", "—"
	if w.steady > 0 {
		steady = fmtInt(w.steady)
	}
	if w.delivered > 0 {
		delivered = fmtInt(w.delivered)
	}
	dups := "—"
	if len(w.dups) > 0 {
		var ss []string
		allZero := true
		for _, d := range w.dups {
			ss = append(ss, strconv.FormatInt(d, 10))
			allZero = allZero && d == 0
		}
		dups = strings.Join(ss, "/")
		if allZero {
			dups = "0"
		}
		if !w.distinctOK {
			dups += " (MISSING records)"
		}
	}
	pct := func(p float64) string {
		if p < 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f %%", p)
	}
	return []string{rec, rate, steady, delivered, fmt.Sprintf("%.1f", w.med*float64(valueSize)/1e6),
		fmt.Sprintf("%.2f", w.cpuPerM), fmt.Sprintf("%.0f", w.rssMiB), dups, pct(w.pctConsume), pct(w.pctSDK)}
}

var headers = []string{"variant", "records", "records/s median (min–max)", "steady records/s", "delivered records/s", "MB/s",
	"CPU-s per 1M records", "peak RSS MiB", "duplicates", "% of consume-only", "% of SDK-only"}

func textTable(rows []row, valueSize int) string {
	var sb strings.Builder
	thr, lat := 0, 0
	for _, w := range rows {
		if w.v.kind == "latency" {
			lat++
		} else {
			thr++
		}
	}
	if thr > 0 {
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.Join(headers, "\t")+"\t")
		for _, w := range rows {
			if w.v.kind != "latency" {
				fmt.Fprintln(tw, w.v.id+"\t"+strings.Join(w.cells(valueSize), "\t")+"\t")
			}
		}
		_ = tw.Flush()
	}
	if lat > 0 {
		if thr > 0 {
			sb.WriteString("\n")
		}
		tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.Join(latencyHeaders, "\t")+"\t")
		for _, w := range rows {
			if w.v.kind == "latency" {
				fmt.Fprintln(tw, w.v.id+"\t"+strings.Join(w.latencyCells(), "\t")+"\t")
			}
		}
		_ = tw.Flush()
	}
	for _, w := range rows {
		if w.na != "" {
			fmt.Fprintf(&sb, "%s: n/a: %s\n", w.v.id, w.na)
		}
	}
	return sb.String()
}

func printRun(r result) {
	if l := r.lat; l != nil && r.err == "" {
		fmt.Printf("%-26s run %d: p50 %s ms  p99 %s ms  max ≤ %s ms  mean %s ms  (%d latencies over %.1f s; linger %s; produced %s of %s records/s, %d dropped, produce→ack p50 %s p99 %s ms; ferry CPU %.0f %%)",
			r.variant, r.run, ms(l.p50), ms(l.p99), ms(l.maxLE), ms(l.mean), l.samples, l.window, l.linger,
			fmtInt(l.achieved), fmtInt(l.target), l.dropped, ms(l.ackP50), ms(l.ackP99), l.cpuPct)
		if r.na != "" {
			fmt.Printf("  [n/a: %s]", r.na)
		}
		if len(r.notes) > 0 {
			fmt.Printf("  (%s)", strings.Join(r.notes, "; "))
		}
		fmt.Println()
		return
	}
	switch {
	case r.err != "":
		fmt.Printf("%-26s run %d: FAILED: %s\n", r.variant, r.run, r.err)
		return
	case r.na != "" && r.seconds == 0:
		fmt.Printf("%-26s run %d: n/a: %s\n", r.variant, r.run, r.na)
		return
	}
	dist := ""
	if r.distinct >= 0 {
		dist = fmt.Sprintf("  dups %d  distinct %d/%d", r.dups, r.distinct, r.records)
	}
	steady := "—"
	if r.steady > 0 {
		steady = fmtInt(r.steady)
	}
	if r.delivered > 0 {
		steady += ", delivered " + fmtInt(float64(r.records)/r.delivered)
	}
	fmt.Printf("%-26s run %d: %9s records/s (steady %s)  %6.2f s  CPU %6.2f s  RSS %4d MiB%s", r.variant, r.run,
		fmtInt(r.perSec()), steady, r.seconds, r.cpu, r.rssKiB/1024, dist)
	if r.na != "" {
		fmt.Printf("  [n/a: %s]", r.na)
	}
	if len(r.notes) > 0 {
		fmt.Printf("  (%s)", strings.Join(r.notes, "; "))
	}
	fmt.Println()
}

// machine describes this machine for the document.
func machine(b *bench) [][2]string {
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "unknown"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
					mem = fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
				}
			}
		}
	}
	kernel := "unknown"
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(data))
	}
	java := "unknown"
	if out, err := exec.Command("java", "-version").CombinedOutput(); err == nil {
		java = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	node := "unknown"
	if out, err := exec.Command("node", "--version").Output(); err == nil {
		node = strings.TrimSpace(string(out))
	}
	rev := "unknown"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	cmd.Dir = b.repo
	if out, err := cmd.Output(); err == nil {
		rev = strings.TrimSpace(string(out))
	}
	kl := b.kinesalite
	if kl == "" {
		kl = "not run"
	}
	return [][2]string{
		{"CPUs (nproc)", strconv.Itoa(runtime.NumCPU())},
		{"CPU model", cpu},
		{"memory", mem},
		{"kernel", "Linux " + kernel},
		{"Go", runtime.Version()},
		{"Kafka", b.kafkaVersion + " (single KRaft broker from the Maven jars, " + java + ")"},
		{"kinesalite", kl + " (Node " + node + ", in memory)"},
		{"fast sink", "integration/internal/fastsink in its own process (integration/cmd/fastsink)"},
		{"ferry", rev + " (`go build ./cmd/ferry`, no -race)"},
		{"load average (1, 5, 15 min)", "before: " + b.loadStart + "; after: " + b.loadEnd},
	}
}

func (b *bench) command() string {
	if c := os.Getenv("FERRY_BENCH_COMMAND"); c != "" {
		return c
	}
	return strings.TrimSpace("go run ./integration/cmd/benchrun " + strings.Join(b.o.args, " "))
}

func (b *bench) document(rows []row, results []result) string {
	o := b.o
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("# Benchmarks\n\n")
	w("End-to-end throughput of ferry on one machine, and its latency at a steady load (see Latency),\n")
	w("measured by `make bench` (`scripts/bench.sh`, which runs `integration/cmd/benchrun`). Everything\n")
	w("ran on the machine below at once: the Kafka broker, the destination, the process measured and\n")
	w("benchrun itself. The micro-benchmarks of the packages are `make bench-micro`.\n\n")
	w("- **Date:** %s\n", b.started.UTC().Format("2006-01-02 15:04 UTC"))
	w("- **Command:** `%s`\n", b.command())
	w("- **Workload:** %s records of %d bytes (value {\"id\":KEY,\"v\":\"topic|index|...\"} padded with random letters, no\n", fmtInt(float64(o.records)), o.valueSize)
	w("  compression), keys `key-0` … `key-%d` (%s keys), %d partitions; the kinesalite variants use a\n", o.keys-1, fmtInt(float64(o.keys)), o.partitions)
	w("  second topic of %s records made the same way. Streams have %d shards.\n", fmtInt(float64(o.klRecords)), o.shards)
	w("- **ferry settings:** `delivery.max_in_flight=%d`, `delivery.batch.linger=%s`,\n", o.maxInFlight, o.linger)
	w("  `delivery.buffer_bytes=%s`, `commit.interval=%s`, `delivery.rate_limit.enabled=%v`, log level\n", o.bufferBytes, o.commitInterval, o.rateLimit)
	w("  info; everything else default.\n")
	w("- **Runs:** %d of each variant, interleaved (run 1 of every variant, then run 2, ...).\n\n", o.runs)
	w("## Machine\n\n| | |\n|---|---|\n")
	for _, kv := range machine(b) {
		w("| %s | %s |\n", kv[0], kv[1])
	}
	w("\n## Results\n\n")
	w("| %s |\n", strings.Join(headers, " | "))
	w("|---|%s\n", strings.Repeat("---:|", len(headers)-1))
	for _, r := range rows {
		if r.v.kind != "latency" {
			w("| `%s` | %s |\n", r.v.id, strings.Join(r.cells(o.valueSize), " | "))
		}
	}
	w("\n")
	for _, r := range rows {
		if r.na != "" && r.v.kind != "latency" {
			w("- `%s`: **n/a**: %s.\n", r.v.id, strings.TrimSuffix(r.na, "."))
		}
	}
	w(`
What the variants are:

- `+"`consume-only`"+`: a franz-go group consumer (cooperative-sticky, read_committed, 1 MiB per
  partition as ferry, 50 MiB per fetch where ferry asks for buffer_bytes/32) that only counts the
  records, as its own process. The ceiling for reading the topic.
- `+"`sdk-only`"+`: aws-sdk-go-v2 `+"`PutRecords`"+`, %d records per request, %d requests at a time, as its own
  process, into the fast sink (another process). The records are built on the fly; nothing is
  read from Kafka. The client is set up like ferry's (one attempt, no retry quota, enough idle
  connections, the request body's WriteTo hidden) but keeps the SDK's own protocol, where ferry
  encodes PutRecords with its own codec (`+"`kinesiscodec`"+`). The ceiling for writing with the SDK.
- `+"`ferry/ORDERING`"+`: the ferry binary with `+"`delivery.ordering`"+` key (the default: one record per
  partition key in flight) or none; `+"`+agg`"+` adds `+"`delivery.aggregation.enabled=true`"+` (KPL
  aggregation; the sink unpacks the aggregates and counts the user records inside). ferry's
  pacing (`+"`delivery.rate_limit`"+`, on by default) keeps each shard under Kinesis' write limits of
  1,000 records/s and 1 MiB/s; on a %d-shard stream it would cap ferry at %s records/s and the
  benchmark would measure the cap, not ferry, so it is %s here (`+"`-rate-limit`"+` turns it on).
- `+"`ferry/envelope`"+`, `+"`ferry/json-key`"+`: ferry/key with the route's `+"`format: envelope`"+` (a JSON object
  per record) or `+"`partition_key: json:/id`"+` (the key read from the JSON value), against the raw path.
- `+"`ferry/defaults`"+`: ferry with only brokers, topics, the route and the endpoint set (pacing on,
  as by default), into a sink of `+"`-defaults-shards`"+` shards so that the per-shard limits do not bind.
  The `+"`defaults/*`"+` variants (not in `+"`all`"+`) add one of the tuned settings each.
- `+"`kinesalite/...`"+`: the same into kinesalite, with the smaller topic. Their percentages are of
  `+"`kinesalite/consume-only`"+` (the same small topic) and `+"`kinesalite/sdk-only`"+` (the SDK into
  kinesalite): kinesalite, one Node.js process, is the bottleneck there. With aggregation ferry
  sends far fewer, larger Kinesis records than the unaggregated SDK baseline, so it can exceed
  100 %% of it.

How it is measured:

- **records/s:** records ÷ time. For ferry the time runs from the start of the process until the
  group's committed offsets reach the topic's end offsets (polled every 50 ms with kadm), so it
  includes start-up, the group join, and up to one `+"`commit.interval`"+` of commit lag. ferry commits
  on a timer, so its times come in steps of `+"`commit.interval`"+` (%s) counted from its start: a
  step is a sizeable part of a run of a few seconds. For a baseline the time runs from the start
  of its process until it reports that it is done.
- **steady records/s:** the same, from the first sample at or after 2 s to the end (records
  committed or counted after that sample); "—" when less than 1 s was left.
- **delivered records/s:** ferry into the fast sink only: records ÷ the time from ferry's start
  until the sink had accepted every record (polled every 50 ms), without the commit lag.
- **MB/s:** records/s × the value size, in 10⁶ bytes per second (keys not counted).
- **CPU-s per 1M records:** utime+stime of the process measured (ferry, or the baseline's own
  process), read from /proc just before it is stopped, per million records. Kafka's, the sink's
  and benchrun's CPU are not in it, but they share the same %d CPUs.
- **peak RSS:** VmHWM of that process.
- **duplicates:** records the destination received more than once, per run (the fast sink's
  counters; kinesalite is read back from TRIM_HORIZON). "MISSING records" would mean that fewer
  distinct records than produced arrived; every run also fails on that.
`, o.sdkBatch, o.sdkConcurrency, o.shards, fmtInt(float64(o.shards*1000)), map[bool]string{false: "off", true: "on"}[o.rateLimit], o.commitInterval, runtime.NumCPU())
	b.latencySection(&sb, rows, results)
	w("\n## Raw runs\n\n")
	w("The PutRecords calls and aggregated records in the notes are the destination's counts.\n\n")
	w("| variant | run | records | seconds | records/s | steady records/s | delivered after s | CPU-s | peak RSS MiB | duplicates | distinct | notes |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if r.lat != nil {
			continue // in the latency table below
		}
		notes := slices.Clone(r.notes)
		if r.na != "" {
			notes = append(notes, "n/a: "+r.na)
		}
		if r.err != "" {
			notes = append(notes, "FAILED: "+strings.ReplaceAll(r.err, "\n", " "))
		}
		steady, deliv, dups, dist := "—", "—", "—", "—"
		if r.steady > 0 {
			steady = fmtInt(r.steady)
		}
		if r.delivered > 0 {
			deliv = fmt.Sprintf("%.2f", r.delivered)
		}
		if r.distinct >= 0 {
			dups, dist = strconv.FormatInt(r.dups, 10), fmtInt(float64(r.distinct))
		}
		w("| `%s` | %d | %s | %.2f | %s | %s | %s | %.2f | %d | %s | %s | %s |\n", r.variant, r.run, fmtInt(float64(r.records)),
			r.seconds, fmtInt(r.perSec()), steady, deliv, r.cpu, r.rssKiB/1024, dups, dist, strings.ReplaceAll(strings.Join(notes, "; "), "|", "/"))
	}
	return sb.String()
}

// latencySection writes the document's Latency section and nothing if no latency variant ran.
func (b *bench) latencySection(sb *strings.Builder, rows []row, results []result) {
	o := b.o
	w := func(format string, args ...any) { fmt.Fprintf(sb, format, args...) }
	var lr []row
	for _, r := range rows {
		if r.v.kind == "latency" {
			lr = append(lr, r)
		}
	}
	if len(lr) == 0 {
		return
	}
	maxRec := config.Default().Delivery.Batch.MaxRecords
	rate := fmt.Sprintf("%.0f %% of `ferry/key`'s median records/s above", 100*o.latFraction)
	if o.latRate > 0 {
		rate = "`-latency-rate`"
	}
	w("\n## Latency\n\n")
	w("End-to-end latency at a steady load: %s records/s (%s),\n", fmtInt(b.latRate), rate)
	w("produced for %v to an empty topic of %d partitions (same keys and value size) while ferry\n", o.latDuration, o.partitions)
	w("delivers them into a fresh fast sink; %d run(s) of each variant, after all the others. The\n", o.runs)
	w("table shows medians over the runs (p99 also min–max).\n\n")
	w("| %s |\n", strings.Join(latencyHeaders, " | "))
	w("|---|%s\n", strings.Repeat("---:|", len(latencyHeaders)-1))
	for _, r := range lr {
		w("| `%s` | %s |\n", r.v.id, strings.Join(r.latencyCells(), " | "))
	}
	w("\n")
	for _, r := range lr {
		if r.na != "" {
			w("- `%s`: **n/a**: %s.\n", r.v.id, strings.TrimSuffix(r.na, "."))
		}
	}
	w(`
- `+"`latency/ferry`"+` runs with ferry's default `+"`delivery.batch.linger`"+` (%s): what a user who keeps the
  defaults gets. `+"`latency/ferry+linger`"+` runs with the throughput variants' %s (`+"`-linger`"+`).
  Everything else is as in the throughput variants (ordering key, max_in_flight %d, rate limit %s).
  A batch also goes when it has %d records, and at %s records/s that many arrive every
  %.1f ms: a batch is usually full long before either linger ends. The linger matters at low
  rates.
- **What it measures:** ferry's own histogram `+"`%s`"+`, from the Kafka record's
  timestamp (CreateTime: franz-go stamps it when benchrun calls Produce) to ferry's receipt of
  the PutRecords acknowledgement. It includes the producer's request to the broker (no linger,
  acks=all), the broker's append, ferry's fetch, mapping and batching (the linger above), waiting for a free request slot or for the previous record
  of the same key (ordering key), and the PutRecords round trip to the fast sink on localhost. It
  does not include the offset commit. All the clocks are this machine's, so there is no skew; both
  ends are whole milliseconds.
- **How:** the producer paces itself in 10 ms slices; a backlog of more than five slices is
  dropped, not sent in a burst, and a run counts only if the producer reached %.0f %% of the target
  ("produced records/s"). benchrun reads ferry's `+"`/metrics`"+` %v after the producer starts and
  again when the sink has every record, and estimates p50 and p99 from the bucket differences as
  PromQL's `+"`histogram_quantile`"+` does (linear within a bucket). ferry's buckets grow 1.5× each
  (1 ms to 300 s), so a figure is an estimate within its bucket; "max" is the upper bound of the
  highest bucket with a sample. "produce→ack" is the producer's own view of the Kafka leg, from
  Produce to the broker's acknowledgement, in the same buckets (ferry may fetch a record before
  the producer hears the ack, so it is a guide, not a part to subtract). Kafka, ferry, the sink
  and the producer share the machine's %d CPUs, so CPU contention is part of the figures.
- **Real Kinesis** adds tens of milliseconds per PutRecords round trip (network and Kinesis'
  own processing) to these figures, more when a shard throttles; the fast sink answers in well
  under a millisecond.
`, defaultLinger(), o.linger, o.maxInFlight, map[bool]string{false: "off", true: "on"}[o.rateLimit],
		maxRec, fmtInt(b.latRate), 1e3*float64(maxRec)/max(b.latRate, 1), latencyMetric,
		100*minAchieved, o.latWarmup, runtime.NumCPU())
	w("\nRuns:\n\n")
	w("| variant | run | linger | target records/s | produced records/s | dropped | latencies | window s | p50 ms | p99 ms | max ms | mean ms | produce→ack p50 / p99 ms | ferry CPU %% | duplicates | notes |\n")
	w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if r.lat == nil {
			continue
		}
		notes := slices.Clone(r.notes)
		if r.na != "" {
			notes = append(notes, "n/a: "+r.na)
		}
		if r.err != "" {
			notes = append(notes, "FAILED: "+strings.ReplaceAll(r.err, "\n", " "))
		}
		l := r.lat
		dups := "—"
		if r.distinct >= 0 {
			dups = strconv.FormatInt(r.dups, 10)
		}
		w("| `%s` | %d | %s | %s | %s | %s | %s | %.1f | %s | %s | ≤ %s | %s | %s / %s | %.0f | %s | %s |\n", r.variant, r.run, l.linger,
			fmtInt(l.target), fmtInt(l.achieved), fmtInt(float64(l.dropped)), fmtInt(float64(l.samples)), l.window, ms(l.p50), ms(l.p99),
			ms(l.maxLE), ms(l.mean), ms(l.ackP50), ms(l.ackP99), l.cpuPct, dups, strings.ReplaceAll(strings.Join(notes, "; "), "|", "/"))
	}
}
