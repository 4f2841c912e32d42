// Package fastsink is an in-process Kinesis endpoint for tests and benchmarks that accepts every
// valid PutRecords/PutRecord request at once and counts deliveries per record identity.
//
// It speaks the awsJson1_1 protocol of aws-sdk-go-v2 (POST /, X-Amz-Target:
// Kinesis_20131202.<Action>) on a loopback port and implements PutRecords, PutRecord,
// DescribeStreamSummary, DescribeStream, ListShards, CreateStream and DeleteStream (the last two
// do nothing). Every stream name exists and is ACTIVE; records are counted, not stored.
//
// PutRecords enforces AWS's limits (1..500 records, 1..256-character partition keys, 1 MiB per
// record and 5 MiB per request counting data plus partition keys) with a 400 ValidationException
// that stores nothing. Its hot path is a hand-written JSON scanner: Data is decoded only as far as
// the identity needs (with the default identity, up to the second '|').
package fastsink

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/big"
	"math/bits"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// AWS limits enforced on PutRecords and PutRecord.
const (
	MaxRecords         = 500
	MaxRecordBytes     = 1 << 20 // data plus partition key
	MaxRequestBytes    = 5 << 20 // data plus partition keys
	MaxPartitionKeyLen = 256     // Unicode characters
	// MaxBodyBytes bounds a request body (5 MiB of data is about 7 MB of base64).
	MaxBodyBytes = 32 << 20

	// FirstSequenceNumber is the sequence number of each shard's first record; later ones count up
	// from it, so all have 19 digits and sort the same as strings and as numbers.
	FirstSequenceNumber = 1_000_000_000_000_000_000

	targetPrefix = "Kinesis_20131202."
	account      = "000000000000"
	region       = "us-east-1"
)

// Stats counts what the sink saw since New or Reset.
type Stats struct {
	Requests           int64 // every request, any action
	PutRecordsRequests int64 // PutRecords and PutRecord requests
	Records            int64 // entries accepted (stored and acknowledged)
	Bytes              int64 // data plus partition-key bytes of the accepted entries
	Distinct           int64 // distinct record ids
	Duplicates         int64 // accepted entries whose id had been seen before (also in the same request)
	LimitViolations    int64 // requests rejected with ValidationException (limits, missing fields)
	Throttled          int64 // entries answered ProvisionedThroughputExceededException (WithThrottle)
}

// Option configures a Sink.
type Option func(*config)

type config struct {
	id            func(data []byte) string
	shards        int
	throttleEvery int
	throttleKey   string
	keyEvery      int
	delay         time.Duration
}

// WithID sets how a record's identity is derived from its data. The default is the prefix up to
// and including the second '|' byte (e.g. "topic|123|"), or the whole data if it has fewer than
// two. f must not retain data, which is only valid during the call; it may run concurrently.
func WithID(f func(data []byte) string) Option { return func(c *config) { c.id = f } }

// WithThrottle answers one PutRecords entry in every n with a per-entry
// ProvisionedThroughputExceededException instead of storing it (n = 100 for
// 1 %), as a busy Kinesis shard does; 0 turns it off.
func WithThrottle(n int) Option { return func(c *config) { c.throttleEvery = n } }

// WithThrottleKey answers one PutRecords entry in every n whose partition key is key with a
// per-entry ProvisionedThroughputExceededException (n = 2 for half of them), as a shard does
// when one hot key outruns it; 0 turns it off. It counts the key's entries on their own, apart
// from WithThrottle, and an entry is throttled when either option picks it.
func WithThrottleKey(key string, n int) Option {
	return func(c *config) { c.throttleKey, c.keyEvery = key, n }
}

// WithDelay makes every PutRecords answer wait d after the request was read, as a distant or
// busy Kinesis endpoint does: it keeps requests in flight without limiting what each carries.
func WithDelay(d time.Duration) Option { return func(c *config) { c.delay = d } }

// WithShards makes the streams have n shards with even hash-key ranges (default 1): ListShards
// and DescribeStream* report them and PutRecords assigns each record the shard whose range holds
// MD5(partition key), or its ExplicitHashKey.
func WithShards(n int) Option { return func(c *config) { c.shards = n } }

