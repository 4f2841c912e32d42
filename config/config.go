// Package config turns ferry's configuration sources (defaults, a YAML file,
// FERRY_ environment variables and --set flags) into one validated Config.
//
// The package does no I/O: the caller reads the file and the environment and
// passes their contents in, so every precedence rule is a table test.
package config

import (
	"time"
)

// Config is ferry's whole configuration. The koanf tags are the key names
// users write in their files; they are a compatibility contract.
type Config struct {
	Kafka         Kafka         `koanf:"kafka" yaml:"kafka"`
	Decode        Decode        `koanf:"decode" yaml:"decode"`
	Kinesis       Kinesis       `koanf:"kinesis" yaml:"kinesis"`
	Routes        []Route       `koanf:"routes" yaml:"routes"`
	Delivery      Delivery      `koanf:"delivery" yaml:"delivery"`
	Commit        Commit        `koanf:"commit" yaml:"commit"`
	Observability Observability `koanf:"observability" yaml:"observability"`
}

// Kafka says where to read from.
type Kafka struct {
	Brokers    []string `koanf:"brokers" yaml:"brokers"`
	Group      string   `koanf:"group" yaml:"group"`
	Topics     []string `koanf:"topics" yaml:"topics"`
	TopicRegex string   `koanf:"topic_regex" yaml:"topic_regex"`
	// Start is where a group with no committed offset begins: earliest or latest.
	Start string `koanf:"start" yaml:"start"`
	// OnOffsetLost is what to do when retention deleted records past the
	// committed offset before ferry delivered them: fail, earliest or latest.
	OnOffsetLost string `koanf:"on_offset_lost" yaml:"on_offset_lost"`
	// IsolationLevel is read_committed (skip aborted transactions) or
	// read_uncommitted.
	IsolationLevel string `koanf:"isolation_level" yaml:"isolation_level"`
	// MetadataMaxAge bounds how long new partitions and topics go unnoticed.
	MetadataMaxAge time.Duration `koanf:"metadata_max_age" yaml:"metadata_max_age"`
	ClientID       string        `koanf:"client_id" yaml:"client_id"`
	// SessionTimeout and RebalanceTimeout are passed to the group protocol.
	SessionTimeout   time.Duration `koanf:"session_timeout" yaml:"session_timeout"`
	RebalanceTimeout time.Duration `koanf:"rebalance_timeout" yaml:"rebalance_timeout"`
	// AuthFailureTimeout is how long a broker may keep refusing ferry's
	// authentication or TLS after start before ferry stops (exit 1).
	AuthFailureTimeout time.Duration `koanf:"auth_failure_timeout" yaml:"auth_failure_timeout"`
	TLS                TLS           `koanf:"tls" yaml:"tls"`
	SASL               SASL          `koanf:"sasl" yaml:"sasl"`
}

// TLS configures the Kafka connection's TLS.
type TLS struct {
	Enabled            bool   `koanf:"enabled" yaml:"enabled"`
	CAFile             string `koanf:"ca_file" yaml:"ca_file"`
	CertFile           string `koanf:"cert_file" yaml:"cert_file"`
	KeyFile            string `koanf:"key_file" yaml:"key_file"`
	ServerName         string `koanf:"server_name" yaml:"server_name"`
	InsecureSkipVerify bool   `koanf:"insecure_skip_verify" yaml:"insecure_skip_verify"`
}

// SASL configures Kafka authentication. Mechanism is empty (none), PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM.
type SASL struct {
	Mechanism string `koanf:"mechanism" yaml:"mechanism"`
	Username  string `koanf:"username" yaml:"username"`
	Password  Secret `koanf:"password" yaml:"password"`
	// AWS picks the AWS identity of AWS_MSK_IAM. Every field left empty
	// takes the kinesis.* value, so by default both use one identity.
	AWS SASLAWS `koanf:"aws" yaml:"aws"`
}

// SASLAWS overrides, for AWS_MSK_IAM, the AWS identity set under kinesis.
// The region is not here: franz-go signs for the region in the broker's
// host name (b-1.NAME.ID.c2.kafka.REGION.amazonaws.com), or AWS_REGION.
type SASLAWS struct {
	RoleARN     string `koanf:"role_arn" yaml:"role_arn"`
	ExternalID  string `koanf:"external_id" yaml:"external_id"`
	SessionName string `koanf:"session_name" yaml:"session_name"`
	// The three keys are taken together: setting AccessKeyID ignores the
	// kinesis.* keys.
	AccessKeyID     string `koanf:"access_key_id" yaml:"access_key_id"`
	SecretAccessKey Secret `koanf:"secret_access_key" yaml:"secret_access_key"`
	SessionToken    Secret `koanf:"session_token" yaml:"session_token"`
}

