package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
			name: "unknown variable", args: []string{"config", "--config", good}, env: []string{"FERRY_KAFKA_BROKRES=x:1"},
			code: exitInvalid, inStderr: true, want: []string{"FERRY_KAFKA_BROKRES"},
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
			for _, m := range tc.mustNot {
				if strings.Contains(stdout.String()+stderr.String(), m) {
					t.Errorf("output leaks %q", m)
				}
			}
		})
	}
}
