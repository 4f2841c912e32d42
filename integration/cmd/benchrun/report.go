package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
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
	for _, r := range results {
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
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(headers, "\t")+"\t")
	for _, w := range rows {
		fmt.Fprintln(tw, w.v.id+"\t"+strings.Join(w.cells(valueSize), "\t")+"\t")
	}
	_ = tw.Flush()
	for _, w := range rows {
		if w.na != "" {
			fmt.Fprintf(&sb, "%s: n/a: %s\n", w.v.id, w.na)
		}
	}
	return sb.String()
}

func printRun(r result) {
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
	w("End-to-end throughput of ferry on one machine, measured by `make bench` (`scripts/bench.sh`,\n")
	w("which runs `integration/cmd/benchrun`). Everything ran on the machine below at once: the Kafka\n")
	w("broker, the destination, the process measured and benchrun itself. The micro-benchmarks of the\n")
	w("packages are `make bench-micro`.\n\n")
	w("- **Date:** %s\n", b.started.UTC().Format("2006-01-02 15:04 UTC"))
	w("- **Command:** `%s`\n", b.command())
	w("- **Workload:** %s records of %d bytes (value \"topic|index|\" padded with random letters, no\n", fmtInt(float64(o.records)), o.valueSize)
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
		w("| `%s` | %s |\n", r.v.id, strings.Join(r.cells(o.valueSize), " | "))
	}
	w("\n")
	for _, r := range rows {
		if r.na != "" {
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
	w("\n## Raw runs\n\n")
	w("The PutRecords calls and aggregated records in the notes are the destination's counts.\n\n")
	w("| variant | run | records | seconds | records/s | steady records/s | delivered after s | CPU-s | peak RSS MiB | duplicates | distinct | notes |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
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
