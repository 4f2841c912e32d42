package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// podEnv is what Kubernetes injects into every pod of a namespace holding
// Services named ferry (ports metrics/9090 and admin/9091) and ferry-metrics.
var podEnv = []string{
	"FERRY_SERVICE_HOST=10.0.0.1",
	"FERRY_SERVICE_PORT=9090",
	"FERRY_SERVICE_PORT_METRICS=9090",
	"FERRY_SERVICE_PORT_ADMIN=9091",
	"FERRY_PORT=tcp://10.0.0.1:9090",
	"FERRY_PORT_9090_TCP=tcp://10.0.0.1:9090",
	"FERRY_PORT_9090_TCP_PROTO=tcp",
	"FERRY_PORT_9090_TCP_PORT=9090",
	"FERRY_PORT_9090_TCP_ADDR=10.0.0.1",
	"FERRY_PORT_9091_TCP=tcp://10.0.0.1:9091",
	"FERRY_PORT_9091_TCP_PROTO=tcp",
	"FERRY_PORT_9091_TCP_PORT=9091",
	"FERRY_PORT_9091_TCP_ADDR=10.0.0.1",
	"FERRY_METRICS_SERVICE_HOST=10.0.0.2",
	"FERRY_METRICS_SERVICE_PORT=9090",
	"FERRY_METRICS_SERVICE_PORT_HTTP_METRICS=9090",
	"FERRY_METRICS_PORT=tcp://10.0.0.2:9090",
	"FERRY_METRICS_PORT_9090_TCP=tcp://10.0.0.2:9090",
	"FERRY_METRICS_PORT_9090_TCP_PROTO=tcp",
	"FERRY_METRICS_PORT_9090_TCP_PORT=9090",
	"FERRY_METRICS_PORT_9090_TCP_ADDR=10.0.0.2",
	"KUBERNETES_SERVICE_HOST=10.0.0.10",
	"KUBERNETES_PORT_443_TCP=tcp://10.0.0.10:443",
}

func TestLoadLinkVariablesIgnored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ []string
	}{
		{"kubernetes pod", podEnv},
		{"kubernetes pod with ferry keys", append(slices.Clone(podEnv), "FERRY_KAFKA_GROUP=g", "FERRY_CONFIG=/etc/ferry.yaml")},
		{"udp and sctp ports", []string{
			"FERRY_DNS_PORT=udp://10.0.0.3:53", "FERRY_DNS_PORT_53_UDP=udp://10.0.0.3:53", "FERRY_DNS_PORT_53_UDP_PROTO=udp",
			"FERRY_DNS_PORT_53_UDP_PORT=53", "FERRY_DNS_PORT_53_UDP_ADDR=10.0.0.3",
			"FERRY_SIG_PORT_2905_SCTP=sctp://10.0.0.4:2905", "FERRY_SIG_PORT_2905_SCTP_ADDR=10.0.0.4",
		}},
		{"docker link", []string{
			"FERRY_PORT=tcp://172.17.0.5:9090", "FERRY_PORT_9090_TCP=tcp://172.17.0.5:9090",
			"FERRY_PORT_9090_TCP_ADDR=172.17.0.5", "FERRY_PORT_9090_TCP_PORT=9090", "FERRY_PORT_9090_TCP_PROTO=tcp",
			"FERRY_ENV_FERRY_KAFKA_BROKERS=other:9092", "FERRY_ENV_GOMEMLIMIT=1GiB",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, warnings, err := Load(Sources{File: []byte(validYAML), Environ: tc.environ})
			if err != nil {
				t.Errorf("Load() error = %v", err)
			}
			if len(warnings) > 0 {
				t.Errorf("Load() warnings = %q, want none", warnings)
			}
			if got := cfg.Kafka.Brokers; !slices.Equal(got, []string{"localhost:9092"}) {
				t.Errorf("brokers = %q, want the file's: a link variable must not set a key", got)
			}
		})
	}
}

