// Package shardmap predicts which Kinesis shard a record is written to, the way
// the Kinesis Producer Library does: it hashes the partition key (or takes the
// explicit hash key) and finds the open shard whose hash-key range holds it.
//
// The package is pure: callers pass in the shard list (from ListShards) and
// keys, and nothing here does I/O.
package shardmap

import (
	"crypto/md5"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// Hash is a 128-bit Kinesis hash key: Hi holds the most significant 64 bits.
// It is comparable, so it can be used with == and as a map key.
type Hash struct{ Hi, Lo uint64 }

// MaxHash is 2^128-1, the last hash key of the Kinesis key space.
var MaxHash = Hash{Hi: ^uint64(0), Lo: ^uint64(0)}

// Cmp returns -1, 0 or +1 as h is less than, equal to or greater than o.
func (h Hash) Cmp(o Hash) int {
	switch {
	case h.Hi < o.Hi:
		return -1
	case h.Hi > o.Hi:
		return 1
	case h.Lo < o.Lo:
		return -1
	case h.Lo > o.Lo:
		return 1
	}
	return 0
}

// next returns h+1 and whether it overflowed past MaxHash.
func (h Hash) next() (Hash, bool) {
	lo, carry := bits.Add64(h.Lo, 1, 0)
	hi, over := bits.Add64(h.Hi, 0, carry)
	return Hash{Hi: hi, Lo: lo}, over != 0
}

// prev returns h-1; the caller makes sure h is not zero.
func (h Hash) prev() Hash {
	lo, borrow := bits.Sub64(h.Lo, 1, 0)
	hi, _ := bits.Sub64(h.Hi, 0, borrow)
	return Hash{Hi: hi, Lo: lo}
}

// HashKey returns the hash key Kinesis derives from a partition key: the MD5
// of its UTF-8 bytes read as a big-endian unsigned 128-bit integer.
//
// Go strings may hold invalid UTF-8, which Kinesis can't receive: the AWS SDK's
// JSON encoder replaces each invalid byte with U+FFFD before sending, so the
// service hashes that string, and HashKey does the same. Valid UTF-8 keys of up
// to 1 KiB (every key Kinesis accepts; the only kind mapping.PartitionKey
// produces) are hashed without allocating.
func HashKey(partitionKey string) Hash {
	if !utf8.ValidString(partitionKey) {
		return fromBytes(md5.Sum(sanitize(partitionKey)))
	}
	// A Kinesis partition key has at most 256 characters, so at most 1 KiB of
	// UTF-8: copying it to a stack buffer avoids the heap allocation that
	// []byte(partitionKey) costs beyond 32 bytes. Longer keys still work.
	var buf [maxKeyBytes]byte
	if len(partitionKey) <= len(buf) {
		n := copy(buf[:], partitionKey)
		return fromBytes(md5.Sum(buf[:n]))
	}
	return fromBytes(md5.Sum([]byte(partitionKey)))
}

// maxKeyBytes is the UTF-8 size of the longest partition key Kinesis accepts:
// 256 characters of up to 4 bytes each.
const maxKeyBytes = 256 * utf8.UTFMax

// sanitize replaces every byte of s that is not part of a valid UTF-8 sequence
// with U+FFFD, one replacement per byte, as smithy-go's JSON string escaper does
// (unlike strings.ToValidUTF8, which collapses runs).
func sanitize(s string) []byte {
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return out
}

func fromBytes(b [md5.Size]byte) Hash {
	var h Hash
	for i := range 8 {
		h.Hi = h.Hi<<8 | uint64(b[i])
		h.Lo = h.Lo<<8 | uint64(b[i+8])
	}
	return h
}

// ErrInvalidHash is returned (wrapped) by ParseHash for input that is not a
// decimal integer in 0..2^128-1.
var ErrInvalidHash = errors.New("invalid hash key")

// ParseHash parses a hash key written as an unsigned decimal integer, the form
// of ExplicitHashKey and of ListShards' StartingHashKey/EndingHashKey. Leading
// zeros are accepted; signs, spaces, other characters, the empty string and
// values above 2^128-1 are rejected with an error wrapping ErrInvalidHash.
func ParseHash(decimal string) (Hash, error) {
	if decimal == "" {
		return Hash{}, fmt.Errorf("parse hash key %q: empty: %w", decimal, ErrInvalidHash)
	}
	var h Hash
	for i := 0; i < len(decimal); i++ {
		c := decimal[i]
		if c < '0' || c > '9' {
			return Hash{}, fmt.Errorf("parse hash key %q: byte %d is not a decimal digit: %w", decimal, i, ErrInvalidHash)
		}
		// h = h*10 + digit, watching for overflow past 128 bits.
		carryHi, lo := bits.Mul64(h.Lo, 10)
		overHi, hi := bits.Mul64(h.Hi, 10)
		hi, c1 := bits.Add64(hi, carryHi, 0)
		lo, c2 := bits.Add64(lo, uint64(c-'0'), 0)
		hi, c3 := bits.Add64(hi, 0, c2)
		if overHi != 0 || c1 != 0 || c3 != 0 {
			return Hash{}, fmt.Errorf("parse hash key %q: above 2^128-1: %w", decimal, ErrInvalidHash)
		}
		h = Hash{Hi: hi, Lo: lo}
	}
	return h, nil
}

// String returns h as an unsigned decimal integer without leading zeros, the
// form ParseHash reads and Kinesis prints.
func (h Hash) String() string {
	var buf [39]byte // 2^128-1 has 39 digits
	return string(h.appendDecimal(buf[:0]))
}

// appendDecimal appends the decimal form of h to dst.
func (h Hash) appendDecimal(dst []byte) []byte {
	const pow19 = 10_000_000_000_000_000_000 // largest power of ten below 2^64
	if h.Hi == 0 {
		return strconv.AppendUint(dst, h.Lo, 10)
	}
	// Split h into chunks of 19 digits, least significant first; at most three
	// chunks since 2^128 < 10^57.
	var chunks [3]uint64
	n := 0
	for h.Hi != 0 || h.Lo != 0 {
		qHi := h.Hi / pow19
		qLo, rem := bits.Div64(h.Hi%pow19, h.Lo, pow19)
		chunks[n] = rem
		n++
		h = Hash{Hi: qHi, Lo: qLo}
	}
	dst = strconv.AppendUint(dst, chunks[n-1], 10)
	for i := n - 2; i >= 0; i-- {
		var digits [19]byte
		v := chunks[i]
		for j := len(digits) - 1; j >= 0; j-- {
			digits[j] = byte('0' + v%10)
			v /= 10
		}
		dst = append(dst, digits[:]...)
	}
	return dst
}
