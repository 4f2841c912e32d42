// Package mapping decides where a Kafka record goes in Kinesis: the stream
// (by the first route matching its topic), the partition key and the payload.
//
// The package is pure: no I/O, no clocks. Richer mappings (header keys,
// envelopes, templates) plug in as new KeySource values and payload options.
package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// KeySource says where a route takes the Kinesis partition key from.
type KeySource int

const (
	// KeyFromKafkaKey uses the Kafka record key (see PartitionKey).
	KeyFromKafkaKey KeySource = iota
	// KeyFromPartition uses the Kafka partition number, so each Kafka
	// partition keeps to one Kinesis shard.
	KeyFromPartition
)

// ParseKeySource parses a route's partition_key setting.
func ParseKeySource(s string) (KeySource, error) {
	switch s {
	case "", "key":
		return KeyFromKafkaKey, nil
	case "partition":
		return KeyFromPartition, nil
	}
	return 0, fmt.Errorf("unknown partition key source %q (want key or partition)", s)
}

// Rule is one route: records whose topic is in Topics, or matches Regex, go
// to Stream.
type Rule struct {
	Topics []string
	Regex  string
	Stream string
	Key    KeySource
}

// Record is the part of a Kafka record that mapping reads.
type Record struct {
	Topic     string
	Partition int32
	Key       []byte
	Value     []byte
}

// Target is where and what to write in Kinesis.
type Target struct {
	Stream       string
	PartitionKey string
	Data         []byte
}

// Size is what the record counts against the Kinesis record and request
// limits: the data plus the partition key's bytes.
func (t Target) Size() int { return len(t.Data) + len(t.PartitionKey) }

// ErrNoRoute is returned by Map for a topic that no rule matches.
var ErrNoRoute = errors.New("no route matches topic")

type route struct {
	topics map[string]struct{}
	re     *regexp.Regexp
	stream string
	key    KeySource
}

// Mapper maps records by a fixed list of rules. It is safe for concurrent use.
type Mapper struct {
	routes []route
	// byTopic caches each topic's route index (-1 for no route): topics are
	// few and records many, so regexes run once per topic.
	byTopic sync.Map
}

// New compiles the rules.
func New(rules []Rule) (*Mapper, error) {
	if len(rules) == 0 {
		return nil, errors.New("mapping: no routes")
	}
	m := &Mapper{}
	for i, r := range rules {
		if r.Stream == "" {
			return nil, fmt.Errorf("mapping: route %d: empty stream", i)
		}
		rt := route{stream: r.Stream, key: r.Key}
		if r.Regex != "" {
			re, err := regexp.Compile(r.Regex)
			if err != nil {
				return nil, fmt.Errorf("mapping: route %d: %w", i, err)
			}
			rt.re = re
		}
		if len(r.Topics) > 0 {
			rt.topics = make(map[string]struct{}, len(r.Topics))
			for _, t := range r.Topics {
				rt.topics[t] = struct{}{}
			}
		}
		m.routes = append(m.routes, rt)
	}
	return m, nil
}

// Route returns the stream for a topic, or ErrNoRoute.
func (m *Mapper) Route(topic string) (string, error) {
	i := m.routeIndex(topic)
	if i < 0 {
		return "", fmt.Errorf("%w %q", ErrNoRoute, topic)
	}
	return m.routes[i].stream, nil
}

// Streams lists the distinct static streams of all rules, in rule order.
func (m *Mapper) Streams() []string {
	seen := make(map[string]bool)
	var out []string
	for _, r := range m.routes {
		if !seen[r.stream] {
			seen[r.stream] = true
			out = append(out, r.stream)
		}
	}
	return out
}

func (m *Mapper) routeIndex(topic string) int {
	if v, ok := m.byTopic.Load(topic); ok {
		return v.(int)
	}
	idx := -1
	for i, r := range m.routes {
		if _, ok := r.topics[topic]; ok {
			idx = i
			break
		}
		if r.re != nil && r.re.MatchString(topic) {
			idx = i
			break
		}
	}
	m.byTopic.Store(topic, idx)
	return idx
}

// Map returns the target of a record. The Data aliases rec.Value.
func (m *Mapper) Map(rec Record) (Target, error) { return m.MapCached(rec, nil) }

// MaxKeyChars is the longest Kinesis partition key, in characters. Kinesis
// (and kinesis-mock, a JavaScript program) count UTF-16 code units, so a
// character outside the Basic Multilingual Plane counts twice here.
const MaxKeyChars = 256

// HashPrefix starts every partition key that ferry derives by hashing. A
// Kafka key that itself starts with it is hashed too, so a plain key can never
// equal a derived one.
const HashPrefix = "ferry~sha256~"

