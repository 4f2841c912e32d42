package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	type layers struct {
		file string
		env  []string
		sets []string
	}
	tests := []struct {
		name string
		in   layers
		get  func(Config) any
		want any
	}{
		{"string default", layers{}, func(c Config) any { return c.Kafka.Group }, "ferry"},
		{"string file", layers{file: "kafka: {group: g-file}"}, func(c Config) any { return c.Kafka.Group }, "g-file"},
		{"string env over file", layers{file: "kafka: {group: g-file}", env: []string{"FERRY_KAFKA_GROUP=g-env"}},
			func(c Config) any { return c.Kafka.Group }, "g-env"},
		{"string set over env", layers{file: "kafka: {group: g-file}", env: []string{"FERRY_KAFKA_GROUP=g-env"},
			sets: []string{"kafka.group=g-set"}}, func(c Config) any { return c.Kafka.Group }, "g-set"},
		{"string last set wins", layers{sets: []string{"kafka.group=a", "kafka.group=b"}},
			func(c Config) any { return c.Kafka.Group }, "b"},

		{"duration default", layers{}, func(c Config) any { return c.Kafka.SessionTimeout }, 45 * time.Second},
		{"duration file", layers{file: "kafka: {session_timeout: 30s}"},
			func(c Config) any { return c.Kafka.SessionTimeout }, 30 * time.Second},
		{"duration env over file", layers{file: "kafka: {session_timeout: 30s}", env: []string{"FERRY_KAFKA_SESSION_TIMEOUT=1m30s"}},
			func(c Config) any { return c.Kafka.SessionTimeout }, 90 * time.Second},
		{"duration set over env", layers{env: []string{"FERRY_KAFKA_SESSION_TIMEOUT=1m30s"}, sets: []string{"kafka.session_timeout=250ms"}},
			func(c Config) any { return c.Kafka.SessionTimeout }, 250 * time.Millisecond},
		{"duration zero needs no unit", layers{file: "delivery: {batch: {linger: 0}}"},
			func(c Config) any { return c.Delivery.Batch.Linger }, time.Duration(0)},

		{"size default", layers{}, func(c Config) any { return c.Delivery.Batch.MaxBytes }, ByteSize(DefaultRequestCap)},
		{"size file unit", layers{file: "delivery: {batch: {max_bytes: 4MiB}}"},
			func(c Config) any { return c.Delivery.Batch.MaxBytes }, 4 * MiB},
		{"size file integer", layers{file: "delivery: {batch: {max_bytes: 1048576}}"},
			func(c Config) any { return c.Delivery.Batch.MaxBytes }, MiB},
		{"size file float", layers{file: "delivery: {batch: {max_bytes: 5e6}}"},
			func(c Config) any { return c.Delivery.Batch.MaxBytes }, 5 * MB},
		{"size env over file", layers{file: "delivery: {batch: {max_bytes: 4MiB}}", env: []string{"FERRY_DELIVERY_BATCH_MAX_BYTES=3 MiB"}},
			func(c Config) any { return c.Delivery.Batch.MaxBytes }, 3 * MiB},
		{"size set over env", layers{env: []string{"FERRY_DELIVERY_BATCH_MAX_BYTES=3 MiB"}, sets: []string{"delivery.batch.max_bytes=2097152"}},
			func(c Config) any { return c.Delivery.Batch.MaxBytes }, 2 * MiB},

		{"int file", layers{file: "delivery: {batch: {max_records: 100}}"},
			func(c Config) any { return c.Delivery.Batch.MaxRecords }, 100},
		{"int env over file", layers{file: "delivery: {batch: {max_records: 100}}", env: []string{"FERRY_DELIVERY_BATCH_MAX_RECORDS=400"}},
			func(c Config) any { return c.Delivery.Batch.MaxRecords }, 400},
		{"int set over env", layers{env: []string{"FERRY_DELIVERY_BATCH_MAX_RECORDS=400"}, sets: []string{"delivery.batch.max_records=7"}},
			func(c Config) any { return c.Delivery.Batch.MaxRecords }, 7},

		{"bool default", layers{}, func(c Config) any { return c.Kafka.TLS.Enabled }, false},
		{"bool file", layers{file: "kafka: {tls: {enabled: true}}"}, func(c Config) any { return c.Kafka.TLS.Enabled }, true},
		{"bool env over file", layers{file: "kafka: {tls: {enabled: true}}", env: []string{"FERRY_KAFKA_TLS_ENABLED=false"}},
			func(c Config) any { return c.Kafka.TLS.Enabled }, false},
		{"bool set over env", layers{env: []string{"FERRY_KAFKA_TLS_ENABLED=false"}, sets: []string{"kafka.tls.enabled=true"}},
			func(c Config) any { return c.Kafka.TLS.Enabled }, true},

		{"list default", layers{}, func(c Config) any { return c.Kafka.Brokers }, []string(nil)},
		{"list file", layers{file: "kafka: {brokers: [a:1, b:2]}"}, func(c Config) any { return c.Kafka.Brokers }, []string{"a:1", "b:2"}},
		{"list file as string", layers{file: "kafka: {brokers: 'a:1, b:2'}"}, func(c Config) any { return c.Kafka.Brokers }, []string{"a:1", "b:2"}},
		{"list env over file", layers{file: "kafka: {brokers: [a:1, b:2]}", env: []string{"FERRY_KAFKA_BROKERS= c:3 ,, d:4 ,"}},
			func(c Config) any { return c.Kafka.Brokers }, []string{"c:3", "d:4"}},
		{"list set over env", layers{env: []string{"FERRY_KAFKA_BROKERS=c:3,d:4"}, sets: []string{"kafka.brokers=e:5"}},
			func(c Config) any { return c.Kafka.Brokers }, []string{"e:5"}},
		{"list env empty clears file", layers{file: "kafka: {topics: [orders]}", env: []string{"FERRY_KAFKA_TOPICS="}},
			func(c Config) any { return len(c.Kafka.Topics) }, 0},

		{"file keeps sibling defaults", layers{file: "kafka: {group: g}"}, func(c Config) any { return c.Kafka.Start }, "earliest"},
		{"file null keeps default", layers{file: "kafka:\n  group:\n"}, func(c Config) any { return c.Kafka.Group }, "ferry"},
		{"sasl mechanism normalised", layers{sets: []string{"kafka.sasl.mechanism=scram-sha-256"}},
			func(c Config) any { return c.Kafka.SASL.Mechanism }, SASLScramSHA256},
		{"partition key defaulted", layers{file: "routes: [{topics: [a], stream: s}]"},
			func(c Config) any { return c.Routes[0].PartitionKey }, PartitionKeyKey},
		{"routes from file", layers{file: "routes: [{regex: '^a', stream: s, partition_key: partition}]"},
			func(c Config) any { return c.Routes }, []Route{{Regex: "^a", Stream: "s", PartitionKey: PartitionKeyPartition}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, Sources{File: []byte(tc.in.file), Environ: tc.in.env, Sets: tc.in.sets})
			if got := tc.get(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestLoadValid(t *testing.T) {
	t.Parallel()
	cfg, warnings, err := Load(Sources{
		File:    []byte(validYAML),
		Environ: []string{"HOME=/root", "PATH=/bin", "FERRY_CONFIG=/etc/ferry.yaml", "FERRY_TEST_KAFKA=1", "FERRY_TEST_=x"},
	})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Load() warnings = %q, error = %v", warnings, err)
	}
	if cfg.Kinesis.Region != "eu-west-1" || cfg.Routes[0].Stream != "orders" {
		t.Errorf("Load() = %+v", cfg)
	}
}

func TestLoadSourceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		src     Sources
		want    []string // substrings of the error, each required
		unknown bool     // errors.Is(err, ErrUnknownKey)
	}{
		{"unknown file key", Sources{File: []byte(validYAML + "delivery: {batch: {max_recordz: 1}}\n")},
			[]string{`config file: unknown key "delivery.batch.max_recordz"`}, true},
		{"unknown nested and top-level keys", Sources{File: []byte(validYAML + "kafkaa: {}\nobservability: {listen: ':1', lvl: x}\n")},
			[]string{`unknown key "kafkaa"`, `unknown key "observability.lvl"`}, true},
		{"unknown route key", Sources{File: []byte("routes: [{topics: [a], stream: s}, {streem: s}]")},
			[]string{`unknown key "routes[1].streem"`}, true},
		{"keys are case-sensitive", Sources{File: []byte("Kafka: {group: g}")}, []string{`unknown key "Kafka"`}, true},
		{"file scalar for a section", Sources{File: []byte("kafka: localhost")}, []string{"kafka: want a mapping"}, false},
		{"file mapping for routes", Sources{File: []byte("routes: {stream: s}")}, []string{"routes: want a list"}, false},
		{"file bad duration", Sources{File: []byte("commit: {interval: soon}")},
			[]string{`config file: commit.interval: invalid duration "soon"`}, false},
		{"file duration without unit", Sources{File: []byte("delivery: {batch: {linger: 50}}")},
			[]string{"delivery.batch.linger: invalid duration 50: a number needs a unit"}, false},
		{"file bad size", Sources{File: []byte("delivery: {buffer_bytes: 5XB}")},
			[]string{`delivery.buffer_bytes: invalid byte size "5XB"`}, false},
		{"file fractional int", Sources{File: []byte("delivery: {max_in_flight: 1.5}")},
			[]string{"delivery.max_in_flight: invalid int value 1.5"}, false},
		{"file list for a string", Sources{File: []byte("kafka: {group: [a, b]}")}, []string{"kafka.group: invalid string value"}, false},
		{"not yaml", Sources{File: []byte("kafka: [")}, []string{"config file: yaml:"}, false},
		{"env for routes", Sources{Environ: []string{"FERRY_ROUTES=x"}}, []string{"routes can only be set in the config file"}, false},
		{"env bad int", Sources{Environ: []string{"FERRY_DELIVERY_MAX_IN_FLIGHT=lots"}},
			[]string{`FERRY_DELIVERY_MAX_IN_FLIGHT (delivery.max_in_flight): invalid int value "lots"`}, false},
		{"env bad bool", Sources{Environ: []string{"FERRY_KAFKA_TLS_ENABLED=yes"}}, []string{`invalid bool value "yes"`}, false},
		{"set without equals", Sources{Sets: []string{"kafka.group=g", "kafka.group"}}, []string{"set entry 2: want key.path=value"}, false},
		{"set empty key", Sources{Sets: []string{"=g"}}, []string{"set entry 1"}, false},
		{"unknown set key", Sources{Sets: []string{"kafka.grup=g"}}, []string{`set: unknown key "kafka.grup"`}, true},
		{"set for a section", Sources{Sets: []string{"kafka=g"}}, []string{`unknown key "kafka"`}, true},
		{"set for routes", Sources{Sets: []string{"routes=x"}}, []string{"routes can only be set in the config file"}, false},
		{"set bad duration", Sources{Sets: []string{"commit.interval=5"}}, []string{`set commit.interval: invalid duration "5"`}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Load(tc.src)
			if err == nil {
				t.Fatal("Load() error = nil")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load() error = %v\nwant it to contain %q", err, w)
				}
			}
			if got := errors.Is(err, ErrUnknownKey); got != tc.unknown {
				t.Errorf("errors.Is(err, ErrUnknownKey) = %v, want %v", got, tc.unknown)
			}
		})
	}
}

