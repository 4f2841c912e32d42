// Package mapping decides where a Kafka record goes in Kinesis: the stream
// (by the first route matching its topic and headers, possibly from a
// template), the partition key (from the key, the partition, a header, a JSON
// field, a template or at random, with fallbacks) and the payload (the raw
// value, a JSON envelope or a CloudEvent), after the route's filters.
//
// The package is pure: no I/O, no clocks, no goroutines. A caller that wants
// random keys passes the random numbers in.
package mapping

import (
	"errors"
	"fmt"
	"regexp"
	"sync"
)

// Record is the part of a Kafka record that mapping reads.
type Record struct {
	Topic     string
	Partition int32
	Key       []byte
	Value     []byte // nil for a tombstone
	Offset    int64
	// Timestamp is in milliseconds since the epoch (-1: none).
	Timestamp     int64
	TimestampType TimestampType
	// Headers are in record order. Kafka's client has its own header type,
	// so a caller converts into a []Header it reuses from record to record.
	Headers []Header
}

// Header is one Kafka record header. A nil Value is a null header.
type Header struct {
	Key   string
	Value []byte
}

// TimestampType says what a record's timestamp means. Its values are
// Kafka's (and franz-go's Attrs.TimestampType()), so a caller converts.
type TimestampType int8

const (
	// TimestampNone marks a record without a timestamp (message format 0).
	TimestampNone TimestampType = -1
	// TimestampCreateTime is the producer's clock.
	TimestampCreateTime TimestampType = 0
	// TimestampLogAppendTime is the broker's clock.
	TimestampLogAppendTime TimestampType = 1
)

// String returns the name Kafka (and Lambda's Kafka event) gives the type.
func (t TimestampType) String() string {
	switch t {
	case TimestampCreateTime:
		return "CREATE_TIME"
	case TimestampLogAppendTime:
		return "LOG_APPEND_TIME"
	}
	return "NO_TIMESTAMP_TYPE"
}

// Rule is one route: records whose topic is in Topics, or matches Regex, and
// whose headers satisfy When go to Stream. The first matching rule wins; its
// Filters then run, and a record they keep gets its stream, partition key and
// payload, in that order.
//
// A config maps onto it field by field, e.g.
//
//	routes:
//	  - regex: '^(?P<env>prod|dev)\.(\w+)$'
//	    when: {header: {name: region, equals: eu}}
//	    stream: '${env}-$2-eu'                    # Template
//	    partition_key: '${header:tenant}-${json:/user/id}'  # KeySpec
//	    on_missing: [key, dlq]
//	    payload: envelope                         # ParseFormat
//	    value: auto                               # ParseValueMode
//	    filters: [{tombstone: true}]
type Rule struct {
	Topics []string
	Regex  string
	// When, if set, narrows the route to records whose header matches; a
	// record that fails it goes on to the next rule.
	When *HeaderMatch
	// Stream is a template (see Template): a plain name, or one built from
	// the topic, the regex's capture groups and headers.
	Stream string
	// Key is the original key setting, used when PartitionKey is empty.
	Key KeySource
	// PartitionKey is the key source (see KeySpec); "" means Key.
	PartitionKey string
	// OnMissing is the chain tried when the key source is missing.
	OnMissing []string
	Payload   Payload
	// Filters run on the records the route takes; a dropped record does not
	// go on to the next rule.
	Filters []Filter
	// HashKey says whether the route's records carry an explicit hash key
	// (see ParseHashKey).
	HashKey HashKeyMode
}

// HashKeyMode is where a record's Kinesis explicit hash key comes from.
type HashKeyMode uint8

const (
	// HashKeyNone sends no explicit hash key: Kinesis hashes the partition
	// key.
	HashKeyNone HashKeyMode = iota
	// HashKeyKafkaPartition pins each Kafka partition to one shard: the
	// sender sets the explicit hash key inside that shard's range.
	HashKeyKafkaPartition
)

// ParseHashKey parses a route's hash_key setting: none (the default) or
// kafka_partition.
func ParseHashKey(s string) (HashKeyMode, error) {
	switch s {
	case "", "none":
		return HashKeyNone, nil
	case "kafka_partition":
		return HashKeyKafkaPartition, nil
	}
	return 0, fmt.Errorf("%q must be none or kafka_partition", s)
}