type shard struct {
	id         string
	start, end [2]uint64 // hash-key range, big-endian halves
	seq        atomic.Uint64
	_          [40]byte
}

const (
	idShards  = 64
	chunkSize = 64 << 10
)

// idShard is one shard of the id → delivery-count index. It holds no pointers per id, so the
// garbage collector does not scan millions of ids: idx maps an id's 64-bit hash to the record of
// the first id with that hash, the id bytes live in append-only chunks, and ids whose hash was
// taken (which practically never happens, but is handled exactly) are chained in more.
type idShard struct {
	mu     sync.Mutex
	idx    map[uint64]idRec
	more   []idRec
	chunks [][]byte
	cur    int // 1-based index of the chunk that small ids are appended to, 0 for none
	_      [64]byte
}

type idRec struct {
	chunk, off, n uint32 // the id is chunks[chunk][off:off+n]
	count         int32
	next          uint32 // 1-based index in more of the next id with the same hash, 0 for none
}

func (sh *idShard) id(r *idRec) []byte { return sh.chunks[r.chunk][r.off : r.off+r.n] }

// inc counts a delivery of id, whose hash is h, and reports whether it was the first.
func (sh *idShard) inc(h uint64, id []byte) bool {
	r, ok := sh.idx[h]
	if !ok {
		sh.idx[h] = sh.newRec(id)
		return true
	}
	if bytes.Equal(sh.id(&r), id) {
		r.count++
		sh.idx[h] = r
		return false
	}
	for j := r.next; j != 0; j = sh.more[j-1].next {
		if m := &sh.more[j-1]; bytes.Equal(sh.id(m), id) {
			m.count++
			return false
		}
	}
	nr := sh.newRec(id)
	nr.next = r.next
	sh.more = append(sh.more, nr)
	r.next = uint32(len(sh.more))
	sh.idx[h] = r
	return true
}

// count returns the deliveries of id, whose hash is h.
func (sh *idShard) count(h uint64, id []byte) int {
	r, ok := sh.idx[h]
	if !ok {
		return 0
	}
	if bytes.Equal(sh.id(&r), id) {
		return int(r.count)
	}
	for j := r.next; j != 0; j = sh.more[j-1].next {
		if m := &sh.more[j-1]; bytes.Equal(sh.id(m), id) {
			return int(m.count)
		}
	}
	return 0
}

// newRec copies id into the chunks and returns a record of one delivery.
func (sh *idShard) newRec(id []byte) idRec {
	var ci, off int
	if len(id) > chunkSize/4 {
		ci = len(sh.chunks)
		sh.chunks = append(sh.chunks, bytes.Clone(id)) // a chunk of its own
	} else {
		if sh.cur == 0 || cap(sh.chunks[sh.cur-1])-len(sh.chunks[sh.cur-1]) < len(id) {
			sh.chunks = append(sh.chunks, make([]byte, 0, chunkSize))
			sh.cur = len(sh.chunks)
		}
		ci = sh.cur - 1
		off = len(sh.chunks[ci])
		sh.chunks[ci] = append(sh.chunks[ci], id...) // within capacity: earlier ids stay put
	}
	return idRec{chunk: uint32(ci), off: uint32(off), n: uint32(len(id)), count: 1}
}

// each calls f with every id and its count.
func (sh *idShard) each(f func(id []byte, count int)) {
	for _, r := range sh.idx {
		f(sh.id(&r), int(r.count))
	}
	for i := range sh.more {
		f(sh.id(&sh.more[i]), int(sh.more[i].count))
	}
}

// Sink is a running fast Kinesis endpoint. Its methods are safe for concurrent use.
type Sink struct {
	cfg     config
	ln      net.Listener
	srv     *http.Server
	once    sync.Once
	created time.Time
	shards  []shard
	seed    maphash.Seed
	ids     [idShards]idShard
	pool    sync.Pool // *reqState

	requests, putRequests, records, bytes, distinct, dups, limits atomic.Int64
	throttleSeq, keyThrottleSeq, throttledEntries                 atomic.Int64
}