// A value that does not parse is reported and skipped: the lower layer's
// value stays, and Validate runs on the rest.
func TestLoadBadValueKeepsLowerLayer(t *testing.T) {
	t.Parallel()
	cfg, warnings, err := Load(Sources{
		File:    []byte(validYAML + "delivery: {max_in_flight: 8, batch: {max_records: 900}}\n"),
		Environ: []string{"FERRY_DELIVERY_MAX_IN_FLIGHT=lots", "FERRY_KAFKA_BROKERZ=x", "FERRY_ROUTES=x"},
	})
	if cfg.Delivery.MaxInFlight != 8 {
		t.Errorf("MaxInFlight = %d, want the file's 8", cfg.Delivery.MaxInFlight)
	}
	if len(sourceErrors(err)) != 2 {
		t.Errorf("source errors = %v, want 2", sourceErrors(err))
	}
	if len(warnings) != 1 {
		t.Errorf("warnings = %q, want 1 for FERRY_KAFKA_BROKERZ", warnings)
	}
	if fe := FieldErrors(err); len(fe) != 1 || fe[0].Path != "delivery.batch.max_records" {
		t.Errorf("FieldErrors = %v, want only delivery.batch.max_records", fe)
	}
}

func TestLoadIgnoresOtherEnv(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, Sources{Environ: []string{
		"FERRY_CONFIG=/etc/ferry.yaml", "FERRY_TEST_BROKERS=a:1", "ferry_kafka_group=lower", "NOEQUALS", "FERRYKAFKA_GROUP=x",
	}})
	if !reflect.DeepEqual(cfg, mustLoad(t, Sources{})) {
		t.Errorf("reserved or foreign variables changed the config: %+v", cfg)
	}
}