// String returns the setting that parses to h.
func (h HashKeyMode) String() string {
	if h == HashKeyKafkaPartition {
		return "kafka_partition"
	}
	return "none"
}

// Target is where and what to write in Kinesis.
type Target struct {
	Stream       string
	PartitionKey string
	Data         []byte
	// PinPartition says the record's explicit hash key is to pin its Kafka
	// partition to one shard (HashKeyKafkaPartition); the sender, which
	// knows the shards, sets it.
	PinPartition bool
	// Dropped is the reason a filter dropped the record, "" if none did.
	// A dropped record has no stream, key or data, but its offset is still
	// the caller's to complete.
	Dropped string
}

// Size is what the record counts against the Kinesis record and request
// limits: the data plus the partition key's bytes.
func (t Target) Size() int { return len(t.Data) + len(t.PartitionKey) }

type route struct {
	topics  map[string]struct{}
	re      *regexp.Regexp
	when    *headerMatch
	stream  *Template
	key     *KeySpec
	payload Payload
	filters *Filters
	pin     bool // HashKeyKafkaPartition
	// groups says a template reads capture groups, so the topic's
	// submatches are kept.
	groups bool
}

// Mapper maps records by a fixed list of rules. It is safe for concurrent use.
type Mapper struct {
	routes []route
	// random says some route's key may be random (see UsesRandom).
	random bool
	// byTopic caches each topic's *topicRoutes: topics are few and records
	// many, so regexes and per-topic templates run once per topic.
	byTopic sync.Map
}

// topicRoutes is what a topic's records can map to.
type topicRoutes struct {
	// cands are the routes the topic matches, in order, up to the first
	// without a When (the later ones are unreachable).
	cands []candidate
	// noRoute is returned for a record that no candidate takes, built once.
	noRoute error
	// fast says every record of the topic takes the first candidate as
	// ferry always did: no when, no filters, a stream known from the topic,
	// the Kafka key by PartitionKey's rule and a raw payload. Map skips the
	// general path for it, which keeps the hot path as fast as it was.
	fast   bool
	stream string   // the stream when fast
	pin    bool     // the route pins partitions, when fast
	key    *KeySpec // the route's key source, when fast
	match  []int    // the route regex's submatches, when fast
}

type candidate struct {
	route *route
	// match is the route regex's submatches for the topic, if needed.
	match []int
	// stream is the expanded stream of a per-topic template, or the error
	// expanding it gave.
	stream    string
	streamErr error
	filters   *Filters // resolved for the topic
}

// New compiles the rules.
func New(rules []Rule) (*Mapper, error) {
	if len(rules) == 0 {
		return nil, errors.New("mapping: no routes")
	}
	m := &Mapper{}
	for i := range rules {
		rt, err := compileRule(&rules[i])
		if err != nil {
			return nil, fmt.Errorf("mapping: route %d: %w", i, err)
		}
		m.routes = append(m.routes, rt)
		m.random = m.random || rt.key.UsesRandom()
	}
	return m, nil
}

func compileRule(r *Rule) (route, error) {
	if r.Stream == "" {
		return route{}, errors.New("empty stream")
	}
	var rt route
	if r.Regex != "" {
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			return route{}, err
		}
		rt.re = re
	}
	if len(r.Topics) > 0 {
		rt.topics = make(map[string]struct{}, len(r.Topics))
		for _, t := range r.Topics {
			rt.topics[t] = struct{}{}
		}
	}
	if r.When != nil {
		w, err := r.When.compile()
		if err != nil {
			return route{}, fmt.Errorf("when: %w", err)
		}
		rt.when = w
	}
	var err error
	if rt.stream, err = ParseTemplate(r.Stream, rt.re); err != nil {
		return route{}, fmt.Errorf("stream: %w", err)
	}
	spec := r.PartitionKey
	switch {
	case spec == "" && r.Key == KeyFromPartition:
		spec = "partition"
	case spec != "" && r.Key != KeyFromKafkaKey:
		return route{}, errors.New("set Key or PartitionKey, not both")
	}
	if rt.key, err = ParseKeySpec(spec, r.OnMissing, rt.re); err != nil {
		return route{}, fmt.Errorf("partition key: %w", err)
	}
	rt.pin = r.HashKey == HashKeyKafkaPartition
	rt.groups = rt.stream.groups || rt.key.groups
	if rt.groups && len(r.Topics) > 0 {
		// A listed topic need not match the regex, and would expand its
		// groups to nothing.
		return route{}, errors.New("capture groups need a route matched by regex alone, without topics")
	}
	if err := r.Payload.Validate(); err != nil {
		return route{}, fmt.Errorf("payload: %w", err)
	}
	rt.payload = r.Payload
	if rt.filters, err = CompileFilters(r.Filters); err != nil {
		return route{}, err
	}
	return rt, nil
}