// reservedPrefix is the common start of derived keys.
const reservedPrefix = "ferry~"

// PartitionKey maps a Kafka key to a Kinesis partition key, deterministically:
//
//   - a null or empty key becomes the decimal Kafka partition number, which
//     keeps every keyless record of a partition on one shard;
//   - a valid UTF-8 key of 1 to 256 characters that does not start with
//     "ferry~" is used as it is;
//   - anything else (binary, longer, or starting with "ferry~") becomes
//     HashPrefix followed by the hex SHA-256 of the key bytes (77 characters),
//     so distinct Kafka keys stay distinct.
//
// The Go SDK would silently turn invalid UTF-8 into U+FFFD, collapsing
// distinct binary keys into one; hashing prevents that.
func PartitionKey(key []byte, partition int32) string {
	if len(key) == 0 {
		return partitionFallback(partition)
	}
	if plainKey(key) {
		return string(key)
	}
	return hashKey(key)
}

func plainKey(key []byte) bool {
	if len(key) > 4*MaxKeyChars || !utf8.Valid(key) {
		return false
	}
	if len(key) >= len(reservedPrefix) && string(key[:len(reservedPrefix)]) == reservedPrefix {
		return false
	}
	if len(key) <= MaxKeyChars {
		return true // at most 256 bytes is at most 256 UTF-16 units
	}
	units := 0
	for i := 0; i < len(key); {
		r, size := utf8.DecodeRune(key[i:])
		i += size
		units += utf16.RuneLen(r)
		if units > MaxKeyChars {
			return false
		}
	}
	return true
}

func hashKey(key []byte) string {
	sum := sha256.Sum256(key)
	buf := make([]byte, len(HashPrefix)+hex.EncodedLen(len(sum)))
	copy(buf, HashPrefix)
	hex.Encode(buf[len(HashPrefix):], sum[:])
	return string(buf)
}

// smallPartitions caches the fallback keys of the first partitions, so the
// keyless hot path does not allocate.
var smallPartitions = func() [256]string {
	var a [256]string
	for i := range a {
		a[i] = strconv.Itoa(i)
	}
	return a
}()

func partitionFallback(p int32) string {
	if p >= 0 && int(p) < len(smallPartitions) {
		return smallPartitions[p]
	}
	return strconv.FormatInt(int64(p), 10)
}

// KeyCache remembers the partition keys of the Kafka keys seen lately, so
// that a repeated key costs no allocation (and a hashed one no SHA-256): a
// topic's keys repeat (users, devices, orders), and the poll loop maps every
// record. It holds at most maxBytes of keys, and forgets them all at once
// when full. A KeyCache is not safe for concurrent use.
type KeyCache struct {
	keys     map[string]string
	bytes    int
	maxBytes int
}

// NewKeyCache returns a cache holding at most maxBytes of keys.
func NewKeyCache(maxBytes int) *KeyCache {
	return &KeyCache{keys: make(map[string]string), maxBytes: maxBytes}
}

// PartitionKey is PartitionKey(key, partition), from the cache when it can.
func (kc *KeyCache) PartitionKey(key []byte, partition int32) string {
	if len(key) == 0 {
		return partitionFallback(partition) // no allocation either way
	}
	if pk, ok := kc.keys[string(key)]; ok { // this lookup does not allocate
		return pk
	}
	pk := PartitionKey(key, partition)
	k := pk                // a plain key is its own partition key: store one string
	if pk != string(key) { // the conversion in a comparison does not allocate
		k = string(key)
	}
	size := len(k) + len(pk) + 64 // plus the map's own bookkeeping, roughly
	if size > kc.maxBytes {
		return pk
	}
	if kc.bytes+size > kc.maxBytes {
		clear(kc.keys)
		kc.bytes = 0
	}
	kc.keys[k] = pk
	kc.bytes += size
	return pk
}

// MapCached is Map with partition keys from kc (none when kc is nil).
func (m *Mapper) MapCached(rec Record, kc *KeyCache) (Target, error) {
	i := m.routeIndex(rec.Topic)
	if i < 0 {
		return Target{}, fmt.Errorf("%w %q", ErrNoRoute, rec.Topic)
	}
	r := &m.routes[i]
	var pk string
	switch {
	case r.key == KeyFromPartition:
		pk = partitionFallback(rec.Partition)
	case kc != nil:
		pk = kc.PartitionKey(rec.Key, rec.Partition)
	default:
		pk = PartitionKey(rec.Key, rec.Partition)
	}
	return Target{Stream: r.stream, PartitionKey: pk, Data: rec.Value}, nil
}
