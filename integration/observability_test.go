//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/faultproxy"
	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// The monitoring files ferry ships, relative to the repository root.
const (
	dashboardFile  = "deploy/grafana/ferry-dashboard.json"
	alertsFile     = "deploy/prometheus/ferry-alerts.yaml"
	alertsTestFile = "deploy/prometheus/ferry-alerts.test.yaml"
)

// incidentOnly are the metrics whose series appear only when something rare
// happens (a stale shard map, Kafka deleting unread offsets, an unclean
// leader election, an authentication or credential failure). The dashboard
// queries that read nothing else must still run; they may come back empty.
var incidentOnly = []string{
	"ferry_shard_prediction_misses_total",
	"ferry_wrong_shard_aggregates_total",
	"ferry_offsets_lost_total",
	"ferry_log_truncations_total",
	"ferry_kafka_auth_errors_total",
	"ferry_credential_errors_total",
}

// TestObservability checks the Grafana dashboard and the Prometheus alert
// rules against a real ferry scraped by a real Prometheus (Debian's 2.42, as
// scripts/deps.sh installs it). ferry runs with aggregation, the rate limiter
// and a dead-letter topic, and the fault proxy throttles and fails some
// requests, so that the throttle, retry, error and bad-record series exist.
// Then every panel's query and every template variable must return data,
// each alert rule must be loaded and evaluate without error, promtool must
// accept ferry's /metrics and pass the rules' unit tests, and a fatal stop
// must show as the target down with FerryDown pending.
func TestObservability(t *testing.T) {
	start := time.Now()
	promBin, promtool := prometheusBinaries(t)
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	alerts := filepath.Join(root, alertsFile)
	dash := readDashboard(t, filepath.Join(root, dashboardFile))

	// The rules on their own: syntax, then promtool's unit tests.
	runTool(t, promtool, nil, "check", "rules", alerts)
	runTool(t, promtool, nil, "test", "rules", filepath.Join(root, alertsTestFile))

	e := newEnv(t, harness.KindKinesalite, 1, 3, 2)
	dlq := e.name + ".dlq"
	if err := harness.CreateTopic(t.Context(), e.brokers, dlq, 1); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", harness.FreePort())
	prom := startPrometheus(t, promBin, listen, alerts)

	// Faults while the first records wait, one kind after the other so
	// that each surely happens: requests stored but answered 500
	// (ambiguous), whole requests throttled, then every fourth entry
	// throttled (per shard) until half the records are committed.
	e.proxy.SetAmbiguous(1, faultproxy.Ambiguous500)
	p := e.start(e.config(""), "ferry",
		"observability.listen="+listen,
		"delivery.aggregation.enabled=true", "delivery.aggregation.max_bytes=8KiB",
		"delivery.rate_limit.enabled=true", "delivery.rate_limit.factor=0.1",
		"delivery.max_record_bytes=64KiB", "delivery.on_invalid=dlq", "delivery.dlq_topic="+dlq)
	const first, second, tombstones, oversized = 3000, 1000, 20, 5
	e.produce(first, 200, 200)
	waitProxy(t, e.proxy, p, "ambiguous requests", func(s faultproxy.Stats) bool { return s.Ambiguous >= 2 })
	e.proxy.SetAmbiguous(0, "")
	e.proxy.SetThrottle(1)
	waitProxy(t, e.proxy, p, "throttled requests", func(s faultproxy.Stats) bool { return s.Throttled >= 2 })
	e.proxy.SetThrottle(0)
	var entries atomic.Int64 // a count, not the index: a re-sent entry must get through at last
	e.proxy.SetEntryFailer(func(faultproxy.Entry) (string, bool) { return "", entries.Add(1)%4 == 0 })
	e.waitCommitted(first/2, time.Minute, p)
	e.proxy.Reset()
	e.produceFrom(first, first+second, 200, 200)
	var bad []*kgo.Record
	for i := range tombstones {
		bad = append(bad, &kgo.Record{Topic: e.topics[0], Key: fmt.Appendf(nil, "tombstone-%d", i)})
	}
	for i := range oversized {
		bad = append(bad, &kgo.Record{Topic: e.topics[0], Key: fmt.Appendf(nil, "big-%d", i), Value: bytes.Repeat([]byte{'x'}, 100<<10)})
	}
	if _, err := harness.Produce(t.Context(), e.brokers, bad); err != nil {
		t.Fatal(err)
	}
	e.waitCommitted(-1, time.Minute, p)
	t.Logf("records delivered and committed after %s", time.Since(start).Round(time.Millisecond))

	_, metrics := httpGet(t, p, "/metrics")
	runTool(t, promtool, strings.NewReader(metrics), "check", "metrics")
	checkMetricNames(t, root, metrics, dash, readFile(t, alerts))

	// Every panel's query, and what the variables list. A series first
	// scraped a moment ago needs a second sample before rate() sees it, so
	// the queries are retried for a while.
	queries := dashboardQueries(t, dash)
	prom.waitAll(t, queries, 30*time.Second)
	t.Logf("%d dashboard queries return data (%d may be empty)", len(queries), countAllowEmpty(queries))

	// The values behind the panels are the ones ferry counted.
	sel := `{job="ferry"}`
	prom.expect(t, "sum(ferry_records_delivered_total"+sel+")", func(v float64) bool { return v >= first+second+tombstones })
	prom.expect(t, "sum(ferry_throttled_records_total"+sel+")", func(v float64) bool { return v > 0 })
	prom.expect(t, "sum(ferry_retries_total"+sel+")", func(v float64) bool { return v > 0 })
	prom.expect(t, "sum(ferry_invalid_records_total"+sel+")", func(v float64) bool { return v == oversized })
	prom.expect(t, "sum(ferry_dlq_records_total"+sel+")", func(v float64) bool { return v == oversized })
	prom.expect(t, "sum(ferry_tombstones_total"+sel+")", func(v float64) bool { return v == tombstones })
	prom.expect(t, "sum(ferry_aggregated_user_records_total"+sel+") / sum(ferry_kinesis_records_total"+sel+")",
		func(v float64) bool { return v > 1 })
	prom.expect(t, "sum(ferry_commit_lag_records"+sel+")", func(v float64) bool { return v == 0 })
	prom.expect(t, "sum(ferry_end_to_end_latency_seconds_count"+sel+")", func(v float64) bool { return v >= first+second })
	prom.expect(t, "histogram_quantile(0.99, sum by (le) (ferry_end_to_end_latency_seconds_bucket"+sel+"))",
		func(v float64) bool { return v > 0 && !math.IsInf(v, 0) })

	// The rule group is loaded and every rule has been evaluated without error.
	prom.waitRules(t, strings.Count(readFile(t, alerts), "- alert: "), 15*time.Second)

	// A fatal error: ferry exits 1, the target goes down, FerryDown is pending.
	e.proxy.SetFatal("AccessDeniedException")
	e.produceFrom(first+second, first+second+10, 10, 100)
	code, err := p.Wait(30 * time.Second)
	if err != nil || code != 1 {
		t.Fatalf("after AccessDeniedException ferry exited %d, %v; want 1", code, err)
	}
	prom.waitAlert(t, "FerryDown", 15*time.Second)
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}

