package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylabs/ferry/mapping"
)

// Accepted values of the enumerated keys.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"

	OffsetLostFail     = "fail"
	OffsetLostEarliest = "earliest"
	OffsetLostLatest   = "latest"

	ReadCommitted   = "read_committed"
	ReadUncommitted = "read_uncommitted"

	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLAWSMSKIAM   = "AWS_MSK_IAM"

	PartitionKeyKey       = "key"
	PartitionKeyPartition = "partition"

	OrderingKey  = "key"
	OrderingNone = "none"

	OnInvalidFail = "fail"
	OnInvalidSkip = "skip"
	OnInvalidDLQ  = "dlq"

	TombstonesEmpty = "empty"
	TombstonesSkip  = "skip"
	TombstonesDLQ   = "dlq"

	OnMissingStreamFail = "fail"
	OnMissingStreamSkip = "skip"
	OnMissingStreamDLQ  = "dlq"

	// MaxInFlightLimit caps delivery.max_in_flight.
	MaxInFlightLimit = 1024
)

// FieldError is one Validate failure. Path is the key path as users write it
// ("delivery.batch.max_records", "routes[1].stream"), Value the offending
// value (nil when the problem is an absence; never a secret), and Msg the
// complete explanation, which already quotes the value.
type FieldError struct {
	Path  string
	Value any
	Msg   string
}