func TestLoadUnknownEnvWarns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ []string
		want    []string // one substring per warning, in order; a suggestion only where one is given
	}{
		{"dropped letter", []string{"FERRY_KAFKA_BROKER=b:9092"},
			[]string{"environment variable FERRY_KAFKA_BROKER: unknown key, ignored; did you mean FERRY_KAFKA_BROKERS?"}},
		{"swapped letters", []string{"FERRY_KINESIS_REGOIN=eu-west-1"}, []string{"did you mean FERRY_KINESIS_REGION?"}},
		{"double underscore", []string{"FERRY_KAFKA__GROUP=g"}, []string{"did you mean FERRY_KAFKA_GROUP?"}},
		{"lower case", []string{"FERRY_kafka_group=g"}, []string{"did you mean FERRY_KAFKA_GROUP?"}},
		{"section, no suggestion", []string{"FERRY_KAFKA=x"}, []string{"environment variable FERRY_KAFKA: unknown key, ignored"}},
		{"far from any key", []string{"FERRY_FEATURE_FLAGS=x"}, []string{"environment variable FERRY_FEATURE_FLAGS: unknown key, ignored"}},
		{"among link variables", append(slices.Clone(podEnv), "FERRY_DELIVERY_ORDERNG=none"),
			[]string{"FERRY_DELIVERY_ORDERNG: unknown key, ignored; did you mean FERRY_DELIVERY_ORDERING?"}},
		{"each reported", []string{"FERRY_KAFKA_GRUOP=g", "FERRY_X=1"}, []string{"FERRY_KAFKA_GRUOP: unknown key, ignored; did you mean FERRY_KAFKA_GROUP?", "FERRY_X: unknown key, ignored"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, warnings, err := Load(Sources{File: []byte(validYAML), Environ: tc.environ})
			if err != nil {
				t.Errorf("Load() error = %v", err)
			}
			if len(warnings) != len(tc.want) {
				t.Fatalf("Load() warnings = %q, want %d", warnings, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warnings[i], w)
				}
				if strings.Contains(w, "did you mean") != strings.Contains(warnings[i], "did you mean") {
					t.Errorf("warning %d = %q: want a suggestion only when %q has one", i, warnings[i], w)
				}
			}
			if cfg.Kafka.Group != "ferry" || cfg.Kinesis.Region != "eu-west-1" {
				t.Errorf("an unknown variable changed the config: group %q, region %q", cfg.Kafka.Group, cfg.Kinesis.Region)
			}
		})
	}
}