// Route returns the stream for a topic, or ErrNoRoute. It fails for a topic
// whose stream depends on its records' headers.
func (m *Mapper) Route(topic string) (string, error) {
	tr := m.topicRoutes(topic)
	if len(tr.cands) == 0 {
		return "", tr.noRoute
	}
	c := &tr.cands[0]
	if c.route.when != nil || !c.route.stream.PerTopic() {
		return "", fmt.Errorf("mapping: the stream of topic %q depends on record headers", topic)
	}
	return c.stream, c.streamErr
}

// UsesRandom reports whether any route's partition key may come from the
// random source, so that a caller draws MapTo's random number only then.
func (m *Mapper) UsesRandom() bool { return m.random }

// Streams lists the distinct static streams of all rules, in rule order.
// Templated streams are not listed: see Dynamic and StreamsFor.
func (m *Mapper) Streams() []string {
	seen := make(map[string]bool)
	var out []string
	for _, r := range m.routes {
		s, ok := r.stream.Static()
		if ok && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Dynamic reports whether a rule's stream is a template, so that the set of
// streams is known only from the topics (StreamsFor) or the records.
func (m *Mapper) Dynamic() bool {
	for _, r := range m.routes {
		if _, ok := r.stream.Static(); !ok {
			return true
		}
	}
	return false
}

// StreamsFor lists the distinct streams that records of the given topics
// may go to, as far as the topics decide it; perRecord reports that some
// stream also depends on headers, so more can appear while running.
// Streams that templates expand to invalid names are left out: their
// records fail with ErrInvalidStream.
func (m *Mapper) StreamsFor(topics []string) (streams []string, perRecord bool) {
	seen := make(map[string]bool)
	for _, t := range topics {
		tr := m.topicRoutes(t)
		for i := range tr.cands {
			c := &tr.cands[i]
			if !c.route.stream.PerTopic() {
				perRecord = true
				continue
			}
			if c.streamErr == nil && !seen[c.stream] {
				seen[c.stream] = true
				streams = append(streams, c.stream)
			}
		}
	}
	return streams, perRecord
}

func (m *Mapper) topicRoutes(topic string) *topicRoutes {
	if v, ok := m.byTopic.Load(topic); ok {
		return v.(*topicRoutes)
	}
	v, _ := m.byTopic.LoadOrStore(topic, m.resolve(topic))
	return v.(*topicRoutes)
}

func (m *Mapper) resolve(topic string) *topicRoutes {
	tr := &topicRoutes{noRoute: fmt.Errorf("%w %q", ErrNoRoute, topic)}
	for i := range m.routes {
		r := &m.routes[i]
		var match []int
		if _, listed := r.topics[topic]; !listed {
			switch {
			case r.re == nil:
				continue
			case r.groups:
				if match = r.re.FindStringSubmatchIndex(topic); match == nil {
					continue
				}
			case !r.re.MatchString(topic):
				continue
			}
		}
		c := candidate{route: r, match: match, filters: r.filters.forTopic(topic)}
		if s, ok := r.stream.Static(); ok {
			c.stream = s
		} else if r.stream.PerTopic() {
			b, err := r.stream.Expand(nil, &Record{Topic: topic}, match)
			c.stream, c.streamErr = string(b), err
		}
		tr.cands = append(tr.cands, c)
		if r.when == nil {
			break
		}
	}
	if len(tr.cands) > 0 {
		c := &tr.cands[0]
		r := c.route
		// Any key source but random (MapCached has no random number)
		// takes the fast path: KeySpec.PartitionKey has its own for the
		// Kafka key.
		tr.fast = r.when == nil && c.filters == nil && c.streamErr == nil && r.stream.PerTopic() &&
			!r.key.random && r.payload.Format == FormatRaw
		tr.stream, tr.pin, tr.key, tr.match = c.stream, r.pin, r.key, c.match
	}
	return tr
}

// Map returns the target of a record. The Data aliases rec.Value for a raw
// route and is a new slice otherwise. A random key source takes its number
// from the record's coordinates (see MapTo).
func (m *Mapper) Map(rec Record) (Target, error) { return m.MapCached(rec, nil) }

// MapCached is Map with partition keys from kc (none when kc is nil).
func (m *Mapper) MapCached(rec Record, kc *KeyCache) (Target, error) {
	tr := m.topicRoutes(rec.Topic)
	if tr.fast {
		pk, err := tr.key.PartitionKey(&rec, tr.match, kc, 0)
		if err != nil {
			return Target{}, err
		}
		return Target{Stream: tr.stream, PartitionKey: pk, Data: rec.Value, PinPartition: tr.pin}, nil
	}
	return m.mapRecord(tr, nil, &rec, kc, 0, false, true)
}

// MapTo maps rec with everything a route may use, and appends the payload to
// dst: Target.Data is the appended part. With dst nil, Data is a new slice
// of its own (what a caller that keeps records past the poll needs); with a
// reused buffer, a raw route with a static stream and a key from the Kafka
// key allocates nothing. kc caches keys and streams (nil: none) and rnd is a
// uniformly random number for routes whose key source is random.
//
// The error is a wrapped ErrNoRoute, ErrInvalidStream (a stream template
// expanding to an invalid name, or missing a header) or ErrMissingKey (a
// *MissingKeyError with the route's policy); a filtered record is no error
// but a Target with Dropped set.
func (m *Mapper) MapTo(dst []byte, rec *Record, kc *KeyCache, rnd uint64) (Target, error) {
	tr := m.topicRoutes(rec.Topic)
	if tr.fast {
		pk, err := tr.key.PartitionKey(rec, tr.match, kc, rnd)
		if err != nil {
			return Target{}, err
		}
		data := append(dst, rec.Value...)[len(dst):]
		if data == nil && rec.Value != nil {
			data = []byte{} // an empty value is not a tombstone
		}
		return Target{Stream: tr.stream, PartitionKey: pk, Data: data, PinPartition: tr.pin}, nil
	}
	return m.mapRecord(tr, dst, rec, kc, rnd, true, false)
}

func (m *Mapper) mapRecord(tr *topicRoutes, dst []byte, rec *Record, kc *KeyCache, rnd uint64, haveRnd, alias bool) (Target, error) {
	var c *candidate
	for i := range tr.cands {
		if w := tr.cands[i].route.when; w == nil || w.match(rec) {
			c = &tr.cands[i]
			break
		}
	}
	if c == nil {
		return Target{}, tr.noRoute
	}
	if reason, drop := c.filters.Check(rec); drop {
		return Target{Dropped: reason}, nil
	}
	r := c.route
	stream := c.stream
	if c.streamErr != nil {
		return Target{}, c.streamErr
	}
	if !r.stream.PerTopic() {
		var err error
		if stream, err = r.expandStream(rec, c.match, kc); err != nil {
			return Target{}, err
		}
	}
	if !haveRnd && r.key.random {
		rnd = spread(rec)
	}
	pk, err := r.key.PartitionKey(rec, c.match, kc, rnd)
	if err != nil {
		return Target{}, err
	}
	t := Target{Stream: stream, PartitionKey: pk, PinPartition: r.pin}
	if alias && r.payload.Format == FormatRaw {
		t.Data = rec.Value
		return t, nil
	}
	start := len(dst)
	dst = r.payload.Append(dst, rec)
	t.Data = dst[start:]
	if t.Data == nil && rec.Value != nil {
		t.Data = []byte{} // an empty value is not a tombstone
	}
	return t, nil
}

// expandStream expands a stream template that reads the record, in kc's
// scratch buffer, and interns the name.
func (r *route) expandStream(rec *Record, match []int, kc *KeyCache) (string, error) {
	if kc == nil {
		b, err := r.stream.Expand(nil, rec, match)
		return string(b), err
	}
	b, err := r.stream.Expand(kc.scratch[:0], rec, match)
	if cap(b) <= maxScratch {
		kc.scratch = b[:0]
	}
	if err != nil {
		return "", err
	}
	return kc.stream(b), nil
}