// New starts a sink on 127.0.0.1 (a free port), serving HTTP/1.1 with keep-alive.
func New(opts ...Option) (*Sink, error) {
	s, err := newSink(opts...)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fastsink: listen: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func newSink(opts ...Option) (*Sink, error) {
	cfg := config{shards: 1}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.shards < 1 || cfg.shards > 10000 {
		return nil, fmt.Errorf("fastsink: shard count %d out of range 1..10000", cfg.shards)
	}
	s := &Sink{cfg: cfg, created: time.Now(), seed: maphash.MakeSeed()}
	s.pool.New = func() any { return new(reqState) }
	s.shards = make([]shard, cfg.shards)
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	n := big.NewInt(int64(cfg.shards))
	for i := range s.shards {
		sh := &s.shards[i]
		sh.id = fmt.Sprintf("shardId-%012d", i)
		sh.seq.Store(FirstSequenceNumber - 1)
		start := new(big.Int).Mul(big.NewInt(int64(i)), space)
		sh.start = to128(start.Div(start, n))
		end := new(big.Int).Mul(big.NewInt(int64(i+1)), space)
		end.Div(end, n).Sub(end, big.NewInt(1))
		sh.end = to128(end)
	}
	for i := range s.ids {
		s.ids[i].idx = map[uint64]idRec{}
	}
	return s, nil
}

func to128(x *big.Int) [2]uint64 {
	var b [16]byte
	x.FillBytes(b[:])
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func from128(v [2]uint64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v[0])
	binary.BigEndian.PutUint64(b[8:], v[1])
	return new(big.Int).SetBytes(b[:]).String()
}

// URL is the sink's base URL, to be used as the Kinesis endpoint (BaseEndpoint).
func (s *Sink) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the sink and closes its connections.
func (s *Sink) Close() {
	s.once.Do(func() {
		if s.srv != nil {
			_ = s.srv.Close()
		}
	})
}

// Stats returns a snapshot of the counters (each read atomically, not all at one instant).
func (s *Sink) Stats() Stats {
	return Stats{
		Requests:           s.requests.Load(),
		PutRecordsRequests: s.putRequests.Load(),
		Records:            s.records.Load(),
		Throttled:          s.throttledEntries.Load(),
		Bytes:              s.bytes.Load(),
		Distinct:           s.distinct.Load(),
		Duplicates:         s.dups.Load(),
		LimitViolations:    s.limits.Load(),
	}
}

// Count returns how many times a record with this id was accepted.
func (s *Sink) Count(id string) int {
	b := unsafe.Slice(unsafe.StringData(id), len(id))
	h := maphash.Bytes(s.seed, b)
	sh := &s.ids[h%idShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.count(h, b)
}

// Counts returns a copy of the delivery count of every id seen.
func (s *Sink) Counts() map[string]int {
	out := make(map[string]int, s.distinct.Load())
	for i := range s.ids {
		sh := &s.ids[i]
		sh.mu.Lock()
		sh.each(func(id []byte, n int) { out[string(id)] = n })
		sh.mu.Unlock()
	}
	return out
}

// Reset forgets every id and zeroes the stats. Sequence numbers keep increasing.
func (s *Sink) Reset() {
	for i := range s.ids {
		sh := &s.ids[i]
		sh.mu.Lock()
		sh.idx = map[uint64]idRec{}
		sh.more, sh.chunks, sh.cur = nil, nil, 0
		sh.mu.Unlock()
	}
	for _, c := range []*atomic.Int64{&s.requests, &s.putRequests, &s.records, &s.bytes, &s.distinct, &s.dups, &s.limits} {
		c.Store(0)
	}
}

// reqState is the reusable per-request memory.
type reqState struct {
	body      []byte
	throttled []bool
	entries   []entry
	ids       []byte
	scratch   []byte
	out       []byte
}

var (
	ctJSON      = []string{"application/x-amz-json-1.1"}
	errTooLarge = errors.New("request body too large")
)

// ServeHTTP implements http.Handler.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	var target string
	if v := r.Header["X-Amz-Target"]; len(v) > 0 {
		target = v[0]
	}
	action, ok := strings.CutPrefix(target, targetPrefix)
	if r.Method != http.MethodPost || !ok {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "fastsink: unknown operation "+strconv.Quote(target))
		return
	}
	if ct := r.Header["Content-Type"]; len(ct) > 0 && !strings.HasPrefix(ct[0], "application/x-amz-json") {
		writeError(w, http.StatusBadRequest, "SerializationException", "fastsink speaks awsJson only, not "+ct[0])
		return
	}
	switch action {
	case "PutRecords":
		s.putRecords(w, r, false)
	case "PutRecord":
		s.putRecords(w, r, true)
	case "DescribeStreamSummary", "DescribeStream", "ListShards", "CreateStream", "DeleteStream":
		s.control(w, r, action)
	default:
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "fastsink: unknown operation "+strconv.Quote(target))
	}
}

