//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/faultproxy"
	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// (1) Several topics and partitions, keyed records, no faults: every record
// arrives exactly once with its Kafka key as partition key, and the group's
// committed offsets reach the end of every partition. kinesis-mock, for API
// fidelity.
func TestEndToEndExactlyOnce(t *testing.T) {
	e := newEnv(t, harness.KindMock, 3, 6, 4)
	produced := e.produce(scale(3000), 200, 128)
	// Rate limiting on, as in production: 3,000 records over 4 shards is
	// well within 1,000 records/s per shard.
	p := e.start(e.config(""), "ferry", "delivery.rate_limit.enabled=true")
	e.waitCommitted(-1, 2*time.Minute, p)
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, p, path); code != 200 {
			t.Errorf("%s = %d %s", path, code, body)
		}
	}
	_, metrics := httpGet(t, p, "/metrics")
	if got := metric(metrics, "ferry_records_delivered_total"); got != float64(len(produced)) {
		t.Errorf("ferry_records_delivered_total = %v, want %d", got, len(produced))
	}
	if got := metric(metrics, "ferry_kinesis_sdk_resends_total"); got != 0 {
		t.Errorf("the AWS SDK re-sent %v PutRecords on its own", got)
	}
	e.stop(p)
	r := e.readBack(produced)
	assertNoLoss(t, r)
	if len(r.dups) > 0 || r.read != r.produced {
		t.Fatalf("want exactly once: %s", r)
	}
	if st := e.proxy.Stats(); st.LimitViolations > 0 {
		t.Fatalf("%d requests broke a Kinesis limit", st.LimitViolations)
	}
}

// (5) Partial failures (per-entry throttling and InternalFailure inside 200
// responses), request-level throttling and 503s: nothing lost and, since the
// failed entries were never stored, nothing written twice.
func TestPartialFailuresAndThrottling(t *testing.T) {
	e := newEnv(t, harness.KindMock, 2, 3, 2)
	produced := e.produce(scale(2000), 100, 128)
	e.proxy.SetEntryFailer(func(en faultproxy.Entry) (string, bool) {
		switch en.Index % 7 {
		case 1:
			return "ProvisionedThroughputExceededException", true
		case 4:
			return "InternalFailure", true
		}
		return "", false
	})
	e.proxy.SetSeed(7) // the same faults every run
	e.proxy.SetThrottle(0.2)
	e.proxy.SetServerErrors(0.1, 503)
	p := e.start(e.config(""), "ferry", "delivery.retry.initial=10ms", "delivery.retry.max=200ms",
		"delivery.batch.max_records=100")
	e.waitCommitted(-1, 3*time.Minute, p)
	_, metrics := httpGet(t, p, "/metrics")
	for _, code := range []string{"ProvisionedThroughputExceededException", "InternalFailure"} {
		if metric(metrics, "ferry_delivery_errors_total", `code="`+code+`"`) == 0 {
			t.Errorf("ferry_delivery_errors_total has no %s samples", code)
		}
	}
	if got := metric(metrics, "ferry_kinesis_sdk_resends_total"); got != 0 {
		t.Errorf("the AWS SDK re-sent %v PutRecords on its own", got)
	}
	e.stop(p)
	st := e.proxy.Stats()
	t.Logf("proxy: %+v", st)
	if st.EntriesFailed == 0 || st.Throttled == 0 || st.ServerErrors == 0 {
		t.Fatalf("faults were not injected: %+v", st)
	}
	if st.LimitViolations > 0 {
		t.Fatalf("%d requests broke a Kinesis limit", st.LimitViolations)
	}
	r := e.readBack(produced)
	assertNoLoss(t, r)
	if len(r.dups) > 0 {
		t.Fatalf("partial failures caused %d duplicates", len(r.dups))
	}
}

