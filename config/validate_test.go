package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"full", func(*Config) {}},
		{"topic regex only", func(c *Config) { c.Kafka.Topics, c.Kafka.TopicRegex = nil, "^(orders|pay)" }},
		{"no tls no sasl", func(c *Config) { c.Kafka.TLS, c.Kafka.SASL = TLS{}, SASL{} }},
		{"tls enabled only", func(c *Config) { c.Kafka.TLS = TLS{Enabled: true} }},
		{"lower-case sasl mechanism", func(c *Config) { c.Kafka.SASL.Mechanism = "plain" }},
		{"default credential chain", func(c *Config) { c.Kinesis.AccessKeyID, c.Kinesis.SecretAccessKey, c.Kinesis.SessionToken = "", "", "" }},
		{"local endpoint", func(c *Config) { c.Kinesis.Endpoint = "http://localhost:4566/" }},
		{"ipv6 endpoint", func(c *Config) { c.Kinesis.Endpoint = "http://[::1]:4566" }},
		{"empty partition key", func(c *Config) { c.Routes[0].PartitionKey = "" }},
		{"listen disabled", func(c *Config) { c.Observability.Listen = "" }},
		{"listen any port", func(c *Config) { c.Observability.Listen = "127.0.0.1:0" }},
		{"skip without dlq topic", func(c *Config) { c.Delivery.OnInvalid, c.Delivery.DLQTopic = OnInvalidSkip, "" }},
		{"templated stream", func(c *Config) { c.Routes[0].Stream = "${topic}-copy" }},
		{"pinned partitions", func(c *Config) { c.Routes[0].HashKey = "kafka_partition" }},
		{"missing streams skipped", func(c *Config) { c.Delivery.OnMissingStream = OnMissingStreamSkip }},
		{"batch at the limits", func(c *Config) {
			c.Delivery.Batch.MaxRecords, c.Delivery.Batch.MaxBytes = MaxPutRecords, MaxRequestBytes
			c.Delivery.MaxRecordBytes, c.Delivery.BufferBytes = MaxRecordBytes, MaxRequestBytes
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func TestValidateRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mutate   func(*Config)
		wantPath string
		wantMsg  string // a substring of the full "path: msg" error
	}{
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers", "at least one broker"},
		{"broker without port", func(c *Config) { c.Kafka.Brokers[0] = "kafka" }, "kafka.brokers[0]", `"kafka" must be host:port`},
		{"broker port not numeric", func(c *Config) { c.Kafka.Brokers[1] = "kafka:http" }, "kafka.brokers[1]", "numeric port"},
		{"broker port zero", func(c *Config) { c.Kafka.Brokers[0] = "kafka:0" }, "kafka.brokers[0]", "outside 1..65535"},
		{"broker port too big", func(c *Config) { c.Kafka.Brokers[0] = "kafka:65536" }, "kafka.brokers[0]", "65536"},
		{"broker empty host", func(c *Config) { c.Kafka.Brokers[0] = ":9092" }, "kafka.brokers[0]", "host is empty"},
		{"broker bare ipv6", func(c *Config) { c.Kafka.Brokers[0] = "::1:9092" }, "kafka.brokers[0]", "brackets"},
		{"no group", func(c *Config) { c.Kafka.Group = "" }, "kafka.group", "must not be empty"},
		{"unknown hash key", func(c *Config) { c.Routes[0].HashKey = "partition" }, "routes[0].hash_key", `"partition" must be none or kafka_partition`},
		{"unknown missing-stream policy", func(c *Config) { c.Delivery.OnMissingStream = "drop" }, "delivery.on_missing_stream", `"drop" must be fail, skip or dlq`},
		{"missing streams to no dlq", func(c *Config) { c.Delivery.OnMissingStream, c.Delivery.DLQTopic = OnMissingStreamDLQ, "" }, "delivery.dlq_topic", "on_missing_stream is dlq"},
		{"missing keys to no dlq", func(c *Config) { c.Routes[0].OnMissing, c.Delivery.DLQTopic = []string{"dlq"}, "" }, "delivery.dlq_topic", "on_missing ends in dlq"},
		{"broken stream template", func(c *Config) { c.Routes[0].Stream = "${topic" }, "routes[0]", "stream"},
		{"no topics nor regex", func(c *Config) { c.Kafka.Topics = nil }, "kafka.topics", "kafka.topic_regex"},
		{"topics and regex", func(c *Config) { c.Kafka.TopicRegex = "^o" }, "kafka.topic_regex", "exactly one"},
		{"topic regex broken", func(c *Config) { c.Kafka.Topics, c.Kafka.TopicRegex = nil, "(" }, "kafka.topic_regex", "does not compile"},
		{"empty topic", func(c *Config) { c.Kafka.Topics[1] = "" }, "kafka.topics[1]", "empty"},
		{"bad topic name", func(c *Config) { c.Kafka.Topics[1] = "pay ments" }, "kafka.topics[1]", "not a valid Kafka topic name"},
		{"duplicate topic", func(c *Config) { c.Kafka.Topics[2] = "orders" }, "kafka.topics[2]", "duplicates kafka.topics[0]"},
		{"bad start", func(c *Config) { c.Kafka.Start = "middle" }, "kafka.start", `"middle" must be earliest, latest or timestamp:RFC3339`},
		{"bad start time", func(c *Config) { c.Kafka.Start = "timestamp:yesterday" }, "kafka.start", `"timestamp:yesterday"`},
		{"bad ordering", func(c *Config) { c.Delivery.Ordering = "strict" }, "delivery.ordering", `"strict" must be key or none`},
		{"bad offset-lost policy", func(c *Config) { c.Kafka.OnOffsetLost = "ignore" }, "kafka.on_offset_lost", `"ignore" must be fail, earliest or latest`},
		{"bad isolation", func(c *Config) { c.Kafka.IsolationLevel = "dirty" }, "kafka.isolation_level", `"dirty" must be read_committed or read_uncommitted`},
		{"zero metadata age", func(c *Config) { c.Kafka.MetadataMaxAge = 0 }, "kafka.metadata_max_age", "must be positive"},
		{"zero session timeout", func(c *Config) { c.Kafka.SessionTimeout = 0 }, "kafka.session_timeout", "0s must be positive"},
		{"negative rebalance timeout", func(c *Config) { c.Kafka.RebalanceTimeout = -time.Second }, "kafka.rebalance_timeout", "-1s must be positive"},
		{"zero auth failure timeout", func(c *Config) { c.Kafka.AuthFailureTimeout = 0 }, "kafka.auth_failure_timeout", "0s must be positive"},
		{"cert without key", func(c *Config) { c.Kafka.TLS.KeyFile = "" }, "kafka.tls.key_file", "required"},
		{"key without cert", func(c *Config) { c.Kafka.TLS.CertFile = "" }, "kafka.tls.cert_file", "required"},
		{"tls settings while disabled", func(c *Config) { c.Kafka.TLS.Enabled = false }, "kafka.tls.enabled", "kafka.tls.ca_file is set"},
		{"unknown sasl mechanism", func(c *Config) { c.Kafka.SASL.Mechanism = "GSSAPI" }, "kafka.sasl.mechanism", `"GSSAPI"`},
		{"sasl without username", func(c *Config) { c.Kafka.SASL.Username = "" }, "kafka.sasl.username", "required"},
		{"sasl without password", func(c *Config) { c.Kafka.SASL.Password = "" }, "kafka.sasl.password", "required"},
		{"sasl credentials without mechanism", func(c *Config) { c.Kafka.SASL.Mechanism = "" }, "kafka.sasl.mechanism", "is empty"},
		{"no region", func(c *Config) { c.Kinesis.Region = "" }, "kinesis.region", "must not be empty"},
		{"endpoint without scheme", func(c *Config) { c.Kinesis.Endpoint = "localhost:4566" }, "kinesis.endpoint", "absolute http"},
		{"endpoint ftp", func(c *Config) { c.Kinesis.Endpoint = "ftp://host" }, "kinesis.endpoint", "absolute http"},
		{"endpoint without host", func(c *Config) { c.Kinesis.Endpoint = "https:///path" }, "kinesis.endpoint", "no host"},
		{"endpoint bad port", func(c *Config) { c.Kinesis.Endpoint = "http://localhost:port" }, "kinesis.endpoint", "numeric port"},
		{"bad role arn", func(c *Config) { c.Kinesis.RoleARN = "ferry" }, "kinesis.role_arn", "not an IAM role ARN"},
		{"access key without secret", func(c *Config) { c.Kinesis.SecretAccessKey = "" }, "kinesis.secret_access_key", "required"},
		{"secret without access key", func(c *Config) { c.Kinesis.AccessKeyID = "" }, "kinesis.access_key_id", "required"},
		{"session token alone", func(c *Config) { c.Kinesis.AccessKeyID, c.Kinesis.SecretAccessKey = "", "" }, "kinesis.session_token", "needs"},
		{"no routes", func(c *Config) { c.Routes = nil }, "routes", "at least one route"},
		{"route without stream", func(c *Config) { c.Routes[1].Stream = "" }, "routes[1].stream", `""`},
		{"route stream bad chars", func(c *Config) { c.Routes[0].Stream = "a/b" }, "routes[0].stream", `"a/b"`},
		{"route stream too long", func(c *Config) { c.Routes[0].Stream = strings.Repeat("s", 129) }, "routes[0].stream", "1 to 128"},
		{"route without topics or regex", func(c *Config) { c.Routes[0].Topics = nil }, "routes[0].topics", "routes[0].regex"},
		{"route with topics and regex", func(c *Config) { c.Routes[0].Regex = "^o" }, "routes[0].regex", "exactly one"},
		{"route regex broken", func(c *Config) { c.Routes[1].Regex = "[" }, "routes[1].regex", "does not compile"},
		{"route empty topic", func(c *Config) { c.Routes[0].Topics = []string{"orders", ""} }, "routes[0].topics[1]", "empty"},
		{"route bad partition key", func(c *Config) { c.Routes[1].PartitionKey = "value" }, "routes[1].partition_key", `"value": unknown partition key source`},
		{"route bad json pointer", func(c *Config) { c.Routes[1].PartitionKey = "json:user" }, "routes[1].partition_key", `"json:user"`},
		{"route on_missing after partition", func(c *Config) {
			c.Routes[1].PartitionKey, c.Routes[1].OnMissing = "header:tenant", []string{"partition", "key"}
		}, "routes[1].partition_key", "on_missing"},
		{"route bad format", func(c *Config) { c.Routes[1].Format = "avro" }, "routes[1].format", `"avro"`},
		{"route value without envelope", func(c *Config) { c.Routes[1].Value = "base64" }, "routes[1]", "envelope"},
		{"route filter without predicate", func(c *Config) { c.Routes[1].Filters = []RouteFilter{{Negate: true}} }, "routes[1].filters", ""},
		{"topic matches no route", func(c *Config) { c.Routes[1].Regex = "^pay" }, "kafka.topics", `kafka.topics: topic "audit" matches no route`},
		{"too many records", func(c *Config) { c.Delivery.Batch.MaxRecords = 900 }, "delivery.batch.max_records",
			"delivery.batch.max_records: 900 exceeds the PutRecords limit of 500"},
		{"zero records", func(c *Config) { c.Delivery.Batch.MaxRecords = 0 }, "delivery.batch.max_records", "at least 1"},
		{"zero batch bytes", func(c *Config) { c.Delivery.Batch.MaxBytes = 0 }, "delivery.batch.max_bytes", "at least 1"},
		{"batch bytes too big", func(c *Config) { c.Delivery.Batch.MaxBytes = 11 * MiB }, "delivery.batch.max_bytes",
			"11MiB exceeds the PutRecords request limit of 10MiB"},
		{"negative linger", func(c *Config) { c.Delivery.Batch.Linger = -time.Millisecond }, "delivery.batch.linger", "-1ms"},
		{"zero record bytes", func(c *Config) { c.Delivery.MaxRecordBytes = 0 }, "delivery.max_record_bytes", "at least 1"},
		{"record bytes too big", func(c *Config) {
			c.Delivery.Batch.MaxBytes, c.Delivery.MaxRecordBytes = MaxRequestBytes, 11*MiB
		}, "delivery.max_record_bytes", "Kinesis record limit"},
		{"record bigger than batch", func(c *Config) { c.Delivery.Batch.MaxBytes, c.Delivery.MaxRecordBytes = MiB, 2*MiB },
			"delivery.max_record_bytes", "exceeds delivery.batch.max_bytes"},
		{"zero in flight", func(c *Config) { c.Delivery.MaxInFlight = 0 }, "delivery.max_in_flight", "at least 1"},
		{"too many in flight", func(c *Config) { c.Delivery.MaxInFlight = 2000 }, "delivery.max_in_flight", "exceeds 1024"},
		{"zero retry initial", func(c *Config) { c.Delivery.Retry.Initial = 0 }, "delivery.retry.initial", "must be positive"},
		{"retry max below initial", func(c *Config) { c.Delivery.Retry.Max = 10 * time.Millisecond }, "delivery.retry.max", "less than delivery.retry.initial"},
		{"buffer smaller than a request", func(c *Config) { c.Delivery.BufferBytes = MiB }, "delivery.buffer_bytes", "1MiB is less than"},
		{"bad on_invalid", func(c *Config) { c.Delivery.OnInvalid = "drop" }, "delivery.on_invalid", `"drop"`},
		{"dlq without topic", func(c *Config) { c.Delivery.DLQTopic = "" }, "delivery.dlq_topic", "required"},
		{"bad tombstones", func(c *Config) { c.Delivery.Tombstones = "drop" }, "delivery.tombstones", `"drop"`},
		{"tombstones dlq without topic", func(c *Config) {
			c.Delivery.OnInvalid = "fail"
			c.Delivery.DLQTopic = ""
			c.Delivery.Tombstones = "dlq"
		},
			"delivery.dlq_topic", "delivery.tombstones"},
		{"dlq topic consumed", func(c *Config) { c.Delivery.DLQTopic = "audit" }, "delivery.dlq_topic", "kafka.topics"},
		{"dlq topic matches regex", func(c *Config) {
			c.Kafka.Topics, c.Kafka.TopicRegex, c.Delivery.DLQTopic = nil, "^ferry", "ferry-dlq"
		}, "delivery.dlq_topic", "kafka.topic_regex"},
		{"dlq topic invalid", func(c *Config) { c.Delivery.DLQTopic = "dlq!" }, "delivery.dlq_topic", "not a valid Kafka topic name"},
		{"zero drain timeout", func(c *Config) { c.Delivery.DrainTimeout = 0 }, "delivery.drain_timeout", "must be positive"},
		{"drain not below rebalance", func(c *Config) { c.Delivery.DrainTimeout = c.Kafka.RebalanceTimeout }, "delivery.drain_timeout",
			"less than kafka.rebalance_timeout"},
		{"zero request timeout", func(c *Config) { c.Delivery.RequestTimeout = 0 }, "delivery.request_timeout", "must be positive"},
		{"zero commit interval", func(c *Config) { c.Commit.Interval = 0 }, "commit.interval", "must be positive"},
		{"bad log level", func(c *Config) { c.Observability.LogLevel = "trace" }, "observability.log_level", `"trace"`},
		{"bad log format", func(c *Config) { c.Observability.LogFormat = "xml" }, "observability.log_format", `"xml"`},
		{"listen without host:port", func(c *Config) { c.Observability.Listen = "9090" }, "observability.listen", `"9090"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want an error at %s", tc.wantPath)
			}
			var found bool
			for _, fe := range FieldErrors(err) {
				if fe.Path == tc.wantPath && strings.Contains(fe.Error(), tc.wantMsg) {
					found = true
				}
			}
			if !found {
				t.Fatalf("Validate() = %v\nwant an error at %s containing %q", err, tc.wantPath, tc.wantMsg)
			}
			if !strings.Contains(err.Error(), tc.wantPath+": ") {
				t.Errorf("error text %q does not name %s", err, tc.wantPath)
			}
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	err := Config{}.Validate()
	var fe FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("errors.As(%v, *FieldError) = false", err)
	}
	got := FieldErrors(err)
	for _, path := range []string{
		"kafka.brokers", "kafka.group", "kafka.topics", "kafka.start", "kafka.session_timeout",
		"kafka.rebalance_timeout", "kinesis.region", "routes", "delivery.batch.max_records",
		"delivery.batch.max_bytes", "delivery.max_record_bytes", "delivery.max_in_flight",
		"delivery.retry.initial", "delivery.buffer_bytes", "delivery.on_invalid", "delivery.drain_timeout",
		"delivery.request_timeout", "commit.interval", "observability.log_level", "observability.log_format",
	} {
		if !hasPath(got, path) {
			t.Errorf("Validate(Config{}) lacks %s; got %v", path, err)
		}
	}
}

func TestFieldError(t *testing.T) {
	t.Parallel()
	e := FieldError{Path: "delivery.batch.max_records", Value: 900, Msg: "900 exceeds the PutRecords limit of 500"}
	if got, want := e.Error(), "delivery.batch.max_records: 900 exceeds the PutRecords limit of 500"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := errors.Join(errors.New("other"), errors.Join(e, &e))
	if got := FieldErrors(wrapped); len(got) != 2 || got[0] != e {
		t.Errorf("FieldErrors = %v, want two copies of %v", got, e)
	}
	if FieldErrors(nil) != nil {
		t.Error("FieldErrors(nil) != nil")
	}
}

func TestStartTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		start string
		ok    bool
	}{{"earliest", false}, {"timestamp:2026-06-01T00:00:00Z", true}, {"timestamp:2026-06-01T00:00:00.5+02:00", true},
		{"timestamp:2026-06-01", false}, {"timestamp:", false}} {
		if _, ok := (Kafka{Start: tc.start}).StartTime(); ok != tc.ok {
			t.Errorf("StartTime(%q) ok = %t, want %t", tc.start, ok, tc.ok)
		}
	}
}
