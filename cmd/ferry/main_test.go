package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrylabs/ferry/config"
)

// podEnv is what Kubernetes injects into a pod beside Services named ferry
// and ferry-metrics.
var podEnv = []string{
	"FERRY_SERVICE_HOST=10.0.0.1", "FERRY_SERVICE_PORT=9090", "FERRY_SERVICE_PORT_METRICS=9090",
	"FERRY_PORT=tcp://10.0.0.1:9090", "FERRY_PORT_9090_TCP=tcp://10.0.0.1:9090", "FERRY_PORT_9090_TCP_PROTO=tcp",
	"FERRY_PORT_9090_TCP_PORT=9090", "FERRY_PORT_9090_TCP_ADDR=10.0.0.1",
	"FERRY_METRICS_SERVICE_HOST=10.0.0.2", "FERRY_METRICS_SERVICE_PORT=9090", "FERRY_METRICS_SERVICE_PORT_METRICS=9090",
	"FERRY_METRICS_PORT=tcp://10.0.0.2:9090", "FERRY_METRICS_PORT_9090_TCP=tcp://10.0.0.2:9090",
	"FERRY_METRICS_PORT_9090_TCP_PROTO=tcp", "FERRY_METRICS_PORT_9090_TCP_PORT=9090", "FERRY_METRICS_PORT_9090_TCP_ADDR=10.0.0.2",
}

func TestRunCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(`
kafka: {brokers: ["127.0.0.1:9092"], topics: [a], sasl: {mechanism: PLAIN, username: u, password: hunter2}}
kinesis: {region: us-east-1, access_key_id: AKIDEXAMPLE, secret_access_key: wJalrXUtnFEMI}
routes: [{topics: [a], stream: s}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		env      []string
		code     int
		want     []string
		mustNot  []string
		inStderr bool
		// stderrEmpty asserts nothing, not even a warning, went to stderr.
		stderrEmpty bool
	}{
		{name: "version", args: []string{"version"}, code: exitOK, want: []string{"ferry "}},
		{name: "no command", args: nil, code: exitUsage, want: []string{"Usage:"}, inStderr: true},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, want: []string{`unknown command "frobnicate"`}, inStderr: true},
		{
			name: "config redacts secrets", args: []string{"config", "--config", good}, code: exitOK,
			want:    []string{"password: '[redacted]'", "secret_access_key: '[redacted]'", "max_records: 500"},
			mustNot: []string{"hunter2", "wJalrXUtnFEMI"},
		},
		{
			name: "set overrides env overrides file", args: []string{"config", "--config", good, "--set", "delivery.batch.linger=7ms"},
			env: []string{"FERRY_DELIVERY_BATCH_LINGER=3ms", "FERRY_DELIVERY_MAX_IN_FLIGHT=9"}, code: exitOK,
			want: []string{"linger: 7ms", "max_in_flight: 9"},
		},
		{
			name: "config file from FERRY_CONFIG", args: []string{"config"}, env: []string{"FERRY_CONFIG=" + good},
			code: exitOK, want: []string{"stream: s"},
		},
		{
			name: "invalid config lists every problem", args: []string{"run", "--config", good,
				"--set", "delivery.batch.max_records=900", "--set", "commit.interval=0s"},
			code: exitInvalid, inStderr: true,
			want: []string{"delivery.batch.max_records: 900 exceeds the PutRecords limit of 500", "commit.interval"},
		},
		{
			name: "unknown variable warns", args: []string{"config", "--config", good}, env: []string{"FERRY_KAFKA_BROKRES=x:1"},
			code: exitOK, inStderr: true,
			want: []string{"ferry: warning: environment variable FERRY_KAFKA_BROKRES: unknown key, ignored; did you mean FERRY_KAFKA_BROKERS?"},
		},
		{
			name: "warning beside invalid config", args: []string{"config", "--set", "kafka.brokers="},
			env: []string{"FERRY_CONFIG=" + good, "FERRY_KAFKA_BROKER=x:1"}, code: exitInvalid, inStderr: true,
			want: []string{"kafka.brokers", "ferry: warning: environment variable FERRY_KAFKA_BROKER: unknown key, ignored; did you mean FERRY_KAFKA_BROKERS?"},
		},
		{
			name: "invalid --until names the flag and the value", args: []string{"run", "--config", good, "--until", "tomorrow"},
			code: exitUsage, inStderr: true,
			want: []string{`ferry run: invalid --until "tomorrow": want end or timestamp:RFC3339`},
		},
		{
			name: "invalid --until time", args: []string{"run", "--config", good, "--until", "timestamp:2026-13-01T00:00:00Z"},
			code: exitUsage, inStderr: true,
			want: []string{`ferry run: invalid --until "timestamp:2026-13-01T00:00:00Z": "2026-13-01T00:00:00Z" is not an RFC 3339 time`},
		},
		{
			name: "--until is for run only", args: []string{"config", "--config", good, "--until", "end"},
			code: exitUsage, inStderr: true, want: []string{"ferry config: --until applies to ferry run only"},
		},
		{
			name: "invalid --progress-interval", args: []string{"run", "--config", good, "--until", "end", "--progress-interval", "0s"},
			code: exitUsage, inStderr: true, want: []string{"invalid --progress-interval 0s: must be positive"},
		},
		{name: "help documents --until", args: []string{"help"}, code: exitOK, want: []string{"--until end|timestamp:RFC3339", "--progress-interval"}},
		{
			name: "kubernetes service links", args: []string{"config", "--config", good}, env: podEnv,
			code: exitOK, want: []string{"stream: s"}, stderrEmpty: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, tc.env, &stdout, &stderr)
			out := stdout.String()
			if tc.inStderr {
				out = stderr.String()
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.stderrEmpty && stderr.Len() > 0 {
				t.Errorf("stderr not empty:\n%s", stderr.String())
			}
			for _, m := range tc.mustNot {
				if strings.Contains(stdout.String()+stderr.String(), m) {
					t.Errorf("output leaks %q", m)
				}
			}
		})
	}
}

// ferry check shows the warnings but does not count them as problems. The
// context is already cancelled, so Kafka and the one stream fail at once
// without a network: two problems, whatever the warnings.
func TestCheckShowsWarnings(t *testing.T) {
	t.Parallel()
	file := unreachableConfig(t, "")
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"misspelt key", append([]string{"FERRY_KAFKA_BROKER=x:1"}, podEnv...), []string{
			"[ok  ] configuration is valid\n" +
				"[WARN] environment variable FERRY_KAFKA_BROKER: unknown key, ignored; did you mean FERRY_KAFKA_BROKERS?\n",
			"2 problem(s) found (1 warning(s))\n",
		}},
		{"service links only", podEnv, []string{"[ok  ] configuration is valid\n[FAIL] kafka", "2 problem(s) found\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, []string{"check", "--config", file}, tc.env, &stdout, &stderr)
			if code != exitFailed {
				t.Errorf("exit %d, want %d (Kafka and Kinesis unreachable)\nstderr: %s", code, exitFailed, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("check output lacks %q:\n%s", w, stdout.String())
				}
			}
			if strings.Count(stdout.String(), "[WARN]") != strings.Count(strings.Join(tc.want, ""), "[WARN]") {
				t.Errorf("unexpected warnings:\n%s", stdout.String())
			}
		})
	}
}

func TestReportWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		warnings []string
		want     string
		count    string
	}{
		{"none", nil, "", ""},
		{"one", []string{"environment variable FERRY_X: unknown key, ignored"},
			"[WARN] environment variable FERRY_X: unknown key, ignored\n", " (1 warning(s))"},
		{"two", []string{"a", "b"}, "[WARN] a\n[WARN] b\n", " (2 warning(s))"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			reportWarnings(&b, tc.warnings)
			if b.String() != tc.want {
				t.Errorf("reportWarnings = %q, want %q", b.String(), tc.want)
			}
			if got := warningCount(tc.warnings); got != tc.count {
				t.Errorf("warningCount = %q, want %q", got, tc.count)
			}
		})
	}
}

// ferry run logs each warning at warn level through its configured logger.
func TestLogWarnings(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	log := newLogger(config.Observability{LogLevel: "info", LogFormat: "json"}, &b)
	logWarnings(log, []string{"first", "second"})
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var rec struct{ Level, Msg, Warning string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Level != slog.LevelWarn.String() || rec.Msg != "configuration warning" {
			t.Errorf("log line %q: want level WARN, msg \"configuration warning\"", line)
		}
		got = append(got, rec.Warning)
	}
	if strings.Join(got, ",") != "first,second" {
		t.Errorf("logged warnings %q, want first, second", got)
	}
}

// A SIGTERM while ferry run fetches its AWS credentials (the first thing it
// does) is a clean stop, exit 0, like one during the rest of the start: a
// rolling bounce sends it at any moment (scenario 4 at full size saw exit 1).
func TestRunStoppedWhileFetchingCredentialsExitsZero(t *testing.T) {
	t.Parallel()
	file := unreachableConfig(t, "observability: {listen: \"\"}\n")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"run", "--config", file}, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, want 0\n%s", code, stderr.String())
	}
}

// unreachableConfig writes a valid configuration whose Kafka and Kinesis
// answer nothing (port 1), plus extra YAML, and returns its path.
func unreachableConfig(t *testing.T, extra string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(file, []byte(`
kafka: {brokers: ["127.0.0.1:1"], topics: [a]}
kinesis: {region: us-east-1, endpoint: "http://127.0.0.1:1", access_key_id: AKIDEXAMPLE, secret_access_key: x}
routes: [{topics: [a], stream: s}]
`+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