func readBody(r *http.Request, buf []byte) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return buf, errTooLarge
	}
	if r.ContentLength >= 0 {
		n := int(r.ContentLength)
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		_, err := io.ReadFull(r.Body, buf)
		return buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > MaxBodyBytes {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (s *Sink) putRecords(w http.ResponseWriter, r *http.Request, single bool) {
	s.putRequests.Add(1)
	st := s.pool.Get().(*reqState)
	defer s.pool.Put(st)
	var err error
	st.body, err = readBody(r, st.body)
	if errors.Is(err, errTooLarge) {
		s.limits.Add(1)
		writeError(w, http.StatusBadRequest, "ValidationException", "fastsink: request body larger than 32 MiB")
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "fastsink: reading body: "+err.Error())
		return
	}
	if s.cfg.delay > 0 {
		time.Sleep(s.cfg.delay)
	}
	p := parser{b: st.body}
	st.entries = st.entries[:0]
	if single {
		var e entry
		if e, err = p.record(); err == nil {
			st.entries = append(st.entries, e)
			if p.peek() != 0 {
				err = p.errf("trailing data")
			}
		}
	} else {
		st.entries, err = p.putRecords(st.entries)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "fastsink: "+err.Error())
		return
	}
	if msg := s.validate(st, single); msg != "" {
		s.limits.Add(1)
		writeError(w, http.StatusBadRequest, "ValidationException", msg)
		return
	}
	// Derive every id before storing anything, so a bad request stores nothing.
	st.ids = st.ids[:0]
	var total int64
	for i := range st.entries {
		e := &st.entries[i]
		src := st.body[e.data.s:e.data.e]
		start := len(st.ids)
		if s.cfg.id == nil {
			var id []byte
			if id, err = defaultIDPrefix(st.scratch, src); err == nil {
				st.scratch = id[:0]
				st.ids = append(st.ids, id...)
			}
		} else {
			var data []byte
			if data, err = decodeAll(st.scratch, src); err == nil {
				st.scratch = data[:0]
				st.ids = append(st.ids, s.cfg.id(data)...)
			}
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "SerializationException",
				fmt.Sprintf("fastsink: record %d: Data: %v", i, err))
			return
		}
		e.id = span{start, len(st.ids)}
		total += int64(e.dataLen + e.key.e - e.key.s)
	}

	// Choose the throttled entries first: the count heads the answer.
	st.throttled = st.throttled[:0]
	failed := 0
	for i := range st.entries {
		t := !single && s.cfg.throttleEvery > 0 && s.throttleSeq.Add(1)%int64(s.cfg.throttleEvery) == 0
		if !single && s.cfg.keyEvery > 0 {
			e := &st.entries[i]
			if string(st.body[e.key.s:e.key.e]) == s.cfg.throttleKey && s.keyThrottleSeq.Add(1)%int64(s.cfg.keyEvery) == 0 {
				t = true
			}
		}
		st.throttled = append(st.throttled, t)
		if t {
			failed++
		}
	}
	s.throttledEntries.Add(int64(failed))
	out := st.out[:0]
	out = append(out, '{')
	if !single {
		out = append(out, `"FailedRecordCount":`...)
		out = strconv.AppendInt(out, int64(failed), 10)
		out = append(out, `,"Records":[`...)
	}
	var dups, fresh int64
	var block uint64 // with one shard, the sequence numbers are reserved at once: block+1...
	if len(s.shards) == 1 {
		block = s.shards[0].seq.Add(uint64(len(st.entries))) - uint64(len(st.entries))
	}
	for i := range st.entries {
		e := &st.entries[i]
		if st.throttled[i] {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard"}`...)
			continue
		}
		if s.store(st.ids[e.id.s:e.id.e]) {
			fresh++
		} else {
			dups++
		}
		sh := &s.shards[s.shardFor(st.body, e)]
		if i > 0 {
			out = append(out, ',')
		}
		if !single {
			out = append(out, '{')
		}
		out = append(out, `"SequenceNumber":"`...)
		if len(s.shards) == 1 {
			out = strconv.AppendUint(out, block+uint64(i)+1, 10)
		} else {
			out = strconv.AppendUint(out, sh.seq.Add(1), 10)
		}
		out = append(out, `","ShardId":"`...)
		out = append(out, sh.id...)
		out = append(out, '"')
		if !single {
			out = append(out, '}')
		}
	}
	if !single {
		out = append(out, ']')
	}
	out = append(out, `,"EncryptionType":"NONE"}`...)
	st.out = out
	s.records.Add(int64(len(st.entries) - failed))
	s.bytes.Add(total)
	s.distinct.Add(fresh)
	s.dups.Add(dups)

	h := w.Header()
	h["Content-Type"] = ctJSON
	h["Content-Length"] = []string{strconv.Itoa(len(out))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// store counts one delivery of id and reports whether it was the first.
func (s *Sink) store(id []byte) bool {
	h := maphash.Bytes(s.seed, id)
	sh := &s.ids[h%idShards]
	sh.mu.Lock()
	first := sh.inc(h, id)
	sh.mu.Unlock()
	return first
}

// validate returns a ValidationException message for the first AWS limit the request breaks.
func (s *Sink) validate(st *reqState, single bool) string {
	n := len(st.entries)
	if !single && (n < 1 || n > MaxRecords) {
		return fmt.Sprintf("1 validation error detected: Value at 'records' failed to satisfy constraint: "+
			"Member must have length less than or equal to %d and greater than or equal to 1 (got %d)", MaxRecords, n)
	}
	total := 0
	for i := range st.entries {
		e := &st.entries[i]
		if !e.data.ok() {
			return fmt.Sprintf("1 validation error detected: Value null at '%sdata' failed to satisfy constraint: "+
				"Member must not be null", field(single, i))
		}
		if !e.key.ok() {
			return fmt.Sprintf("1 validation error detected: Value null at '%spartitionKey' failed to satisfy constraint: "+
				"Member must not be null", field(single, i))
		}
		key := st.body[e.key.s:e.key.e]
		if k := utf8.RuneCount(key); k < 1 || k > MaxPartitionKeyLen {
			return fmt.Sprintf("1 validation error detected: Value at '%spartitionKey' failed to satisfy constraint: "+
				"Member must have length between 1 and %d (got %d)", field(single, i), MaxPartitionKeyLen, k)
		}
		if e.ehk.ok() {
			if _, ok := parseHashKey(st.body[e.ehk.s:e.ehk.e]); !ok {
				return fmt.Sprintf("1 validation error detected: Value at '%sexplicitHashKey' failed to satisfy constraint: "+
					"Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38}) and be below 2^128", field(single, i))
			}
		}
		size := e.dataLen + len(key)
		if size > MaxRecordBytes {
			return fmt.Sprintf("record %d is %d bytes (data plus partition key); the limit is %d", i, size, MaxRecordBytes)
		}
		total += size
	}
	if total > MaxRequestBytes {
		return fmt.Sprintf("request is %d bytes (data plus partition keys); the limit is %d", total, MaxRequestBytes)
	}
	return ""
}

// field is the prefix of the AWS field names in a ValidationException for entry i.
func field(single bool, i int) string {
	if single {
		return ""
	}
	return "records." + strconv.Itoa(i+1) + ".member."
}

// parseHashKey parses a decimal hash key in 0..2^128-1.
func parseHashKey(b []byte) ([2]uint64, bool) {
	var v [2]uint64
	if len(b) == 0 || len(b) > 39 || (b[0] == '0' && len(b) > 1) {
		return v, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return v, false
		}
		// v = v*10 + d, failing on overflow.
		hiHi, hiLo := bits.Mul64(v[0], 10)
		loHi, loLo := bits.Mul64(v[1], 10)
		if hiHi != 0 {
			return v, false
		}
		hi, carry := bits.Add64(hiLo, loHi, 0)
		if carry != 0 {
			return v, false
		}
		lo, carry := bits.Add64(loLo, uint64(c-'0'), 0)
		hi, carry = bits.Add64(hi, 0, carry)
		if carry != 0 {
			return v, false
		}
		v = [2]uint64{hi, lo}
	}
	return v, true
}