// Kinesis says where to write to. Credentials come from the AWS default chain
// unless AccessKeyID and SecretAccessKey are set.
type Kinesis struct {
	Region   string `koanf:"region" yaml:"region"`
	Endpoint string `koanf:"endpoint" yaml:"endpoint"`
	// RoleARN is a role assumed on top of the base credentials.
	RoleARN string `koanf:"role_arn" yaml:"role_arn"`
	// ExternalID is sent with AssumeRole, for trust policies that require
	// sts:ExternalId.
	ExternalID string `koanf:"external_id" yaml:"external_id"`
	// SessionName is the role session name. It must stay the same from one
	// AssumeRole to the next: it is part of the principal, and MSK rejects
	// a re-authentication whose principal changed.
	SessionName string `koanf:"session_name" yaml:"session_name"`
	// RoleDuration is how long assumed-role credentials last (15m to 12h,
	// and at most the role's maximum session duration).
	RoleDuration    time.Duration `koanf:"role_duration" yaml:"role_duration"`
	AccessKeyID     string        `koanf:"access_key_id" yaml:"access_key_id"`
	SecretAccessKey Secret        `koanf:"secret_access_key" yaml:"secret_access_key"`
	SessionToken    Secret        `koanf:"session_token" yaml:"session_token"`
}

// Route sends the records of some topics to one stream. The first route
// whose Topics list or Regex matches a record's topic wins.
type Route struct {
	Topics []string `koanf:"topics" yaml:"topics"`
	Regex  string   `koanf:"regex" yaml:"regex"`
	Stream string   `koanf:"stream" yaml:"stream"`
	// PartitionKey is where the Kinesis partition key comes from: key (the
	// Kafka key, the default), partition, header:NAME, json:/POINTER, random,
	// or a template combining them (${topic}:${key}).
	PartitionKey string `koanf:"partition_key" yaml:"partition_key"`
	// OnMissing is tried, in order, when the source yields nothing; it may
	// end in fail, skip or dlq.
	OnMissing []string `koanf:"on_missing" yaml:"on_missing,omitempty"`
	// Format is the payload: raw (the Kafka value, the default), envelope
	// (a JSON object with the whole record) or cloudevents.
	Format string `koanf:"format" yaml:"format,omitempty"`
	// Value is how an envelope carries the value: auto, base64 or string.
	Value string `koanf:"value" yaml:"value,omitempty"`
	// When narrows the route to records with a header.
	When *RouteWhen `koanf:"when" yaml:"when,omitempty"`
	// Filters drop records of the route, counted as delivered.
	Filters []RouteFilter `koanf:"filters" yaml:"filters,omitempty"`
	// HashKey is none (Kinesis hashes the partition key, the default) or
	// kafka_partition (each Kafka partition pinned to one shard).
	HashKey string `koanf:"hash_key" yaml:"hash_key,omitempty"`
}

// RouteWhen is a route's condition on a record.
type RouteWhen struct {
	Header *HeaderCondition `koanf:"header" yaml:"header,omitempty"`
}

// HeaderCondition matches a record by one header: equal to a value, present,
// or matching a regular expression.
type HeaderCondition struct {
	Name    string `koanf:"name" yaml:"name"`
	Equals  string `koanf:"equals" yaml:"equals,omitempty"`
	Present bool   `koanf:"present" yaml:"present,omitempty"`
	Regex   string `koanf:"regex" yaml:"regex,omitempty"`
}

// RouteFilter drops the records its condition matches (with negate, those
// it does not match); keep inverts the action: keep only the matching ones.
type RouteFilter struct {
	Tombstone bool             `koanf:"tombstone" yaml:"tombstone,omitempty"`
	Header    *HeaderCondition `koanf:"header" yaml:"header,omitempty"`
	Topic     string           `koanf:"topic" yaml:"topic,omitempty"`
	Negate    bool             `koanf:"negate" yaml:"negate,omitempty"`
	Keep      bool             `koanf:"keep" yaml:"keep,omitempty"`
	Reason    string           `koanf:"reason" yaml:"reason,omitempty"`
}