// The misspelt variable is ignored, so a key it was meant to set may be
// missing; the warning then explains the Validate error.
func TestLoadUnknownEnvWarnsBesideErrors(t *testing.T) {
	t.Parallel()
	_, warnings, err := Load(Sources{Environ: []string{"FERRY_KAFKA_BROKER=b:9092"}})
	if !hasPath(FieldErrors(err), "kafka.brokers") {
		t.Errorf("Load() error = %v, want kafka.brokers required", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "did you mean FERRY_KAFKA_BROKERS?") {
		t.Errorf("Load() warnings = %q, want the suggestion", warnings)
	}
}

func TestLinkVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want bool
	}{
		{"FERRY_SERVICE_HOST", true},
		{"FERRY_SERVICE_PORT", true},
		{"FERRY_SERVICE_PORT_METRICS", true},
		{"FERRY_SERVICE_PORT_HTTP_METRICS", true},
		{"FERRY_PORT", true},
		{"FERRY_PORT_9090_TCP", true},
		{"FERRY_PORT_9090_TCP_PROTO", true},
		{"FERRY_PORT_9090_TCP_PORT", true},
		{"FERRY_PORT_9090_TCP_ADDR", true},
		{"FERRY_PORT_53_UDP_ADDR", true},
		{"FERRY_PORT_2905_SCTP", true},
		{"FERRY_METRICS_SERVICE_HOST", true},
		{"FERRY_METRICS_PORT_9090_TCP", true},
		{"FERRY_PORT_A_PORT_80_TCP_ADDR", true}, // a Service named ferry-port-a
		{"FERRY_ENV_PATH", true},
		{"FERRY_ENV_FERRY_KAFKA_BROKERS", true},

		{"FERRY_KAFKA_BROKERS", false},
		{"FERRY_KAFKA_TLS_SERVER_NAME", false},
		{"FERRY_NAME", false}, // a Docker link's name: too close to kafka.tls.server_name's shape
		{"_SERVICE_HOST", false},
		{"_PORT", false},
		{"_PORT_80_TCP", false},
		{"_ENV_X", false},
		{"FERRY_SERVICE_PORT_", false},
		{"FERRY_SERVICE_HOSTS", false},
		{"FERRY_PORTS", false},
		{"FERRY_PORT_", false},
		{"FERRY_PORT_9090", false},
		{"FERRY_PORT_9090_", false},
		{"FERRY_PORT_9090_HTTP", false},
		{"FERRY_PORT_9090_tcp", false},
		{"FERRY_PORT_X_TCP", false},
		{"FERRY_PORT_9090_TCP_", false},
		{"FERRY_PORT_9090_TCP_HOST", false},
		{"FERRY_PORT_9090_TCP_ADDR_X", false},
		{"FERRY_ENV_", false},
		{"FERRY_ENVIRONMENT", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := linkVariable(tc.name); got != tc.want {
				t.Errorf("linkVariable(%q) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

// Ignoring link-shaped variables must never ignore a real key.
func TestLinkVariableNoKey(t *testing.T) {
	t.Parallel()
	for _, k := range Keys() {
		if k.Env != "" && linkVariable(k.Env) {
			t.Errorf("key %s: its variable %s is classified as a service link", k.Path, k.Env)
		}
	}
	for _, k := range keyTable { // also routes, whose variable is refused with an error
		if linkVariable(k.env) {
			t.Errorf("key %s: its variable %s is classified as a service link", k.path, k.env)
		}
	}
}

func TestSuggestEnv(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, want string }{
		{"FERRY_KAFKA_BROKER", "FERRY_KAFKA_BROKERS"},
		{"FERRY_KAFKA_BROKRES", "FERRY_KAFKA_BROKERS"},
		{"FERRY_KAFKA_BROKERSS", "FERRY_KAFKA_BROKERS"},
		{"FERRY_KAFKA_TOPIC", "FERRY_KAFKA_TOPICS"},
		{"FERRY_kinesis_region", "FERRY_KINESIS_REGION"},
		{"FERRY_DELIVERY_BATCH_MAX_RECORD", "FERRY_DELIVERY_BATCH_MAX_RECORDS"},
		{"FERRY_OBSERVABILITY_LOGLEVEL", "FERRY_OBSERVABILITY_LOG_LEVEL"},
		{"FERRY_KAFKA_BRKR", ""}, // three edits
		{"FERRY_ROUTE", ""},      // routes has no variable to suggest
		{"FERRY_KAFKA", ""},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := suggestEnv(tc.name); got != tc.want {
				t.Errorf("suggestEnv(%q) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b  string
		limit int
		want  int
	}{
		{"", "", 3, 0},
		{"abc", "abc", 3, 0},
		{"abc", "ab", 3, 1},
		{"abc", "abd", 3, 1},
		{"abc", "acb", 3, 2},
		{"kitten", "sitting", 4, 3},
		{"kitten", "sitting", 3, 3}, // capped at the limit
		{"kitten", "sitting", 2, 2},
		{"", "abcdef", 3, 3},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s/%d", tc.a, tc.b, tc.limit), func(t *testing.T) {
			t.Parallel()
			if got := editDistance(tc.a, tc.b, tc.limit); got != tc.want {
				t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tc.a, tc.b, tc.limit, got, tc.want)
			}
		})
	}
}

// FuzzLinkVariable checks the classifier against its two promises: every
// variable Kubernetes derives from a Service named ferry[-...] is a link, and
// no real key's variable ever is. The suggestion for any name is a settable
// key's variable within maxSuggestDistance edits, or nothing.
func FuzzLinkVariable(f *testing.F) {
	f.Add("FERRY_SERVICE_HOST", "", "metrics", uint16(9090), uint8(0))
	f.Add("FERRY_KAFKA_BROKER", "-metrics", "http-metrics", uint16(80), uint8(1))
	f.Add("FERRY_PORT_9090_TCP_ADDR", "-kafka-brokers", "", uint16(2905), uint8(2))
	f.Add("FERRY_ENV_X", "-port-1", "p", uint16(0), uint8(3))
	f.Fuzz(func(t *testing.T, name, service, portName string, port uint16, proto uint8) {
		// Any name: no panic, and a link is never a key.
		if linkVariable(name) {
			if k, ok := keyByEnv[name]; ok {
				t.Fatalf("linkVariable(%q) = true for key %s", name, k.path)
			}
		}
		if s := suggestEnv(name); s != "" {
			k, ok := keyByEnv[s]
			if !ok || k.fileOnly {
				t.Fatalf("suggestEnv(%q) = %q, not a settable key's variable", name, s)
			}
			if d := editDistance(strings.ToUpper(name), s, 100); d > maxSuggestDistance {
				t.Fatalf("suggestEnv(%q) = %q at distance %d", name, s, d)
			}
		}

		// A Service "ferry" + service: every variable Kubernetes injects is a link.
		stem := "FERRY" + envForm(service)
		vars := []string{stem + "_SERVICE_HOST", stem + "_SERVICE_PORT", stem + "_PORT"}
		if p := envForm(portName); p != "" {
			vars = append(vars, stem+"_SERVICE_PORT"+p)
		}
		pp := fmt.Sprintf("%s_PORT_%d_%s", stem, port, []string{"TCP", "UDP", "SCTP"}[proto%3])
		vars = append(vars, pp, pp+"_PROTO", pp+"_PORT", pp+"_ADDR")
		for _, v := range vars {
			if !linkVariable(v) {
				t.Fatalf("linkVariable(%q) = false for a variable of Service ferry%s", v, envForm(service))
			}
		}
	})
}

// envForm turns a fuzzed name into the "_NAME_PART" a Kubernetes name of
// lower-case letters, digits and dashes becomes: upper case, dashes as
// underscores, with a leading underscore, or "" when nothing is left.
func envForm(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-':
			b.WriteByte('_')
		}
	}
	out := strings.Trim(b.String(), "_")
	if out == "" {
		return ""
	}
	return "_" + out
}
