package mapping

import (
	"encoding/binary"
	"errors"
)

// WireMagic is the first byte of a value in the Confluent wire format (the
// framing Confluent's serializers and every compatible registry client
// write): magic byte 0, the schema id as 4 big-endian bytes, then the
// serialized payload.
const WireMagic = 0

// wireHeaderLen is the magic byte plus the 4-byte schema id.
const wireHeaderLen = 5

// MaxMessageIndexes bounds the protobuf message-index path a value may
// carry. Real paths are a few entries deep (a message nested in a message);
// the bound stops a corrupt count from sizing a huge allocation.
const MaxMessageIndexes = 64

// ErrBadMessageIndexes is returned for a protobuf message-index prefix that is
// truncated, negative or longer than MaxMessageIndexes.
var ErrBadMessageIndexes = errors.New("bad protobuf message indexes")

// SplitWireFormat splits a Confluent-framed value into its schema id and
// payload (which aliases b). ok is false when b is not framed: shorter than
// the 5-byte header or not starting with WireMagic.
func SplitWireFormat(b []byte) (id uint32, payload []byte, ok bool) {
	if len(b) < wireHeaderLen || b[0] != WireMagic {
		return 0, nil, false
	}
	return binary.BigEndian.Uint32(b[1:wireHeaderLen]), b[wireHeaderLen:], true
}

// AppendWireFormat appends the framing for schema id and then payload to dst;
// the inverse of SplitWireFormat, for tests and tools.
func AppendWireFormat(dst []byte, id uint32, payload []byte) []byte {
	dst = append(dst, WireMagic)
	dst = binary.BigEndian.AppendUint32(dst, id)
	return append(dst, payload...)
}

// SplitMessageIndexes reads the message-index path that the Confluent
// protobuf serializer writes after the schema id: a zig-zag varint count,
// then that many zig-zag varints, each the index of a message among its
// parent's (the file's top-level messages first). A count of 0 is the
// shorthand for [0], the first message of the file. The path is appended
// to idx (pass nil or a reused slice), and rest aliases b.
func SplitMessageIndexes(idx []int, b []byte) (path []int, rest []byte, err error) {
	n, w := binary.Varint(b)
	if w <= 0 || n < 0 || n > MaxMessageIndexes {
		return idx, nil, ErrBadMessageIndexes
	}
	b = b[w:]
	if n == 0 {
		return append(idx, 0), b, nil
	}
	start := len(idx)
	for range n {
		v, w := binary.Varint(b)
		if w <= 0 || v < 0 || v > 1<<31-1 {
			return idx[:start], nil, ErrBadMessageIndexes
		}
		idx = append(idx, int(v))
		b = b[w:]
	}
	return idx, b, nil
}

// AppendMessageIndexes appends the message-index path for path ([0] is
// written as the one-byte shorthand); the inverse of SplitMessageIndexes.
func AppendMessageIndexes(dst []byte, path []int) []byte {
	if len(path) == 1 && path[0] == 0 {
		return append(dst, 0)
	}
	dst = binary.AppendVarint(dst, int64(len(path)))
	for _, i := range path {
		dst = binary.AppendVarint(dst, int64(i))
	}
	return dst
}