// (6) A record over the record limit, under each delivery.on_invalid policy.
func TestOversizedRecord(t *testing.T) {
	for _, policy := range []string{"fail", "skip", "dlq", "dlq-unwritable"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t, harness.KindMock, 1, 1, 1)
			dlq := e.topics[0] + ".dlq"
			if policy != "dlq-unwritable" {
				if err := harness.CreateTopic(t.Context(), e.brokers, dlq, 1); err != nil {
					t.Fatal(err)
				}
			}
			recs := []*kgo.Record{}
			for i := range 20 {
				v := fmt.Appendf(nil, "%s|%d|", e.topics[0], i)
				if i == 10 {
					v = append(v, make([]byte, 100<<10)...) // over the 64 KiB limit set below
				}
				recs = append(recs, &kgo.Record{Topic: e.topics[0], Key: []byte("k"), Value: v})
			}
			produced, err := harness.Produce(t.Context(), e.brokers, recs)
			if err != nil {
				t.Fatal(err)
			}
			p := e.start(e.config(""), "ferry", "delivery.max_record_bytes=64KiB",
				"delivery.on_invalid="+strings.TrimSuffix(policy, "-unwritable"), "delivery.dlq_topic="+dlq)
			if policy == "fail" || policy == "dlq-unwritable" {
				// fail: the policy stops ferry. dlq-unwritable: the dead-letter
				// topic does not exist, and a record that can go neither to
				// Kinesis nor to the DLQ must stop ferry, never vanish.
				code, err := p.Wait(time.Minute)
				if err != nil || code == 0 {
					t.Fatalf("%s: exit %d, %v; want a non-zero exit", policy, code, err)
				}
				want := map[string]string{"fail": "max_record_bytes", "dlq-unwritable": "dead-letter write"}[policy]
				if !strings.Contains(p.Tail(), want) {
					t.Fatalf("the error does not explain the oversized record (%q):\n%s", want, p.Tail())
				}
				if c := e.committed()[e.topics[0]][0]; c > 10 {
					t.Fatalf("committed offset %d is past the oversized record at offset 10", c)
				}
				return
			}
			e.waitCommitted(-1, time.Minute, p)
			_, metrics := httpGet(t, p, "/metrics")
			if got := metric(metrics, "ferry_invalid_records_total", `policy="`+policy+`"`); got != 1 {
				t.Errorf("ferry_invalid_records_total{policy=%q} = %v, want 1", policy, got)
			}
			e.stop(p)
			r := e.readBack(produced)
			if len(r.lost) != 1 || r.lost[0].Offset != 10 || r.read != 19 {
				t.Fatalf("want all records but offset 10 in Kinesis: %s", r)
			}
			if policy == "skip" {
				if !strings.Contains(readFile(t, p.LogPath()), "skipping a record Kinesis cannot take") {
					t.Fatal("skip was not logged")
				}
				return
			}
			dl := consumeTopic(t, e.brokers, dlq, 1)
			h := map[string]string{}
			for _, kv := range dl[0].Headers {
				h[kv.Key] = string(kv.Value)
			}
			if len(dl[0].Value) != len(produced[10].Value) || h["ferry.source.topic"] != e.topics[0] ||
				h["ferry.source.offset"] != "10" || h["ferry.error.class"] == "" || h["ferry.error.message"] == "" {
				t.Fatalf("dead-letter record: %d bytes, headers %v", len(dl[0].Value), h)
			}
		})
	}
}