func TestLoadNoSources(t *testing.T) {
	t.Parallel()
	cfg, _, err := Load(Sources{})
	if cfg.Kafka.Group != "ferry" || cfg.Delivery.Batch.MaxBytes != DefaultRequestCap {
		t.Errorf("Load(Sources{}) = %+v, want the defaults", cfg)
	}
	// Defaults alone are incomplete: brokers, topics, region and routes are required.
	for _, p := range []string{"kafka.brokers", "kafka.topics", "kinesis.region", "routes"} {
		if !hasPath(FieldErrors(err), p) {
			t.Errorf("Load(Sources{}) error lacks %s: %v", p, err)
		}
	}
}

// YAML() output is a valid file that loads back to the same config.
func TestYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"valid": validConfig(),
		"odd sizes": func() Config {
			c := validConfig()
			c.Delivery.Batch.MaxBytes, c.Delivery.MaxRecordBytes = 1234567, 123457
			return c
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			back, warnings, err := Load(Sources{File: out})
			if err != nil || len(warnings) > 0 {
				t.Fatalf("Load(YAML()) warnings = %q, error = %v\n%s", warnings, err, out)
			}
			// Compare renderings: they cover every field but ignore nil vs
			// empty lists, which mean the same.
			again, err := back.YAML()
			if err != nil || string(again) != string(out) {
				t.Errorf("round trip changed the config:\n%s\nwant\n%s", again, out)
			}
			if back.Delivery.Batch.MaxBytes != cfg.Delivery.Batch.MaxBytes || back.Kinesis.Endpoint != cfg.Kinesis.Endpoint {
				t.Errorf("round trip: got %+v, want %+v", back, cfg)
			}
			for _, want := range []string{"session_timeout: 45s\n", "max_records: 500\n", "password: '[redacted]'\n",
				"\nkinesis:\n", "listen: :9090\n"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("YAML() lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// A route's key sources, payload format, condition and filters load from the
// file and become the route's mapping rule; an unknown key inside a route is
// an error like any other.
func TestLoadRouteMapping(t *testing.T) {
	t.Parallel()
	yaml := `
kafka: {brokers: ["k:9092"], topics: [orders]}
kinesis: {region: eu-west-1}
routes:
  - topics: [orders]
    stream: orders
    partition_key: "header:tenant"
    on_missing: [key, dlq]
    format: envelope
    value: base64
    when: {header: {name: region, equals: eu}}
    filters:
      - {tombstone: true, reason: deletes}
      - {header: {name: type, present: true}, negate: true}
delivery: {dlq_topic: ferry-dlq}
`
	cfg, warnings, err := Load(Sources{File: []byte(yaml)})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Load() warnings = %q, error = %v", warnings, err)
	}
	rule, err := cfg.Routes[0].Rule()
	if err != nil {
		t.Fatal(err)
	}
	if rule.PartitionKey != "header:tenant" || len(rule.OnMissing) != 2 || rule.When == nil || rule.When.Equals != "eu" ||
		len(rule.Filters) != 2 || !rule.Filters[0].Tombstone || rule.Filters[1].Header == nil || !rule.Filters[1].Negate {
		t.Fatalf("Rule() = %+v", rule)
	}
	_, _, err = Load(Sources{File: []byte(strings.Replace(yaml, "reason: deletes", "raeson: deletes", 1))})
	if err == nil || !strings.Contains(err.Error(), "raeson") {
		t.Fatalf("a misspelt key inside a route filter loads: %v", err)
	}
}
