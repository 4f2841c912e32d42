// Command benchrun is ferry's end-to-end benchmark (make bench). On this machine it starts a real
// Kafka broker (and kinesalite), produces the records once, and then measures, run after run:
//
//   - consume-only: a franz-go group consumer that only counts, the ceiling for anything that
//     reads the topic;
//   - sdk-only: aws-sdk-go-v2 PutRecords, 500 records per request, 64 requests at a time, into
//     the fast sink (its own process) - the ceiling for anything that writes with the SDK;
//   - ferry/ORDERING[+agg]: the ferry binary into the fast sink, with delivery.ordering key or
//     none and delivery.aggregation off or on;
//   - kinesalite/...: the same three into kinesalite, with fewer records (-kinesalite-records);
//   - latency/ferry[+linger]: after all of those, ferry (ordering key) into the fast sink while
//     benchrun produces to an empty topic at a steady -latency-fraction of ferry/key's median rate
//     for -latency-duration; p50/p99 of ferry's ferry_end_to_end_latency_seconds histogram over
//     that time (see latency.go). latency/ferry keeps ferry's default delivery.batch.linger,
//     +linger uses -linger as the throughput variants do.
//
// ferry's time runs from its start until the group's committed offsets reach the end offsets
// (polled every 50 ms); a baseline's until it reports that it is done. CPU is the process's
// utime+stime and memory its VmHWM, both read from /proc before it is stopped. The duplicates and
// the distinct count come from the fast sink's counters, or from reading the kinesalite stream
// back. Variants run interleaved (run 1 of every variant, then run 2, ...), each with a fresh
// consumer group, sink process or stream.
//
//	go run ./integration/cmd/benchrun [-records 1000000] [-runs 3] [-variants ferry/*] [-write-doc]
//
// Every process it starts (Kafka, kinesalite, the sinks, ferry, its own baseline children) is
// stopped on exit and on SIGINT/SIGTERM; if benchrun is killed, they die within a second
// (Pdeathsig and FERRY_TEST_WATCH_PID).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	records, klRecords, runs    int
	partitions, keys, valueSize int
	shards                      int
	variants                    string
	skipKinesalite, writeDoc    bool
	doc                         string
	maxInFlight                 int
	linger, commitInterval      time.Duration
	bufferBytes                 string
	defaultsShards              int
	sdkConcurrency, sdkBatch    int
	runTimeout                  time.Duration
	keep                        bool
	ferryBin                    string
	rateLimit                   bool
	latRate, latFraction        float64
	latDuration, latWarmup      time.Duration
	args                        []string
}

