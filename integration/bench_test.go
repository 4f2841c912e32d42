//go:build integration

package integration

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// BenchmarkEndToEndKinesalite measures the ferry binary moving
// FERRY_TEST_BENCH_RECORDS (default 100,000) records of 256 bytes from 12 Kafka
// partitions into a 4-shard kinesalite stream: from ferry's start until every
// offset is committed. Each iteration uses a fresh group and stream on the
// same topic. Run it with:
//
//	go test -tags integration -run '^$' -bench EndToEndKinesalite -benchtime 3x ./integration/
func BenchmarkEndToEndKinesalite(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("FERRY_TEST_BENCH_RECORDS")); err == nil && v > 0 {
		n = v
	}
	e := newEnv(b, harness.KindKinesalite, 1, 12, 4)
	e.produce(n, 10_000, 256)
	b.ResetTimer()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		e.group = "bench-" + strconv.Itoa(i) + "-" + e.name
		e.stream = e.group
		if err := harness.CreateStream(b.Context(), e.kc, e.stream, 4); err != nil {
			b.Fatal(err)
		}
		cfg := e.config("  max_in_flight: 32\n")
		b.StartTimer()
		start := time.Now()
		p := e.start(cfg, "ferry-bench-"+strconv.Itoa(i), "observability.log_level=info", "kinesis.endpoint="+e.kin.Endpoint())
		e.waitCommitted(-1, 10*time.Minute, p)
		total += time.Since(start)
		b.StopTimer()
		e.stop(p)
		b.StartTimer()
	}
	secs := total.Seconds() / float64(b.N)
	b.ReportMetric(float64(n)/secs, "records/s")
	b.ReportMetric(float64(n)*256/secs/(1<<20), "MB/s")
}