// Delivery tunes batching, concurrency, retries, memory and bad records.
type Delivery struct {
	Batch       Batch `koanf:"batch" yaml:"batch"`
	MaxInFlight int   `koanf:"max_in_flight" yaml:"max_in_flight"`
	Retry       Retry `koanf:"retry" yaml:"retry"`
	// BufferBytes bounds the bytes of records fetched but not yet delivered;
	// when reached, fetching pauses.
	BufferBytes ByteSize `koanf:"buffer_bytes" yaml:"buffer_bytes"`
	// MaxRecordBytes is the largest record (data plus partition key) Kinesis
	// takes; larger records follow OnInvalid.
	MaxRecordBytes ByteSize `koanf:"max_record_bytes" yaml:"max_record_bytes"`
	// RateLimit paces requests under Kinesis' per-shard write limits.
	RateLimit RateLimit `koanf:"rate_limit" yaml:"rate_limit"`
	// Aggregation packs user records into KPL aggregated records.
	Aggregation Aggregation `koanf:"aggregation" yaml:"aggregation"`
	// Ordering is key (records of one partition key reach Kinesis in Kafka
	// order, even under partial failures) or none (best effort, faster
	// with few hot keys).
	Ordering string `koanf:"ordering" yaml:"ordering"`
	// OnInvalid is fail, skip or dlq.
	OnInvalid string `koanf:"on_invalid" yaml:"on_invalid"`
	DLQTopic  string `koanf:"dlq_topic" yaml:"dlq_topic"`
	// Tombstones is what a record with a null value becomes: empty (a
	// zero-length Kinesis record with the record's key), skip or dlq.
	Tombstones string `koanf:"tombstones" yaml:"tombstones"`
	// OnMissingStream is what a record whose templated stream does not
	// exist (or expands to an invalid name) becomes: fail, skip or dlq.
	OnMissingStream string `koanf:"on_missing_stream" yaml:"on_missing_stream"`
	// DrainTimeout bounds how long a revoke or a shutdown waits for in-flight
	// deliveries before committing what was delivered.
	DrainTimeout time.Duration `koanf:"drain_timeout" yaml:"drain_timeout"`
	// RequestTimeout bounds one PutRecords call.
	RequestTimeout time.Duration `koanf:"request_timeout" yaml:"request_timeout"`
}

// Aggregation configures KPL aggregation: many user records in one Kinesis
// record, in the format the KCL and the KPL de-aggregate. Off by default:
// consumers that do not de-aggregate would see the aggregate bytes.
type Aggregation struct {
	Enabled  bool     `koanf:"enabled" yaml:"enabled"`
	MaxBytes ByteSize `koanf:"max_bytes" yaml:"max_bytes"`
}

// RateLimit keeps each predicted shard under Kinesis' documented write
// limits (1,000 records/s and 1 MiB/s per shard, times Factor), so ferry
// sends what the stream can take instead of provoking throttles.
type RateLimit struct {
	Enabled bool    `koanf:"enabled" yaml:"enabled"`
	Factor  float64 `koanf:"factor" yaml:"factor"`
}

// Batch bounds one PutRecords request.
type Batch struct {
	MaxRecords int           `koanf:"max_records" yaml:"max_records"`
	MaxBytes   ByteSize      `koanf:"max_bytes" yaml:"max_bytes"`
	Linger     time.Duration `koanf:"linger" yaml:"linger"`
}

// Retry is the backoff for throttled and failed entries: exponential from
// Initial, capped at Max, with full jitter. Retries never give up.
type Retry struct {
	Initial time.Duration `koanf:"initial" yaml:"initial"`
	Max     time.Duration `koanf:"max" yaml:"max"`
}

// Commit tunes offset commits.
type Commit struct {
	Interval time.Duration `koanf:"interval" yaml:"interval"`
}

// Observability configures logs, metrics and health endpoints.
type Observability struct {
	Listen    string `koanf:"listen" yaml:"listen"`
	LogLevel  string `koanf:"log_level" yaml:"log_level"`
	LogFormat string `koanf:"log_format" yaml:"log_format"`
}

// Kinesis PutRecords limits, from the API reference.
const (
	MaxPutRecords      = 500
	MaxRequestBytes    = 10 << 20 // the 10 MiB ceiling AWS now allows; 5 MiB is the default
	DefaultRequestCap  = 5 << 20
	DefaultRecordBytes = 1 << 20
	MaxRecordBytes     = 10 << 20
)

// Default returns the configuration used where no source sets a key.
func Default() Config {
	return Config{
		Kafka: Kafka{
			Group:              "ferry",
			Start:              "earliest",
			OnOffsetLost:       "fail",
			IsolationLevel:     "read_committed",
			MetadataMaxAge:     time.Minute,
			ClientID:           "ferry",
			SessionTimeout:     45 * time.Second,
			RebalanceTimeout:   60 * time.Second,
			AuthFailureTimeout: 60 * time.Second,
		},
		Kinesis: Kinesis{SessionName: "ferry", RoleDuration: time.Hour},
		Delivery: Delivery{
			Batch:           Batch{MaxRecords: 500, MaxBytes: DefaultRequestCap, Linger: 50 * time.Millisecond},
			MaxInFlight:     16,
			Retry:           Retry{Initial: 100 * time.Millisecond, Max: 10 * time.Second},
			BufferBytes:     64 << 20,
			MaxRecordBytes:  DefaultRecordBytes,
			Ordering:        "key",
			Aggregation:     Aggregation{MaxBytes: 50 << 10},
			RateLimit:       RateLimit{Enabled: true, Factor: 1},
			OnInvalid:       "fail",
			Tombstones:      "empty",
			OnMissingStream: "fail",
			DrainTimeout:    20 * time.Second,
			RequestTimeout:  30 * time.Second,
		},
		Commit:        Commit{Interval: 250 * time.Millisecond},
		Observability: Observability{Listen: ":9090", LogLevel: "info", LogFormat: "json"},
		Decode:        defaultDecode(),
	}
}
