package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// KeySource says where a route takes the Kinesis partition key from. It is
// the original two-valued setting; Rule.PartitionKey takes every source.
type KeySource int

const (
	// KeyFromKafkaKey uses the Kafka record key (see PartitionKey).
	KeyFromKafkaKey KeySource = iota
	// KeyFromPartition uses the Kafka partition number, so each Kafka
	// partition keeps to one Kinesis shard.
	KeyFromPartition
)

// ParseKeySource parses a route's partition_key setting when it is key or
// partition; ParseKeySpec parses all of them.
func ParseKeySource(s string) (KeySource, error) {
	switch s {
	case "", "key":
		return KeyFromKafkaKey, nil
	case "partition":
		return KeyFromPartition, nil
	}
	return 0, fmt.Errorf("unknown partition key source %q (want key or partition)", s)
}

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
// distinct binary keys into one; hashing prevents that. Every other key
// source (headers, JSON fields, templates) ends in this same rule.
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
// when full. Keys taken from headers, JSON values and templates share it
// (the rule maps equal bytes to equal keys, whatever their source), as do
// the stream names of header templates. A KeyCache is not safe for
// concurrent use: it is the per-goroutine state of MapTo.
type KeyCache struct {
	keys     map[string]string
	bytes    int
	maxBytes int
	// scratch holds a derived key or stream name while it is looked up.
	scratch []byte
	// streams interns stream names expanded per record.
	streams map[string]string
}

// maxScratch bounds the scratch buffer a KeyCache keeps between records.
const maxScratch = 64 << 10

// maxStreams bounds the interned stream names: a header can name any
// number of streams, but a real deployment writes to a few.
const maxStreams = 1024

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

// stream interns a stream name, so a header-routed record costs no
// allocation once its stream has been seen.
func (kc *KeyCache) stream(b []byte) string {
	if s, ok := kc.streams[string(b)]; ok {
		return s
	}
	s := string(b)
	if kc.streams == nil || len(kc.streams) >= maxStreams {
		kc.streams = make(map[string]string)
	}
	kc.streams[s] = s
	return s
}

type keyKind uint8

const (
	srcKafkaKey keyKind = iota
	srcPartition
	srcRandom
	srcHeader
	srcJSON
	srcTemplate
)

type keySource struct {
	kind   keyKind
	spec   string
	header string
	ptr    Pointer
	tmpl   *Template
}

// KeySpec is a compiled partition-key setting: a source, then the sources
// tried in turn while the ones before are missing (on_missing), then a
// terminal policy. Sources are:
//
//	key             the Kafka key; missing when null or empty (the default)
//	partition       the decimal Kafka partition number; never missing
//	random          a random key per record (16 hex digits of the caller's
//	                random number; one small allocation): spreads records
//	                evenly over all shards, giving up any order; never missing
//	header:NAME     the value of the last header NAME; missing when absent,
//	                null or empty
//	json:POINTER    a scalar of the JSON value, by RFC 6901 JSON Pointer
//	                (json:/user/id): strings unquoted, numbers and booleans
//	                as written; missing when the value is not JSON or the
//	                pointer finds nothing, an object, an array, null or ""
//	a template      with at least one variable, e.g. ${topic}:${key} or
//	                ${header:tenant}-${json:/user/id} (see Template);
//	                missing when any variable it uses is missing
//
// The terminal entry is fail, skip or dlq (PartitionKey returns a
// *MissingKeyError with that policy) or, when the chain has none, partition:
// so the default, key with no on_missing, is exactly PartitionKey's rule.
// Every key a source yields goes through PartitionKey's rule, so a binary,
// over-long or "ferry~" result becomes the same HashPrefix form.
type KeySpec struct {
	chain   []keySource
	missing error // the *MissingKeyError, or nil for partition
	// fast marks the default, the connector's hot path.
	fast   bool
	random bool
	groups bool
}

// ParseKeySpec compiles a partition_key setting and its on_missing chain.
// re is the route's regex (nil when it matches by topic list), for
// templates with capture groups.
func ParseKeySpec(source string, onMissing []string, re *regexp.Regexp) (*KeySpec, error) {
	src, err := parseKeySource(source, re)
	if err != nil {
		return nil, err
	}
	k := &KeySpec{chain: []keySource{src}}
	for i, s := range onMissing {
		if last := k.chain[len(k.chain)-1]; last.kind == srcPartition || last.kind == srcRandom {
			return nil, fmt.Errorf("on_missing[%d] %q is never used: %s is never missing", i, s, last.spec)
		}
		if p, ok := parseMissingPolicy(s); ok {
			if i != len(onMissing)-1 {
				return nil, fmt.Errorf("on_missing[%d] %q must come last", i, s)
			}
			spec := source
			if spec == "" {
				spec = "key"
			}
			k.missing = &MissingKeyError{Source: spec, Policy: p}
			break
		}
		if s == "" {
			return nil, fmt.Errorf("on_missing[%d] is empty", i)
		}
		src, err := parseKeySource(s, re)
		if err != nil {
			return nil, fmt.Errorf("on_missing[%d]: %w", i, err)
		}
		k.chain = append(k.chain, src)
	}
	k.fast = len(k.chain) == 1 && k.chain[0].kind == srcKafkaKey && k.missing == nil
	for _, s := range k.chain {
		k.random = k.random || s.kind == srcRandom
		k.groups = k.groups || (s.tmpl != nil && s.tmpl.groups)
	}
	return k, nil
}