// Error returns "path: msg".
func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// FieldErrors returns every FieldError inside err, walking errors.Join trees
// and %w wraps, in order. Errors of other types (Load's source errors) are
// skipped.
func FieldErrors(err error) []FieldError {
	var out []FieldError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) { //nolint:errorlint // walking the tree by hand is the point
		case nil:
		case FieldError:
			out = append(out, e)
		case *FieldError:
			out = append(out, *e)
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// problems collects FieldErrors in rule order.
type problems []error

func (p *problems) add(path string, value any, format string, args ...any) {
	*p = append(*p, FieldError{Path: path, Value: value, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks every rule and returns all failures joined, or nil. Each
// failure is a FieldError naming the key path and the bad value.
func (c Config) Validate() error {
	var p problems
	c.validateKafka(&p)
	c.validateKinesis(&p)
	c.validateRoutes(&p)
	c.validateDelivery(&p)
	if c.Commit.Interval <= 0 {
		p.add("commit.interval", c.Commit.Interval, "%s must be positive", c.Commit.Interval)
	}
	c.validateObservability(&p)
	c.validateDecode(&p)
	return errors.Join(p...)
}

func (c Config) validateKafka(p *problems) {
	k := c.Kafka
	if len(k.Brokers) == 0 {
		p.add("kafka.brokers", nil, "must list at least one broker as host:port")
	}
	for i, b := range k.Brokers {
		if msg := checkHostPort(b, false); msg != "" {
			p.add(fmt.Sprintf("kafka.brokers[%d]", i), b, "%q %s", b, msg)
		}
	}
	if k.Group == "" {
		p.add("kafka.group", k.Group, "must not be empty")
	}

	switch {
	case len(k.Topics) == 0 && k.TopicRegex == "":
		p.add("kafka.topics", nil, "set kafka.topics or kafka.topic_regex")
	case len(k.Topics) > 0 && k.TopicRegex != "":
		p.add("kafka.topic_regex", k.TopicRegex, "%q is set together with kafka.topics; set exactly one", k.TopicRegex)
	}
	if k.TopicRegex != "" {
		if _, err := regexp.Compile(k.TopicRegex); err != nil {
			p.add("kafka.topic_regex", k.TopicRegex, "%q does not compile: %v", k.TopicRegex, err)
		}
	}
	checkTopicList(p, "kafka.topics", k.Topics)

	if _, ok := k.StartTime(); !ok && k.Start != StartEarliest && k.Start != StartLatest {
		p.add("kafka.start", k.Start, "%q must be %s, %s or timestamp:RFC3339 (e.g. timestamp:2026-06-01T00:00:00Z)",
			k.Start, StartEarliest, StartLatest)
	}
	switch k.OnOffsetLost {
	case OffsetLostFail, OffsetLostEarliest, OffsetLostLatest:
	default:
		p.add("kafka.on_offset_lost", k.OnOffsetLost, "%q must be %s, %s or %s", k.OnOffsetLost, OffsetLostFail, OffsetLostEarliest, OffsetLostLatest)
	}
	if k.IsolationLevel != ReadCommitted && k.IsolationLevel != ReadUncommitted {
		p.add("kafka.isolation_level", k.IsolationLevel, "%q must be %s or %s", k.IsolationLevel, ReadCommitted, ReadUncommitted)
	}
	if k.MetadataMaxAge <= 0 {
		p.add("kafka.metadata_max_age", k.MetadataMaxAge, "%s must be positive", k.MetadataMaxAge)
	}
	if k.SessionTimeout <= 0 {
		p.add("kafka.session_timeout", k.SessionTimeout, "%s must be positive", k.SessionTimeout)
	}
	if k.RebalanceTimeout <= 0 {
		p.add("kafka.rebalance_timeout", k.RebalanceTimeout, "%s must be positive", k.RebalanceTimeout)
	}
	if k.AuthFailureTimeout <= 0 {
		p.add("kafka.auth_failure_timeout", k.AuthFailureTimeout, "%s must be positive", k.AuthFailureTimeout)
	}

	t := k.TLS
	if t.CertFile != "" && t.KeyFile == "" {
		p.add("kafka.tls.key_file", nil, "is required when kafka.tls.cert_file is set")
	}
	if t.KeyFile != "" && t.CertFile == "" {
		p.add("kafka.tls.cert_file", nil, "is required when kafka.tls.key_file is set")
	}
	// A TLS setting without enabled: true would silently connect in plaintext.
	if !t.Enabled {
		for _, s := range []struct {
			key string
			set bool
		}{
			{"ca_file", t.CAFile != ""}, {"cert_file", t.CertFile != ""}, {"key_file", t.KeyFile != ""},
			{"server_name", t.ServerName != ""}, {"insecure_skip_verify", t.InsecureSkipVerify},
		} {
			if s.set {
				p.add("kafka.tls.enabled", false, "is false but kafka.tls.%s is set; set kafka.tls.enabled: true", s.key)
				break
			}
		}
	}

	s := k.SASL
	mech := strings.ToUpper(s.Mechanism)
	switch mech {
	case "":
		if s.Username != "" || s.Password != "" {
			p.add("kafka.sasl.mechanism", s.Mechanism, "is empty but a SASL username or password is set; set %s, %s or %s",
				SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" {
			p.add("kafka.sasl.username", nil, "is required when kafka.sasl.mechanism is %s", mech)
		}
		if s.Password == "" {
			p.add("kafka.sasl.password", nil, "is required when kafka.sasl.mechanism is %s", mech)
		}
	case SASLAWSMSKIAM:
		// MSK serves IAM authentication on its TLS listeners only (9098,
		// and 9198 for public access); without TLS the handshake would
		// reach no IAM listener, or send signed requests in clear text.
		if !t.Enabled {
			p.add("kafka.tls.enabled", false, "must be true with kafka.sasl.mechanism %s: MSK serves IAM authentication on TLS listeners only", mech)
		}
		if s.Username != "" || s.Password != "" {
			p.add("kafka.sasl.username", nil, "and kafka.sasl.password are not used by %s (it signs with AWS credentials); remove them", mech)
		}
		c.validateAWSIdentity(p, "kafka.sasl.aws", c.MSKIdentity())
	default:
		p.add("kafka.sasl.mechanism", s.Mechanism, "%q must be empty (no SASL), %s, %s, %s or %s",
			s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512, SASLAWSMSKIAM)
	}
	if mech != SASLAWSMSKIAM && s.AWS != (SASLAWS{}) {
		p.add("kafka.sasl.aws", nil, "is set but kafka.sasl.mechanism is %q; it is only used by %s", s.Mechanism, SASLAWSMSKIAM)
	}
	a := s.AWS
	if a.AccessKeyID != "" && a.SecretAccessKey == "" {
		p.add("kafka.sasl.aws.secret_access_key", nil, "is required when kafka.sasl.aws.access_key_id is set")
	}
	if a.SecretAccessKey != "" && a.AccessKeyID == "" {
		p.add("kafka.sasl.aws.access_key_id", nil, "is required when kafka.sasl.aws.secret_access_key is set")
	}
	if a.SessionToken != "" && a.AccessKeyID == "" {
		p.add("kafka.sasl.aws.session_token", nil, "needs kafka.sasl.aws.access_key_id and kafka.sasl.aws.secret_access_key")
	}
}

// AssumeRole's limits, from the STS API reference.
const (
	MinRoleDuration = 15 * time.Minute
	MaxRoleDuration = 12 * time.Hour
)

var (
	// roleSessionName and externalID are the patterns STS documents for
	// RoleSessionName and ExternalId.
	roleSessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	externalID      = regexp.MustCompile(`^[\w+=,.@:/-]+$`) // and 2 to 1224 characters
)

// validateAWSIdentity checks the role settings of one AWS identity. For
// AWS_MSK_IAM (prefix kafka.sasl.aws) only the fields it sets itself are
// checked: the ones it inherits were checked as kinesis.* already.
func (c Config) validateAWSIdentity(p *problems, prefix string, id AWSIdentity) {
	a := c.Kafka.SASL.AWS
	msk := prefix != "kinesis"
	own := func(set bool) bool { return !msk || set }
	if id.RoleARN != "" && own(a.RoleARN != "") && (!strings.HasPrefix(id.RoleARN, "arn:") || !strings.Contains(id.RoleARN, ":role/")) {
		p.add(prefix+".role_arn", id.RoleARN, "%q is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)", id.RoleARN)
	}
	if id.ExternalID != "" && own(a.ExternalID != "") {
		switch {
		case id.RoleARN == "":
			p.add(prefix+".external_id", nil, "is set but no role is: an external id is only sent with AssumeRole (set %s.role_arn)", prefix)
		case len(id.ExternalID) < 2 || len(id.ExternalID) > 1224 || !externalID.MatchString(id.ExternalID):
			p.add(prefix+".external_id", nil, "must be 2 to 1224 characters of letters, digits and _+=,.@:/-")
		}
	}
	if own(a.SessionName != "") && !roleSessionName.MatchString(id.SessionName) {
		p.add(prefix+".session_name", id.SessionName, "%q must be 2 to 64 characters of letters, digits and _+=,.@-", id.SessionName)
	}
	if !msk && (id.RoleDuration < MinRoleDuration || id.RoleDuration > MaxRoleDuration) {
		p.add("kinesis.role_duration", id.RoleDuration, "%s must be within %s..%s (the AssumeRole limits)",
			id.RoleDuration, MinRoleDuration, MaxRoleDuration)
	}
}

func (c Config) validateKinesis(p *problems) {
	k := c.Kinesis
	if k.Region == "" {
		p.add("kinesis.region", nil, "must not be empty")
	}
	if k.Endpoint != "" {
		if msg := checkEndpoint(k.Endpoint); msg != "" {
			p.add("kinesis.endpoint", k.Endpoint, "%q %s", k.Endpoint, msg)
		}
	}
	c.validateAWSIdentity(p, "kinesis", k.Identity())
	if k.AccessKeyID != "" && k.SecretAccessKey == "" {
		p.add("kinesis.secret_access_key", nil, "is required when kinesis.access_key_id is set")
	}
	if k.SecretAccessKey != "" && k.AccessKeyID == "" {
		p.add("kinesis.access_key_id", nil, "is required when kinesis.secret_access_key is set")
	}
	if k.SessionToken != "" && (k.AccessKeyID == "" || k.SecretAccessKey == "") {
		p.add("kinesis.session_token", nil, "needs kinesis.access_key_id and kinesis.secret_access_key")
	}
}

func (c Config) validateRoutes(p *problems) {
	if len(c.Routes) == 0 {
		p.add("routes", nil, "must list at least one route")
	}
	regexes := make([]*regexp.Regexp, len(c.Routes)) // nil where absent or broken
	for i, r := range c.Routes {
		at := fmt.Sprintf("routes[%d]", i)
		if !streamIsTemplate(r.Stream) && !mapping.ValidStreamName(r.Stream) {
			p.add(at+".stream", r.Stream, "%q must be 1 to 128 characters of a-z, A-Z, 0-9, _ . -, or a template with ${topic}, $1 or ${header:NAME}", r.Stream)
		}
		if slices.Contains(r.OnMissing, "dlq") && c.Delivery.DLQTopic == "" {
			p.add("delivery.dlq_topic", nil, "is required when %s.on_missing ends in dlq", at)
		}
		switch {
		case len(r.Topics) == 0 && r.Regex == "":
			p.add(at+".topics", nil, "set %s.topics or %s.regex", at, at)
		case len(r.Topics) > 0 && r.Regex != "":
			p.add(at+".regex", r.Regex, "%q is set together with %s.topics; set exactly one", r.Regex, at)
		}
		checkTopicList(p, at+".topics", r.Topics)
		if r.Regex != "" {
			re, err := regexp.Compile(r.Regex)
			if err != nil {
				p.add(at+".regex", r.Regex, "%q does not compile: %v", r.Regex, err)
			} else {
				regexes[i] = re
			}
		}
		// The mapping package parses the rest of a route: key sources,
		// on_missing, payload format, conditions and filters.
		rule, err := r.Rule()
		var keyErr *RouteKeyError
		switch {
		case errors.As(err, &keyErr):
			p.add(at+"."+keyErr.Key, keyErr.Value, "%v", keyErr.Err)
		case err != nil:
			p.add(at, nil, "%v", err)
		case regexes[i] == nil && r.Regex != "":
			// reported above
		default:
			if _, err := mapping.ParseKeySpec(r.PartitionKey, r.OnMissing, regexes[i]); err != nil {
				p.add(at+".partition_key", r.PartitionKey, "%q: %v", r.PartitionKey, err)
			} else if _, err := mapping.CompileFilters(rule.Filters); err != nil {
				p.add(at+".filters", nil, "%v", err)
			} else if _, err := mapping.New([]mapping.Rule{rule}); err != nil {
				p.add(at, nil, "%v", err)
			}
		}
	}
	// Explicitly consumed topics must route somewhere; with topic_regex the
	// topics are unknown until runtime, so mapping reports those.
	for _, topic := range c.Kafka.Topics {
		if topic == "" {
			continue
		}
		routed := false
		for i, r := range c.Routes {
			if slices.Contains(r.Topics, topic) || (regexes[i] != nil && regexes[i].MatchString(topic)) {
				routed = true
				break
			}
		}
		if !routed && len(c.Routes) > 0 {
			p.add("kafka.topics", topic, "topic %q matches no route", topic)
		}
	}
}

func (c Config) validateDelivery(p *problems) {
	d := c.Delivery
	switch n := d.Batch.MaxRecords; {
	case n < 1:
		p.add("delivery.batch.max_records", n, "%d must be at least 1", n)
	case n > MaxPutRecords:
		p.add("delivery.batch.max_records", n, "%d exceeds the PutRecords limit of %d", n, MaxPutRecords)
	}
	switch b := d.Batch.MaxBytes; {
	case b < 1:
		p.add("delivery.batch.max_bytes", b, "%s must be at least 1", b)
	case b > MaxRequestBytes:
		p.add("delivery.batch.max_bytes", b, "%s exceeds the PutRecords request limit of %s", b, ByteSize(MaxRequestBytes))
	}
	if d.Batch.Linger < 0 {
		p.add("delivery.batch.linger", d.Batch.Linger, "%s must not be negative", d.Batch.Linger)
	}
	switch r := d.MaxRecordBytes; {
	case r < 1:
		p.add("delivery.max_record_bytes", r, "%s must be at least 1", r)
	case r > MaxRecordBytes:
		p.add("delivery.max_record_bytes", r, "%s exceeds the Kinesis record limit of %s", r, ByteSize(MaxRecordBytes))
	case d.Batch.MaxBytes >= 1 && r > d.Batch.MaxBytes:
		p.add("delivery.max_record_bytes", r, "%s exceeds delivery.batch.max_bytes (%s); such a record fits in no request", r, d.Batch.MaxBytes)
	}
	switch n := d.MaxInFlight; {
	case n < 1:
		p.add("delivery.max_in_flight", n, "%d must be at least 1", n)
	case n > MaxInFlightLimit:
		p.add("delivery.max_in_flight", n, "%d exceeds %d", n, MaxInFlightLimit)
	}
	if d.Retry.Initial <= 0 {
		p.add("delivery.retry.initial", d.Retry.Initial, "%s must be positive", d.Retry.Initial)
	}
	if d.Retry.Max < d.Retry.Initial {
		p.add("delivery.retry.max", d.Retry.Max, "%s is less than delivery.retry.initial (%s)", d.Retry.Max, d.Retry.Initial)
	}
	if d.BufferBytes < d.Batch.MaxBytes || d.BufferBytes < 1 {
		p.add("delivery.buffer_bytes", d.BufferBytes, "%s is less than delivery.batch.max_bytes (%s); the buffer must hold one full request",
			d.BufferBytes, d.Batch.MaxBytes)
	}

	if d.Aggregation.MaxBytes <= 0 || d.Aggregation.MaxBytes > d.MaxRecordBytes {
		p.add("delivery.aggregation.max_bytes", d.Aggregation.MaxBytes, "%s must be between 1 byte and delivery.max_record_bytes (%s)", d.Aggregation.MaxBytes, d.MaxRecordBytes)
	}
	if d.RateLimit.Factor <= 0 || d.RateLimit.Factor > 10 {
		p.add("delivery.rate_limit.factor", d.RateLimit.Factor, "%v must be above 0 and at most 10", d.RateLimit.Factor)
	}
	if d.Ordering != OrderingKey && d.Ordering != OrderingNone {
		p.add("delivery.ordering", d.Ordering, "%q must be %s or %s", d.Ordering, OrderingKey, OrderingNone)
	}
	// The three record policies: the first two values pass, "dlq" needs
	// the dead-letter topic.
	for _, pol := range []struct{ key, value, a, b string }{
		{"delivery.on_invalid", d.OnInvalid, OnInvalidFail, OnInvalidSkip},
		{"delivery.tombstones", d.Tombstones, TombstonesEmpty, TombstonesSkip},
		{"delivery.on_missing_stream", d.OnMissingStream, OnMissingStreamFail, OnMissingStreamSkip},
	} {
		switch pol.value {
		case pol.a, pol.b:
		case OnInvalidDLQ:
			if d.DLQTopic == "" {
				p.add("delivery.dlq_topic", nil, "is required when %s is %s", pol.key, OnInvalidDLQ)
			}
		default:
			p.add(pol.key, pol.value, "%q must be %s, %s or %s", pol.value, pol.a, pol.b, OnInvalidDLQ)
		}
	}
	if t := d.DLQTopic; t != "" {
		// A consumed DLQ topic would feed bad records back in, forever.
		if msg := checkTopicName(t); msg != "" {
			p.add("delivery.dlq_topic", t, "%q %s", t, msg)
		}
		if slices.Contains(c.Kafka.Topics, t) {
			p.add("delivery.dlq_topic", t, "%q is consumed (listed in kafka.topics)", t)
		} else if re, err := regexp.Compile(c.Kafka.TopicRegex); err == nil && c.Kafka.TopicRegex != "" && re.MatchString(t) {
			p.add("delivery.dlq_topic", t, "%q is consumed (matches kafka.topic_regex %q)", t, c.Kafka.TopicRegex)
		}
	}

	if d.DrainTimeout <= 0 {
		p.add("delivery.drain_timeout", d.DrainTimeout, "%s must be positive", d.DrainTimeout)
	} else if c.Kafka.RebalanceTimeout > 0 && d.DrainTimeout >= c.Kafka.RebalanceTimeout {
		// The revoke callback drains before it commits; it must finish
		// before the group gives the partitions to another member.
		p.add("delivery.drain_timeout", d.DrainTimeout, "%s must be less than kafka.rebalance_timeout (%s)",
			d.DrainTimeout, c.Kafka.RebalanceTimeout)
	}
	if d.RequestTimeout <= 0 {
		p.add("delivery.request_timeout", d.RequestTimeout, "%s must be positive", d.RequestTimeout)
	}
}

func (c Config) validateObservability(p *problems) {
	o := c.Observability
	switch o.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add("observability.log_level", o.LogLevel, "%q must be debug, info, warn or error", o.LogLevel)
	}
	switch o.LogFormat {
	case "json", "text":
	default:
		p.add("observability.log_format", o.LogFormat, "%q must be json or text", o.LogFormat)
	}
	if o.Listen != "" {
		if msg := checkHostPort(o.Listen, true); msg != "" {
			p.add("observability.listen", o.Listen, "%q %s (or empty to disable)", o.Listen, msg)
		}
	}
}

// checkTopicList reports empty, invalid and duplicate topic names.
func checkTopicList(p *problems, path string, topics []string) {
	seen := make(map[string]int, len(topics))
	for i, t := range topics {
		at := fmt.Sprintf("%s[%d]", path, i)
		if msg := checkTopicName(t); msg != "" {
			p.add(at, t, "%q %s", t, msg)
			continue
		}
		if j, dup := seen[t]; dup {
			p.add(at, t, "%q duplicates %s[%d]", t, path, j)
			continue
		}
		seen[t] = i
	}
}

// checkTopicName applies Kafka's topic name rules; "" means valid.
func checkTopicName(t string) string {
	if t == "" {
		return "is empty"
	}
	if t == "." || t == ".." {
		return "is not a valid Kafka topic name"
	}
	if len(t) > 249 {
		return "is longer than Kafka's 249 characters"
	}
	for _, r := range t {
		if !isAlnum(r) && r != '.' && r != '_' && r != '-' {
			return "is not a valid Kafka topic name (a-z, A-Z, 0-9, . _ -)"
		}
	}
	return ""
}

// checkHostPort checks "host:port" without package net (config does no
// I/O). IPv6 hosts need brackets. listen allows an empty host (":9090", all
// interfaces) and port 0 (any free port). "" means valid.
func checkHostPort(s string, listen bool) string {
	var host, port string
	if rest, ok := strings.CutPrefix(s, "["); ok {
		end := strings.IndexByte(rest, ']')
		if end < 0 || !strings.HasPrefix(rest[end+1:], ":") {
			return "must be host:port, with an IPv6 host in brackets"
		}
		host, port = rest[:end], rest[end+2:]
		if !strings.Contains(host, ":") || strings.Trim(host, "0123456789abcdefABCDEF:.") != "" {
			return "has an invalid IPv6 address in brackets"
		}
	} else {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return "must be host:port"
		}
		host, port = s[:i], s[i+1:]
		if strings.Contains(host, ":") {
			return "must be host:port, with an IPv6 host in brackets"
		}
		for _, r := range host {
			if !isAlnum(r) && r != '.' && r != '-' && r != '_' {
				return "has an invalid host"
			}
		}
		if host == "" && !listen {
			return "must be host:port; the host is empty"
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || port == "" || port[0] == '+' || port[0] == '-' || len(port) > 5 {
		return "must be host:port with a numeric port"
	}
	low := 1
	if listen {
		low = 0
	}
	if n < low || n > 65535 {
		return fmt.Sprintf("has port %d outside %d..65535", n, low)
	}
	return ""
}

// checkEndpoint checks an absolute http(s) URL without package net/url;
// "" means valid.
func checkEndpoint(s string) string {
	lower := strings.ToLower(s)
	var rest string
	switch {
	case strings.HasPrefix(lower, "https://"):
		rest = s[len("https://"):]
	case strings.HasPrefix(lower, "http://"):
		rest = s[len("http://"):]
	default:
		return "must be an absolute http:// or https:// URL"
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return "must not contain whitespace"
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if authority == "" {
		return "has no host"
	}
	if strings.Contains(authority, "@") {
		return "must not contain user info"
	}
	if strings.HasPrefix(authority, "[") || strings.Contains(authority, ":") {
		if msg := checkHostPort(authority, false); msg != "" {
			return "has an invalid host:port: " + msg
		}
		return ""
	}
	for _, r := range authority {
		if !isAlnum(r) && r != '.' && r != '-' && r != '_' {
			return "has an invalid host"
		}
	}
	return ""
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