// (7) Invalid configurations exit non-zero within a second, before joining
// any group, and name every bad field.
func TestInvalidConfig(t *testing.T) {
	bin := harness.BuildBinary(t, "./cmd/ferry")
	tests := []struct {
		name   string
		yaml   string
		fields []string
	}{
		{name: "batch over the PutRecords limit", yaml: `
kafka: {brokers: ["127.0.0.1:1"], topics: [a]}
kinesis: {region: us-east-1}
routes: [{topics: [a], stream: s}]
delivery: {batch: {max_records: 900}}
`, fields: []string{"delivery.batch.max_records", "900"}},
		{name: "unknown key", yaml: `
kafka: {brokers: ["127.0.0.1:1"], topics: [a], brokerz: x}
kinesis: {region: us-east-1}
routes: [{topics: [a], stream: s}]
`, fields: []string{"kafka.brokerz"}},
		{name: "every problem at once", yaml: `
kafka: {brokers: ["nonsense"], topics: [a]}
kinesis: {}
routes: [{topics: [b], stream: ""}]
delivery: {retry: {initial: -1s}, on_invalid: dlq}
`, fields: []string{"kafka.brokers", "kinesis.region", "routes[0].stream", "delivery.retry.initial",
			"delivery.dlq_topic", `topic "a" matches no route`}},
		{name: "no routes", yaml: `
kafka: {brokers: ["127.0.0.1:1"], topics: [a]}
kinesis: {region: us-east-1}
`, fields: []string{"routes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			p, err := harness.Start(t.Context(), bin, []string{"run", "--config", path}, os.Environ(),
				filepath.Join(t.TempDir(), "ferry.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			code, err := p.Wait(5 * time.Second)
			took := time.Since(start)
			if err != nil || code == 0 {
				t.Fatalf("exit %d, %v; want non-zero", code, err)
			}
			if took > time.Second {
				t.Errorf("took %s to reject the config, want under 1s", took)
			}
			out := p.Tail()
			for _, f := range tc.fields {
				if !strings.Contains(out, f) {
					t.Errorf("output does not name %q:\n%s", f, out)
				}
			}
		})
	}
}

// ferry check reports on a working setup and fails on a missing stream.
func TestCheckCommand(t *testing.T) {
	e := newEnv(t, harness.KindMock, 1, 2, 1)
	cfg := e.config("")
	run := func(sets ...string) (int, string) {
		args := []string{"check", "--config", cfg}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		p, err := harness.Start(t.Context(), e.bin, args, os.Environ(), filepath.Join(t.TempDir(), "check.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		code, err := p.Wait(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return code, p.Tail()
	}
	if code, out := run(); code != 0 || !strings.Contains(out, "all checks passed") {
		t.Fatalf("check on a good setup: exit %d\n%s", code, out)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	body := strings.ReplaceAll(readFile(t, cfg), "stream: "+e.stream, "stream: no-such-stream")
	if err := os.WriteFile(missing, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = missing
	if code, out := run(); code == 0 || !strings.Contains(out, "no-such-stream") {
		t.Fatalf("check with a missing stream: exit %d\n%s", code, out)
	}
}

// The aws-sdk-go-v2 resend hazard: a request Kinesis stored whose answer is
// lost (500 after storing, or the connection dropped). ferry must re-send it
// (at-least-once), must count it as ambiguous, and the SDK must never re-send
// anything behind ferry's back. Duplicates are bounded by the batches hit.
func TestAmbiguousFailuresAreCounted(t *testing.T) {
	for _, how := range []string{faultproxy.Ambiguous500, faultproxy.AmbiguousReset} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, harness.KindKinesalite, 1, 3, 2)
			produced := e.produce(scale(3000), 100, 128)
			e.proxy.SetSeed(11)
			e.proxy.SetAmbiguous(0.2, how)
			p := e.start(e.config(""), "ferry", "delivery.batch.max_records=100")
			e.waitCommitted(-1, 3*time.Minute, p)
			_, metrics := httpGet(t, p, "/metrics")
			e.stop(p)
			st := e.proxy.Stats()
			r := e.readBack(produced)
			assertNoLoss(t, r)
			ambiguous := metric(metrics, "ferry_ambiguous_resends_total")
			t.Logf("ambiguous requests %d, records re-sent as ambiguous %v, duplicates %d", st.Ambiguous, ambiguous, len(r.dups))
			if st.Ambiguous == 0 || ambiguous == 0 {
				t.Fatalf("no ambiguous failure happened or none was counted: proxy %d, metric %v", st.Ambiguous, ambiguous)
			}
			if sdk := metric(metrics, "ferry_kinesis_sdk_resends_total"); sdk != 0 {
				t.Fatalf("the SDK re-sent %v requests on its own", sdk)
			}
			if float64(len(r.dups)) > ambiguous || len(r.dups) > int(st.Ambiguous)*100 {
				t.Fatalf("%d duplicates, more than the %v records of the ambiguous requests", len(r.dups), ambiguous)
			}
		})
	}
}