func main() {
	var o options
	var ca childArgs
	mode := flag.String("mode", "", "internal: run as the consume or sdk baseline child")
	flag.IntVar(&o.records, "records", 1_000_000, "records in the main topic (consume-only, sdk-only and ferry into the fast sink)")
	flag.IntVar(&o.klRecords, "kinesalite-records", 100_000, "records in the kinesalite topic (kinesalite/* variants)")
	flag.IntVar(&o.runs, "runs", 3, "runs of every variant (the table shows medians)")
	flag.IntVar(&o.partitions, "partitions", 12, "partitions of each topic")
	flag.IntVar(&o.keys, "keys", 10_000, "distinct Kafka keys (key-0 ... key-N-1)")
	flag.IntVar(&o.valueSize, "value-size", 256, "bytes per record value")
	flag.IntVar(&o.shards, "shards", 4, "shards of the Kinesis stream (fast sink and kinesalite)")
	flag.IntVar(&o.defaultsShards, "defaults-shards", 1024, "shards of ferry/defaults' sink: enough that pacing at Kinesis' per-shard limits (on by default) does not bind")
	flag.StringVar(&o.variants, "variants", "all", "comma-separated variants or patterns (path.Match, e.g. ferry/*); all: "+strings.Join(variantIDs(), ","))
	flag.BoolVar(&o.skipKinesalite, "skip-kinesalite", false, "leave out the kinesalite/* variants (and kinesalite)")
	flag.BoolVar(&o.writeDoc, "write-doc", false, "write the results to -doc")
	flag.StringVar(&o.doc, "doc", "docs/benchmarks.md", "document written by -write-doc (relative to the repository root)")
	flag.IntVar(&o.maxInFlight, "max-in-flight", 64, "ferry delivery.max_in_flight")
	flag.DurationVar(&o.linger, "linger", 20*time.Millisecond, "ferry delivery.batch.linger")
	flag.StringVar(&o.bufferBytes, "buffer-bytes", "256MiB", "ferry delivery.buffer_bytes")
	flag.DurationVar(&o.commitInterval, "commit-interval", 100*time.Millisecond, "ferry commit.interval (its timer quantizes ferry's times: 500ms steps were a fifth of a 2.5 s run)")
	flag.IntVar(&o.sdkConcurrency, "sdk-concurrency", 64, "concurrent PutRecords calls of sdk-only")
	flag.IntVar(&o.sdkBatch, "sdk-batch", 500, "records per PutRecords call of sdk-only")
	flag.DurationVar(&o.runTimeout, "run-timeout", 10*time.Minute, "give up on a run after this long")
	flag.BoolVar(&o.rateLimit, "rate-limit", false, "ferry delivery.rate_limit.enabled: pace to Kinesis' per-shard limits (1,000 records/s and 1 MiB/s per shard), which then bound the throughput")
	flag.Float64Var(&o.latRate, "latency-rate", 0, "records/s the latency/* variants produce (0: -latency-fraction of ferry/key's median records/s, which is then run even if not selected)")
	flag.Float64Var(&o.latFraction, "latency-fraction", 0.5, "share of ferry/key's median records/s the latency/* variants produce")
	flag.DurationVar(&o.latDuration, "latency-duration", 15*time.Second, "how long the latency/* variants produce")
	flag.DurationVar(&o.latWarmup, "latency-warmup", 3*time.Second, "latency/*: the histogram counts from this long after the producer starts")
	flag.StringVar(&o.ferryBin, "ferry", "", "use this ferry binary instead of building ./cmd/ferry")
	flag.BoolVar(&o.keep, "keep", false, "keep the working folder (logs, Kafka data) even on success")
	// Child mode flags.
	flag.StringVar(&ca.brokers, "brokers", "", "internal (child): seed brokers")
	flag.StringVar(&ca.topic, "topic", "", "internal (child): topic")
	flag.StringVar(&ca.group, "group", "", "internal (child): consumer group")
	flag.StringVar(&ca.endpoint, "endpoint", "", "internal (child): Kinesis endpoint")
	flag.StringVar(&ca.stream, "stream", "", "internal (child): stream")
	flag.StringVar(&ca.prefix, "prefix", "", "internal (child): record id prefix")
	flag.IntVar(&ca.n, "n", 0, "internal (child): records")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "benchrun: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	o.args = os.Args[1:]
	ca.keys, ca.valueSize, ca.concurrency, ca.per = o.keys, o.valueSize, o.sdkConcurrency, o.sdkBatch

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	switch *mode {
	case "consume":
		err = consumeMain(ctx, ca)
	case "sdk":
		err = sdkMain(ctx, ca)
	case "":
		err = run(ctx, o)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	interrupted := ctx.Err() != nil
	stop()
	killAll()
	if err != nil {
		if interrupted {
			fmt.Fprintln(os.Stderr, "benchrun: interrupted; everything it started is stopped")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

// variant is one thing measured.
type variant struct {
	id       string
	kind     string // consume, sdk, ferry or latency
	dest     string // sink or kinesalite: the topic (latency: its own) and the destination
	ordering string // ferry: key or none
	agg      bool   // ferry: delivery.aggregation.enabled
	throttle int    // sink: throttle one entry in throttle (0: none)
	linger   bool   // latency: -linger; otherwise ferry's default delivery.batch.linger
	// route is extra YAML for ferry's route (format, partition_key), for the mapping variants.
	route string
	// defaults: ferry with only brokers, topics, routes and the endpoint set, into a sink of
	// -defaults-shards shards, pacing on (ferry's default).
	defaults bool
	sets     []string // defaults: --set flags on top (the defaults/* sweep)
}

func allVariants() []variant {
	var vs []variant
	for _, dest := range []string{"sink", "kinesalite"} {
		prefix := ""
		if dest == "kinesalite" {
			prefix = "kinesalite/"
		}
		vs = append(vs,
			variant{id: prefix + "consume-only", kind: "consume", dest: dest},
			variant{id: prefix + "sdk-only", kind: "sdk", dest: dest})
		for _, agg := range []bool{false, true} {
			for _, ord := range []string{"key", "none"} {
				id := prefix + "ferry/" + ord
				if agg {
					id += "+agg"
				}
				vs = append(vs, variant{id: id, kind: "ferry", dest: dest, ordering: ord, agg: agg})
			}
		}
		if dest == "sink" {
			// The mapping paths against the raw one (ferry/key), and ferry as a new user runs it.
			vs = append(vs,
				variant{id: "ferry/envelope", kind: "ferry", dest: dest, ordering: "key", route: "format: envelope"},
				variant{id: "ferry/json-key", kind: "ferry", dest: dest, ordering: "key", route: "partition_key: json:/id"},
				variant{id: "ferry/defaults", kind: "ferry", dest: dest, ordering: "key", defaults: true})
			// ferry/defaults with one tuned setting each: which default costs what. Not in "all".
			for _, sw := range defaultsSweep {
				vs = append(vs, variant{id: "defaults/" + sw[0], kind: "ferry", dest: dest, ordering: "key", defaults: true,
					sets: strings.Split(sw[1], " ")})
			}
			// 1 % of the entries throttled, as a busy shard answers.
			for _, ord := range []string{"key", "none"} {
				vs = append(vs, variant{id: "ferry/" + ord + "+throttle1%", kind: "ferry", dest: dest, ordering: ord, throttle: 100})
			}
		}
	}
	// Last, so that ferry/key's rate is known when they run (run depends on this order).
	vs = append(vs,
		variant{id: "latency/ferry", kind: "latency", dest: "sink", ordering: "key"},
		variant{id: "latency/ferry+linger", kind: "latency", dest: "sink", ordering: "key", linger: true})
	return vs
}

// defaultsSweep is the defaults/* variants: a name and the --set flags (space-separated) it adds
// to ferry/defaults, each one of the tuned variants' settings.
var defaultsSweep = [][2]string{
	{"in-flight-64", "delivery.max_in_flight=64"},
	{"linger-20ms", "delivery.batch.linger=20ms"},
	{"buffer-256MiB", "delivery.buffer_bytes=256MiB"},
	{"commit-100ms", "commit.interval=100ms"},
	{"no-pacing", "delivery.rate_limit.enabled=false"},
	{"tuned", "delivery.max_in_flight=64 delivery.batch.linger=20ms delivery.buffer_bytes=256MiB commit.interval=100ms delivery.rate_limit.enabled=false"},
}

func variantIDs() []string {
	var ids []string
	for _, v := range allVariants() {
		ids = append(ids, v.id)
	}
	return ids
}

// selectVariants returns the variants -variants names, in the canonical order.
func selectVariants(o options) ([]variant, error) {
	var pats []string
	for p := range strings.SplitSeq(o.variants, ",") {
		if p = strings.TrimSpace(p); p != "" {
			pats = append(pats, p)
		}
	}
	var out []variant
	used := map[string]bool{}
	for _, v := range allVariants() {
		if o.skipKinesalite && v.dest == "kinesalite" {
			continue
		}
		for _, p := range pats {
			ok, err := path.Match(p, v.id)
			if err != nil {
				return nil, fmt.Errorf("-variants: bad pattern %q: %w", p, err)
			}
			if ok || (p == "all" && !strings.HasPrefix(v.id, "defaults/")) {
				out = append(out, v)
				used[p] = true
				break
			}
		}
	}
	for _, p := range pats {
		if !used[p] && (!o.skipKinesalite || !strings.HasPrefix(p, "kinesalite")) {
			return nil, fmt.Errorf("-variants: %q matches no variant (have %s)", p, strings.Join(variantIDs(), ", "))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-variants: nothing to run")
	}
	// The latency variants produce at a share of ferry/key's rate: measure it unless -latency-rate
	// gives the rate.
	hasKey, hasLat := false, false
	for _, v := range out {
		hasKey = hasKey || v.id == "ferry/key"
		hasLat = hasLat || v.kind == "latency"
	}
	if hasLat && !hasKey && o.latRate <= 0 {
		var with []variant
		for _, v := range allVariants() {
			if v.id == "ferry/key" || slices.ContainsFunc(out, func(w variant) bool { return w.id == v.id }) {
				with = append(with, v)
			}
		}
		out = with
	}
	return out, nil
}