func less128(a, b [2]uint64) bool { return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]) }

// shardFor returns the index of the shard a (validated) entry belongs to.
func (s *Sink) shardFor(body []byte, e *entry) int {
	if len(s.shards) == 1 {
		return 0
	}
	var h [2]uint64
	if e.ehk.ok() {
		h, _ = parseHashKey(body[e.ehk.s:e.ehk.e])
	} else {
		sum := md5.Sum(body[e.key.s:e.key.e])
		h = [2]uint64{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
	}
	// The first shard that starts after h, minus one.
	return sort.Search(len(s.shards), func(i int) bool { return less128(h, s.shards[i].start) }) - 1
}

// control answers the actions off the hot path.
func (s *Sink) control(w http.ResponseWriter, r *http.Request, action string) {
	var in struct {
		StreamName string
		StreamARN  string
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		err = json.Unmarshal(body, &in)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "fastsink: "+err.Error())
		return
	}
	name := in.StreamName
	if name == "" {
		if _, after, ok := strings.Cut(in.StreamARN, ":stream/"); ok {
			name = after
		}
	}
	if name == "" {
		name = "stream"
	}
	arn := "arn:aws:kinesis:" + region + ":" + account + ":stream/" + name
	created := float64(s.created.UnixMilli()) / 1000
	mode := map[string]string{"StreamMode": "PROVISIONED"}
	var out any
	switch action {
	case "DescribeStreamSummary":
		out = map[string]any{"StreamDescriptionSummary": map[string]any{
			"StreamName": name, "StreamARN": arn, "StreamStatus": "ACTIVE", "StreamModeDetails": mode,
			"RetentionPeriodHours": 24, "StreamCreationTimestamp": created,
			"EnhancedMonitoring": []any{map[string]any{"ShardLevelMetrics": []string{}}},
			"EncryptionType":     "NONE", "OpenShardCount": len(s.shards), "ConsumerCount": 0,
			"MaxRecordSizeInKiB": 1024,
		}}
	case "DescribeStream":
		out = map[string]any{"StreamDescription": map[string]any{
			"StreamName": name, "StreamARN": arn, "StreamStatus": "ACTIVE", "StreamModeDetails": mode,
			"Shards": s.shardList(), "HasMoreShards": false, "RetentionPeriodHours": 24,
			"StreamCreationTimestamp": created,
			"EnhancedMonitoring":      []any{map[string]any{"ShardLevelMetrics": []string{}}},
			"EncryptionType":          "NONE", "MaxRecordSizeInKiB": 1024,
		}}
	case "ListShards":
		out = map[string]any{"Shards": s.shardList()}
	default: // CreateStream, DeleteStream
		out = struct{}{}
	}
	b, _ := json.Marshal(out)
	w.Header()["Content-Type"] = ctJSON
	_, _ = w.Write(b)
}

func (s *Sink) shardList() []any {
	list := make([]any, len(s.shards))
	for i := range s.shards {
		sh := &s.shards[i]
		list[i] = map[string]any{
			"ShardId":             sh.id,
			"HashKeyRange":        map[string]string{"StartingHashKey": from128(sh.start), "EndingHashKey": from128(sh.end)},
			"SequenceNumberRange": map[string]string{"StartingSequenceNumber": strconv.FormatUint(FirstSequenceNumber, 10)},
		}
	}
	return list
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	h := w.Header()
	h["Content-Type"] = ctJSON
	h["X-Amzn-Errortype"] = []string{code}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