func parseMissingPolicy(s string) (MissingPolicy, bool) {
	switch s {
	case "fail":
		return MissingFail, true
	case "skip":
		return MissingSkip, true
	case "dlq":
		return MissingDLQ, true
	}
	return 0, false
}

func parseKeySource(s string, re *regexp.Regexp) (keySource, error) {
	switch {
	case s == "" || s == "key":
		return keySource{kind: srcKafkaKey, spec: "key"}, nil
	case s == "partition":
		return keySource{kind: srcPartition, spec: s}, nil
	case s == "random":
		return keySource{kind: srcRandom, spec: s}, nil
	case strings.HasPrefix(s, "header:"):
		if len(s) == len("header:") {
			return keySource{}, syntaxErr(s, len(s), "empty header name")
		}
		return keySource{kind: srcHeader, spec: s, header: s[len("header:"):]}, nil
	case strings.HasPrefix(s, "json:"):
		p, err := ParsePointer(s[len("json:"):])
		if err != nil {
			return keySource{}, fmt.Errorf("partition key %q: %w", s, err)
		}
		return keySource{kind: srcJSON, spec: s, ptr: p}, nil
	case strings.IndexByte(s, '$') >= 0:
		t, err := parseTemplate(s, re, true)
		if err != nil {
			return keySource{}, err
		}
		return keySource{kind: srcTemplate, spec: s, tmpl: t}, nil
	}
	return keySource{}, fmt.Errorf("unknown partition key source %q "+
		"(want key, partition, random, header:NAME, json:/POINTER or a template such as ${topic}:${key})", s)
}

// UsesRandom reports whether a record's key may come from the random
// number, so a caller can skip drawing one otherwise.
func (k *KeySpec) UsesRandom() bool { return k.random }

// PartitionKey returns rec's partition key. match is the route regex's
// submatch indices for rec.Topic (for templates with groups), kc a cache
// (nil: none) and rnd a uniformly random number for the random source.
func (k *KeySpec) PartitionKey(rec *Record, match []int, kc *KeyCache, rnd uint64) (string, error) {
	if k.fast {
		if kc != nil {
			return kc.PartitionKey(rec.Key, rec.Partition), nil
		}
		return PartitionKey(rec.Key, rec.Partition), nil
	}
	for i := range k.chain {
		if pk, ok := k.chain[i].partitionKey(rec, match, kc, rnd); ok {
			return pk, nil
		}
	}
	if k.missing != nil {
		return "", k.missing
	}
	return partitionFallback(rec.Partition), nil
}

func (s *keySource) partitionKey(rec *Record, match []int, kc *KeyCache, rnd uint64) (string, bool) {
	switch s.kind {
	case srcKafkaKey:
		return derived(rec.Key, rec.Partition, kc)
	case srcPartition:
		return partitionFallback(rec.Partition), true
	case srcRandom:
		return randomKey(rnd), true
	case srcHeader:
		v, _ := lastHeader(rec.Headers, s.header)
		return derived(v, rec.Partition, kc)
	}
	var buf []byte
	if kc != nil {
		buf = kc.scratch[:0]
	}
	var ok bool
	if s.kind == srcJSON {
		buf, ok = s.ptr.AppendValue(buf, rec.Value)
	} else {
		var missing int
		buf, missing = s.tmpl.expand(buf, rec, match)
		ok = missing < 0
	}
	if kc != nil && cap(buf) <= maxScratch {
		kc.scratch = buf[:0] // keep the grown buffer, unless one huge value grew it
	}
	if !ok {
		return "", false
	}
	return derived(buf, rec.Partition, kc)
}

// derived applies PartitionKey's rule to the bytes of a present source.
func derived(v []byte, partition int32, kc *KeyCache) (string, bool) {
	if len(v) == 0 {
		return "", false
	}
	if kc != nil {
		return kc.PartitionKey(v, partition), true
	}
	return PartitionKey(v, partition), true
}

// randomKey is rnd as 16 hex digits: Kinesis hashes the key with MD5, so 64
// random bits spread over any number of shards. (A fixed table of keys would
// save the allocation, but a few thousand keys land unevenly on hundreds of
// shards.)
func randomKey(rnd uint64) string {
	var b [16]byte
	const digits = "0123456789abcdef"
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[rnd&15]
		rnd >>= 4
	}
	return string(b[:])
}

// spread derives a well-mixed number from a record's coordinates, for Map
// and MapCached, which take no random number: re-mapping a record gives it
// the same key, and consecutive offsets land on unrelated shards.
func spread(rec *Record) uint64 {
	h := uint64(14695981039346656037) // FNV-1a over the topic
	for i := 0; i < len(rec.Topic); i++ {
		h ^= uint64(rec.Topic[i])
		h *= 1099511628211
	}
	h ^= uint64(uint32(rec.Partition))<<32 ^ uint64(rec.Offset)*0x9e3779b97f4a7c15
	// splitmix64's finaliser
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}
