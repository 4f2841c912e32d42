// Package aggregation packs many user records into one Kinesis record in the
// KPL aggregated record format, and unpacks such records again.
//
// The format (awslabs/amazon-kinesis-producer, aggregation-format.md) is the
// four magic bytes F3 89 9A C2, then a protobuf message
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// then the 16-byte MD5 digest of the protobuf bytes. The protobuf encoding is
// written by hand; it is small.
//
// The package is pure: no I/O, no clocks.
package aggregation

import (
	"bytes"
	"crypto/md5" // The format's checksum, not a security measure.
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// magic is the prefix of every aggregated record's data.
var magic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

const (
	magicLen  = len(magic)
	digestLen = md5.Size
	// Overhead is the size of an aggregated record's data around its
	// protobuf message: the magic bytes and the MD5 digest.
	Overhead = magicLen + digestLen
)

// Protobuf keys (field number << 3 | wire type) used by the format.
const (
	keyPartitionKeyTable    = 1<<3 | wireBytes // AggregatedRecord.partition_key_table
	keyExplicitHashKeyTable = 2<<3 | wireBytes // AggregatedRecord.explicit_hash_key_table
	keyRecords              = 3<<3 | wireBytes // AggregatedRecord.records
	keyPartitionKeyIndex    = 1<<3 | wireVarint
	keyExplicitHashKeyIndex = 2<<3 | wireVarint
	keyData                 = 3<<3 | wireBytes
)

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// Record is one user record.
type Record struct {
	// PartitionKey is the user record's partition key.
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key (a decimal
	// 128-bit integer), or "" for none.
	ExplicitHashKey string
	// Data is the user record's payload.
	Data []byte
}

// entry is one user record held by an Aggregator.
type entry struct {
	data  []byte
	pk    int // index in the partition key table
	ehk   int // index in the explicit hash key table plus one; 0 for none
	inner int // encoded size of the Record message (without its key and length)
}

// Aggregator packs user records into one aggregated Kinesis record whose data
// (magic + protobuf + MD5) is at most maxBytes long.
//
// An Aggregator keeps references to the records' Data slices until Reset: the
// caller must not modify them before Encode. Reuse one Aggregator through
// Reset; once its internal tables have grown to the working size, Add and
// Encode (into a large enough dst) do not allocate.
//
// The Kinesis record takes the first user record's partition key (and
// explicit hash key), so the caller must only aggregate user records that map
// to the same shard. An Aggregator is not safe for concurrent use.
type Aggregator struct {
	maxBytes int
	pbSize   int // encoded size of the AggregatedRecord message

	recs     []entry
	pkTable  []string
	ehkTable []string
	pkIndex  map[string]int
	ehkIndex map[string]int
}

// NewAggregator returns an empty Aggregator for aggregates of at most maxBytes
// of data.
func NewAggregator(maxBytes int) *Aggregator {
	// Pre-size for records of about 256 bytes; the tables keep whatever
	// capacity they grow to across Reset.
	n := min(max(maxBytes/256, 16), 4096)
	return &Aggregator{
		maxBytes: maxBytes,
		recs:     make([]entry, 0, n),
		pkTable:  make([]string, 0, n),
		pkIndex:  make(map[string]int, n),
		ehkIndex: make(map[string]int),
	}
}

// MaxBytes returns the data size limit the Aggregator was created with.
func (a *Aggregator) MaxBytes() int { return a.maxBytes }

// Add appends r if the aggregate's data still fits in maxBytes with it. It
// returns false, and does not add r, if it would not. A record that alone
// exceeds maxBytes is still accepted into an empty Aggregator (the caller
// decides whether to send it unaggregated). Add costs O(1): sizes are tracked
// incrementally, and a partition key (or explicit hash key) already in the
// aggregate only adds its index.
func (a *Aggregator) Add(r Record) bool {
	grow := 0

	pk, havePK := a.pkIndex[r.PartitionKey]
	if !havePK {
		pk = len(a.pkTable)
		grow += fieldSize(len(r.PartitionKey))
	}
	inner := 1 + uvarintLen(uint64(pk))

	ehk, haveEHK := 0, true
	if r.ExplicitHashKey != "" {
		ehk, haveEHK = a.ehkIndex[r.ExplicitHashKey]
		if !haveEHK {
			ehk = len(a.ehkTable)
			grow += fieldSize(len(r.ExplicitHashKey))
		}
		inner += 1 + uvarintLen(uint64(ehk))
		ehk++
	}

	inner += fieldSize(len(r.Data))
	grow += fieldSize(inner)

	if len(a.recs) > 0 && Overhead+a.pbSize+grow > a.maxBytes {
		return false
	}

	if !havePK {
		a.pkIndex[r.PartitionKey] = pk
		a.pkTable = append(a.pkTable, r.PartitionKey)
	}
	if !haveEHK {
		a.ehkIndex[r.ExplicitHashKey] = ehk - 1
		a.ehkTable = append(a.ehkTable, r.ExplicitHashKey)
	}
	a.recs = append(a.recs, entry{data: r.Data, pk: pk, ehk: ehk, inner: inner})
	a.pbSize += grow
	return true
}

// Len returns the number of user records in the aggregate.
func (a *Aggregator) Len() int { return len(a.recs) }

// Size returns the exact length of the data Encode would return now (magic,
// protobuf and MD5 digest; Overhead for an empty Aggregator).
func (a *Aggregator) Size() int { return Overhead + a.pbSize }

// KinesisSize returns the size the Kinesis record will count against the
// Kinesis record size limits: Size plus the length of the partition key
// Encode returns. It is 0 for an empty Aggregator.
func (a *Aggregator) KinesisSize() int {
	if len(a.recs) == 0 {
		return 0
	}
	return a.Size() + len(a.pkTable[a.recs[0].pk])
}

// Encode appends the aggregated record's data to dst and returns the extended
// slice, with the partition key and explicit hash key ("" for none) to send it
// with: those of the first user record. Encode leaves the Aggregator as it is;
// call Reset to start the next aggregate. Appending to a dst with room for
// Size more bytes does not allocate.
func (a *Aggregator) Encode(dst []byte) (data []byte, partitionKey, explicitHashKey string) {
	dst = slices.Grow(dst, a.Size())
	dst = append(dst, magic[:]...)
	start := len(dst)
	for _, k := range a.pkTable {
		dst = appendString(dst, keyPartitionKeyTable, k)
	}
	for _, k := range a.ehkTable {
		dst = appendString(dst, keyExplicitHashKeyTable, k)
	}
	for i := range a.recs {
		e := &a.recs[i]
		dst = append(dst, keyRecords)
		dst = binary.AppendUvarint(dst, uint64(e.inner))
		dst = append(dst, keyPartitionKeyIndex)
		dst = binary.AppendUvarint(dst, uint64(e.pk))
		if e.ehk > 0 {
			dst = append(dst, keyExplicitHashKeyIndex)
			dst = binary.AppendUvarint(dst, uint64(e.ehk-1))
		}
		dst = append(dst, keyData)
		dst = binary.AppendUvarint(dst, uint64(len(e.data)))
		dst = append(dst, e.data...)
	}
	sum := md5.Sum(dst[start:])
	dst = append(dst, sum[:]...)

	if len(a.recs) > 0 {
		first := &a.recs[0]
		partitionKey = a.pkTable[first.pk]
		if first.ehk > 0 {
			explicitHashKey = a.ehkTable[first.ehk-1]
		}
	}
	return dst, partitionKey, explicitHashKey
}

// Reset empties the Aggregator, keeping its allocated capacity, and drops its
// references to the records' data.
func (a *Aggregator) Reset() {
	clear(a.recs)
	clear(a.pkTable)
	clear(a.ehkTable)
	a.recs = a.recs[:0]
	a.pkTable = a.pkTable[:0]
	a.ehkTable = a.ehkTable[:0]
	clear(a.pkIndex)
	clear(a.ehkIndex)
	a.pbSize = 0
}

// ErrChecksum reports an aggregated record whose MD5 digest does not match
// its protobuf message.
var ErrChecksum = errors.New("aggregated record: MD5 digest mismatch")

// ErrMalformed reports an aggregated record that is truncated or whose
// protobuf message cannot be decoded.
var ErrMalformed = errors.New("aggregated record: malformed")

// IsAggregated reports whether data starts with the aggregated record magic
// bytes.
func IsAggregated(data []byte) bool {
	return len(data) >= magicLen && bytes.Equal(data[:magicLen], magic[:])
}

// Deaggregate decodes the data of a Kinesis record sent with partitionKey into
// its user records, verifying the magic bytes and the MD5 digest. Data without
// the magic bytes is not aggregated and comes back as one user record with
// partitionKey. Errors (wrapping ErrChecksum or ErrMalformed) report corrupt
// input; Deaggregate never panics.
//
// The returned records' Data slices alias data. Unknown protobuf fields and
// tags are skipped.
func Deaggregate(data []byte, partitionKey string) ([]Record, error) {
	if !IsAggregated(data) {
		return []Record{{PartitionKey: partitionKey, Data: data}}, nil
	}
	if len(data) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes is shorter than magic and digest", ErrMalformed, len(data))
	}
	pb := data[magicLen : len(data)-digestLen]
	sum := md5.Sum(pb)
	if !bytes.Equal(sum[:], data[len(data)-digestLen:]) {
		return nil, ErrChecksum
	}

	// First pass: count the records and the key tables' entries and bytes
	// (the tables may come before or after the records).
	var nPK, nEHK, keyBytes, n int
	for p := pb; len(p) > 0; {
		key, val, rest, err := nextField(p)
		if err != nil {
			return nil, err
		}
		p = rest
		switch key {
		case keyPartitionKeyTable:
			nPK++
			keyBytes += len(val)
		case keyExplicitHashKeyTable:
			nEHK++
			keyBytes += len(val)
		case keyRecords:
			n++
		default:
			if f := key >> 3; f >= 1 && f <= 3 {
				return nil, fmt.Errorf("%w: AggregatedRecord field %d has wire type %d", ErrMalformed, f, key&7)
			}
		}
	}

	// Second pass: the key tables, as substrings of one string (one
	// allocation rather than one per key).
	var arena strings.Builder
	arena.Grow(keyBytes)
	for p := pb; len(p) > 0; {
		key, val, rest, _ := nextField(p)
		p = rest
		if key == keyPartitionKeyTable || key == keyExplicitHashKeyTable {
			arena.Write(val)
		}
	}
	keys := arena.String()
	tables := make([]string, nPK+nEHK)
	pkTable, ehkTable := tables[:0:nPK], tables[nPK:nPK]
	for p := pb; len(p) > 0; {
		key, val, rest, _ := nextField(p)
		p = rest
		switch key {
		case keyPartitionKeyTable:
			pkTable = append(pkTable, keys[:len(val)])
			keys = keys[len(val):]
		case keyExplicitHashKeyTable:
			ehkTable = append(ehkTable, keys[:len(val)])
			keys = keys[len(val):]
		}
	}

	// Third pass: the records.
	out := make([]Record, 0, n)
	for p := pb; len(p) > 0; {
		key, val, rest, err := nextField(p)
		if err != nil {
			return nil, err
		}
		p = rest
		if key != keyRecords {
			continue
		}
		r, err := decodeRecord(val, pkTable, ehkTable)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", len(out), err)
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeRecord decodes one Record message.
func decodeRecord(p []byte, pkTable, ehkTable []string) (Record, error) {
	var (
		r              Record
		pk, ehk        uint64
		havePK, haveEH bool
		haveData       bool
	)
	for len(p) > 0 {
		key, val, rest, err := nextField(p)
		if err != nil {
			return r, err
		}
		p = rest
		switch key {
		case keyPartitionKeyIndex:
			pk, havePK = varintValue(val), true
		case keyExplicitHashKeyIndex:
			ehk, haveEH = varintValue(val), true
		case keyData:
			r.Data, haveData = val, true
		default:
			if f := key >> 3; f >= 1 && f <= 4 {
				// Field 4 (tags) is a message; all others are checked above.
				if f != 4 || key&7 != wireBytes {
					return r, fmt.Errorf("%w: Record field %d has wire type %d", ErrMalformed, f, key&7)
				}
			}
		}
	}
	if !havePK || !haveData {
		return r, fmt.Errorf("%w: Record lacks partition_key_index or data", ErrMalformed)
	}
	if pk >= uint64(len(pkTable)) {
		return r, fmt.Errorf("%w: partition_key_index %d out of %d keys", ErrMalformed, pk, len(pkTable))
	}
	r.PartitionKey = pkTable[pk]
	if haveEH {
		if ehk >= uint64(len(ehkTable)) {
			return r, fmt.Errorf("%w: explicit_hash_key_index %d out of %d keys", ErrMalformed, ehk, len(ehkTable))
		}
		r.ExplicitHashKey = ehkTable[ehk]
	}
	if r.Data == nil {
		r.Data = []byte{}
	}
	return r, nil
}

// nextField splits the protobuf field at the start of p into its key and
// value, and returns the rest of p. A varint value is returned as its encoded
// bytes (see varintValue); a length-delimited value without its length.
func nextField(p []byte) (key uint64, val, rest []byte, err error) {
	key, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, nil, nil, fmt.Errorf("%w: bad field key", ErrMalformed)
	}
	if key>>3 == 0 || key>>3 > 1<<29-1 {
		return 0, nil, nil, fmt.Errorf("%w: bad field number %d", ErrMalformed, key>>3)
	}
	p = p[n:]
	switch key & 7 {
	case wireVarint:
		_, m := binary.Uvarint(p)
		if m <= 0 {
			return 0, nil, nil, fmt.Errorf("%w: bad varint in field %d", ErrMalformed, key>>3)
		}
		return key, p[:m], p[m:], nil
	case wireFixed64:
		if len(p) < 8 {
			return 0, nil, nil, fmt.Errorf("%w: truncated field %d", ErrMalformed, key>>3)
		}
		return key, p[:8], p[8:], nil
	case wireFixed32:
		if len(p) < 4 {
			return 0, nil, nil, fmt.Errorf("%w: truncated field %d", ErrMalformed, key>>3)
		}
		return key, p[:4], p[4:], nil
	case wireBytes:
		l, m := binary.Uvarint(p)
		if m <= 0 || l > uint64(len(p)-m) {
			return 0, nil, nil, fmt.Errorf("%w: truncated field %d", ErrMalformed, key>>3)
		}
		end := m + int(l)
		return key, p[m:end:end], p[end:], nil
	}
	return 0, nil, nil, fmt.Errorf("%w: unsupported wire type %d in field %d", ErrMalformed, key&7, key>>3)
}

// varintValue decodes a varint nextField has already validated.
func varintValue(b []byte) uint64 {
	v, _ := binary.Uvarint(b)
	return v
}

// appendString appends a length-delimited field.
func appendString(dst []byte, key byte, s string) []byte {
	dst = append(dst, key)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// fieldSize is the encoded size of a length-delimited field with a one-byte
// key and an n-byte value.
func fieldSize(n int) int { return 1 + uvarintLen(uint64(n)) + n }

// uvarintLen is the encoded size of v as a varint.
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