// waitProxy waits until the proxy's counters satisfy ok.
func waitProxy(t *testing.T, proxy *faultproxy.Proxy, p *harness.Process, what string, ok func(faultproxy.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(proxy.Stats()) {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("no %s: proxy stats %+v (ferry exited: %v)", what, proxy.Stats(), p.Exited())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// prometheusBinaries finds prometheus and promtool: FERRY_TEST_CACHE (or
// REPO/.cache) /prometheus/bin, where scripts/deps.sh puts them, else PATH.
func prometheusBinaries(t *testing.T) (prom, promtool string) {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("FERRY_TEST_CACHE")
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	find := func(name string) string {
		p := filepath.Join(cache, "prometheus", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		harness.Require(t, fmt.Errorf("%s not in %s or PATH: %w", name, filepath.Dir(p), harness.ErrUnavailable))
		return ""
	}
	return find("prometheus"), find("promtool")
}

// runTool runs a promtool command and fails the test with its output if it
// exits non-zero.
func runTool(t *testing.T, bin string, stdin io.Reader, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
}

// promServer is a Prometheus started for one test.
type promServer struct {
	base string
	proc *harness.Process
	http *http.Client
}

// startPrometheus runs Prometheus on a free port with a fresh TSDB, scraping
// ferry at target every second and evaluating rules every second. The
// process is registered with the harness (FERRY_TEST_PID_REGISTRY) and
// killed at cleanup.
func startPrometheus(t *testing.T, bin, target, rules string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: ferry
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort())
	proc, err := harness.Start(t.Context(), bin, []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--storage.tsdb.retention.time=1h",
	}, nil, filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Close()
		if t.Failed() {
			t.Logf("last lines of prometheus:\n%s", proc.Tail())
		}
	})
	s := &promServer{base: "http://" + addr, proc: proc, http: &http.Client{Timeout: 10 * time.Second}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := s.http.Get(s.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("prometheus did not become ready (exited: %v):\n%s", proc.Exited(), proc.Tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiResponse is the envelope of Prometheus' HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (s *promServer) get(t *testing.T, path string, params url.Values) json.RawMessage {
	t.Helper()
	u := s.base + path
	if params != nil {
		u += "?" + params.Encode()
	}
	resp, err := s.http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var r apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("GET %s: status %d, %v", path, resp.StatusCode, err)
	}
	if r.Status != "success" {
		t.Fatalf("GET %s %v: %s: %s", path, params, r.ErrorType, r.Error)
	}
	return r.Data
}

// sample is one element of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) float() float64 {
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// query evaluates expr now; an invalid expression fails the test.
func (s *promServer) query(t *testing.T, expr string) []sample {
	t.Helper()
	data := s.get(t, "/api/v1/query", url.Values{"query": {expr}})
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.ResultType != "vector" {
		t.Fatalf("%s: result type %s, want vector", expr, d.ResultType)
	}
	var out []sample
	if err := json.Unmarshal(d.Result, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// promQuery is one query the dashboard makes.
type promQuery struct {
	name       string // panel title and refId, or the variable
	expr       string // with Grafana's variables substituted
	allowEmpty bool   // reads only incidentOnly metrics
}

func countAllowEmpty(qs []promQuery) int {
	n := 0
	for _, q := range qs {
		if q.allowEmpty {
			n++
		}
	}
	return n
}

// waitAll evaluates the queries until each returns data (or may be empty).
func (s *promServer) waitAll(t *testing.T, queries []promQuery, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var empty []string
		for _, q := range queries {
			if len(s.query(t, q.expr)) == 0 && !q.allowEmpty {
				empty = append(empty, fmt.Sprintf("%s: %s", q.name, q.expr))
			}
		}
		if len(empty) == 0 {
			for _, q := range queries {
				if q.allowEmpty && len(s.query(t, q.expr)) == 0 {
					t.Logf("empty (incident-only): %s", q.name)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d dashboard queries return no data:\n%s", len(empty), len(queries), strings.Join(empty, "\n"))
		}
		time.Sleep(time.Second)
	}
}

// expect checks that expr gives one sample whose value satisfies ok, within
// a few scrapes (the last one may predate the final commit).
func (s *promServer) expect(t *testing.T, expr string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res := s.query(t, expr)
		if len(res) == 1 && ok(res[0].float()) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s = %v", expr, res)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitRules waits until the ferry rule group has n rules, each evaluated
// with health ok and no error.
func (s *promServer) waitRules(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	type rule struct {
		Name      string `json:"name"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
		Type      string `json:"type"`
	}
	deadline := time.Now().Add(timeout)
	for {
		var d struct {
			Groups []struct {
				Name  string `json:"name"`
				File  string `json:"file"`
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		if err := json.Unmarshal(s.get(t, "/api/v1/rules", nil), &d); err != nil {
			t.Fatal(err)
		}
		var problems []string
		found := false
		for _, g := range d.Groups {
			if g.Name != "ferry" {
				continue
			}
			found = true
			if len(g.Rules) != n {
				problems = append(problems, fmt.Sprintf("group ferry has %d rules, want %d", len(g.Rules), n))
			}
			for _, r := range g.Rules {
				if r.Type != "alerting" || r.Health != "ok" || r.LastError != "" {
					problems = append(problems, fmt.Sprintf("%s (%s): health %q, error %q", r.Name, r.Type, r.Health, r.LastError))
				}
			}
		}
		if !found {
			problems = append(problems, "no rule group ferry")
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules:\n%s", strings.Join(problems, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitAlert waits until the alert is pending or firing.
func (s *promServer) waitAlert(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var d struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		}
		if err := json.Unmarshal(s.get(t, "/api/v1/alerts", nil), &d); err != nil {
			t.Fatal(err)
		}
		for _, a := range d.Alerts {
			if a.Labels["alertname"] == name && (a.State == "pending" || a.State == "firing") {
				t.Logf("%s %s: %v", name, a.State, a.Labels)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert %s not pending or firing; alerts: %+v; up: %v", name, d.Alerts, s.query(t, `up{job="ferry"}`))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// dashboard is the part of the Grafana JSON model the test reads.
type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Inputs        []struct {
		Name     string `json:"name"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

// readDashboard parses the dashboard and checks its shape: the
// DS_PROMETHEUS input every panel uses, unique ids, a query per panel.
func readDashboard(t *testing.T, path string) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal([]byte(readFile(t, path)), &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d", d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v: want one prometheus DS_PROMETHEUS", d.Inputs)
	}
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: datasource %q", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

var (
	// grafanaVar matches $name, ${name} and ${name:format}.
	grafanaVar  = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)
	labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	metricName  = regexp.MustCompile(`\b((?:ferry|go|process)_[a-z_]+?)(?:_bucket|_sum|_count)?\b\s*[{\[(]`)
)

// substitute replaces Grafana's variables: the built-in intervals by a
// window that holds several 1s scrapes, the template variables by their
// "All" value (.*).
func substitute(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVar.FindStringSubmatch(m)
		switch sm[1] + sm[2] {
		case "__rate_interval", "__interval", "__range":
			return "15s"
		default:
			return ".*"
		}
	})
}

// dashboardQueries lists every target's expression and every query
// variable's (label_values(m, l) becomes group by (l) (m)).
func dashboardQueries(t *testing.T, d dashboard) []promQuery {
	t.Helper()
	var out []promQuery
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s has no expr", p.Title, tg.RefID)
				continue
			}
			out = append(out, promQuery{name: p.Title + " " + tg.RefID, expr: substitute(tg.Expr), allowEmpty: onlyIncident(tg.Expr)})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(metric, label)", v.Name, v.Definition)
			continue
		}
		out = append(out, promQuery{name: "variable " + v.Name, expr: substitute(fmt.Sprintf("group by (%s) (%s)", m[2], m[1]))})
	}
	return out
}

// metricNames returns the ferry_, go_ and process_ metric names expr reads.
func metricNames(expr string) []string {
	var out []string
	for _, m := range metricName.FindAllStringSubmatch(expr, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

func onlyIncident(expr string) bool {
	names := metricNames(expr)
	for _, n := range names {
		if !slices.Contains(incidentOnly, n) {
			return false
		}
	}
	return len(names) > 0
}

// checkMetricNames checks that every metric the dashboard and the rules
// read is one ferry exports: in its /metrics output or, for incidentOnly
// ones not seen yet, named in ferry's source.
func checkMetricNames(t *testing.T, root, metrics string, d dashboard, rules string) {
	t.Helper()
	var source strings.Builder
	for _, dir := range []string{"connector", "cmd/ferry"} {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				source.WriteString(readFile(t, f))
			}
		}
	}
	exprs := []string{rules}
	for _, q := range dashboardQueries(t, d) {
		exprs = append(exprs, q.expr)
	}
	seen := map[string]bool{}
	for _, expr := range exprs {
		for _, n := range metricNames(expr) {
			if seen[n] {
				continue
			}
			seen[n] = true
			exported := strings.Contains(metrics, "\n# TYPE "+n+" ")
			incident := slices.Contains(incidentOnly, n) && strings.Contains(source.String(), `"`+n+`"`)
			if !exported && !incident {
				t.Errorf("metric %s is read by the dashboard or the rules but ferry does not export it", n)
			}
		}
	}
	if len(seen) < 30 {
		t.Errorf("only %d metric names found in the dashboard and rules: %v", len(seen), seen)
	}
}
