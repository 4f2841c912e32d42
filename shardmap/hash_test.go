package shardmap_test

import (
	"crypto/md5"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/ferrylabs/ferry/shardmap"
)

// two128 is 2^128, one past the last hash key.
var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

// toBig and fromBig convert with math/big, independently of the package's
// own 128-bit arithmetic.
func toBig(h shardmap.Hash) *big.Int {
	b := new(big.Int).SetUint64(h.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(h.Lo))
}

func fromBig(t testing.TB, b *big.Int) shardmap.Hash {
	t.Helper()
	if b.Sign() < 0 || b.Cmp(two128) >= 0 {
		t.Fatalf("%s is out of the 128-bit range", b)
	}
	lo := new(big.Int).And(b, new(big.Int).SetUint64(^uint64(0)))
	return shardmap.Hash{Hi: new(big.Int).Rsh(b, 64).Uint64(), Lo: lo.Uint64()}
}

// md5Big is the reference hash: crypto/md5 read as a big-endian integer.
func md5Big(s string) *big.Int {
	sum := md5.Sum([]byte(s))
	return new(big.Int).SetBytes(sum[:])
}

func TestHashKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		want string // decimal; "" means: compare with md5Big(key) only
	}{
		// d41d8cd98f00b204e9800998ecf8427e, the MD5 of nothing.
		{name: "empty", key: "", want: "281949768489412648962353822266799178366"},
		// 900150983cd24fb0d6963f7d28e17f72, the RFC 1321 test vector.
		{name: "abc", key: "abc", want: "191415658344158766168031473277922803570"},
		{name: "single byte", key: "a"},
		{name: "typical key", key: "user-42"},
		{name: "numeric partition fallback", key: "7"},
		{name: "multi-byte", key: "clé-日本"},
		{name: "astral", key: strings.Repeat("😀", 128)},
		{name: "256 ascii", key: strings.Repeat("k", 256)},
		{name: "block boundary 55", key: strings.Repeat("x", 55)},
		{name: "block boundary 56", key: strings.Repeat("x", 56)},
		{name: "block boundary 64", key: strings.Repeat("x", 64)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := shardmap.HashKey(tc.key)
			ref := md5Big(tc.key)
			if toBig(got).Cmp(ref) != 0 {
				t.Fatalf("HashKey(%q) = %s, want %s", tc.key, toBig(got), ref)
			}
			if got.String() != ref.String() {
				t.Fatalf("HashKey(%q).String() = %s, want %s", tc.key, got, ref)
			}
			if tc.want != "" && got.String() != tc.want {
				t.Fatalf("HashKey(%q) = %s, want %s", tc.key, got, tc.want)
			}
		})
	}
}

// TestHashKeyInvalidUTF8 pins the behaviour for keys the AWS SDK rewrites:
// smithy-go's JSON string escaper sends U+FFFD for each invalid byte, so the
// service hashes the rewritten key.
func TestHashKeyInvalidUTF8(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, key, sent string
	}{
		{name: "lone byte", key: "\xff", sent: "\uFFFD"},
		{name: "one replacement per byte", key: "a\xff\xfeb", sent: "a\uFFFD\uFFFDb"},
		{name: "truncated sequence", key: "\xe6\x97x", sent: "\uFFFD\uFFFDx"},
		{name: "surrogate half", key: "\xed\xa0\x80", sent: "\uFFFD\uFFFD\uFFFD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got, want := shardmap.HashKey(tc.key), fromBig(t, md5Big(tc.sent)); got != want {
				t.Fatalf("HashKey(%q) = %s, want MD5(%q) = %s", tc.key, got, tc.sent, want)
			}
		})
	}
}

func TestParseHash(t *testing.T) {
	t.Parallel()
	maxS := new(big.Int).Sub(two128, big.NewInt(1)).String()
	tests := []struct {
		name    string
		in      string
		want    string // canonical decimal when valid
		wantErr bool
	}{
		{name: "zero", in: "0", want: "0"},
		{name: "one", in: "1", want: "1"},
		{name: "max uint64", in: "18446744073709551615", want: "18446744073709551615"},
		{name: "2^64", in: "18446744073709551616", want: "18446744073709551616"},
		{name: "2^127", in: "170141183460469231731687303715884105728", want: "170141183460469231731687303715884105728"},
		{name: "max", in: maxS, want: maxS},
		{name: "leading zeros", in: "000042", want: "42"},
		{name: "all zeros", in: "0000", want: "0"},
		{name: "max with leading zeros", in: strings.Repeat("0", 100) + maxS, want: maxS},
		{name: "2^128 rejected", in: two128.String(), wantErr: true},
		{name: "2^128+1 rejected", in: new(big.Int).Add(two128, big.NewInt(1)).String(), wantErr: true},
		{name: "ten times max rejected", in: maxS + "0", wantErr: true},
		{name: "huge rejected", in: strings.Repeat("9", 80), wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "minus", in: "-1", wantErr: true},
		{name: "minus zero", in: "-0", wantErr: true},
		{name: "plus", in: "+1", wantErr: true},
		{name: "leading space", in: " 1", wantErr: true},
		{name: "trailing space", in: "1 ", wantErr: true},
		{name: "hex", in: "0x10", wantErr: true},
		{name: "exponent", in: "1e5", wantErr: true},
		{name: "underscore", in: "1_000", wantErr: true},
		{name: "decimal point", in: "1.0", wantErr: true},
		{name: "arabic-indic digit", in: "١", wantErr: true},
		{name: "nul", in: "1\x00", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := shardmap.ParseHash(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseHash(%q) = %s, want an error", tc.in, got)
				}
				if !errors.Is(err, shardmap.ErrInvalidHash) {
					t.Fatalf("ParseHash(%q) error %v does not wrap ErrInvalidHash", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHash(%q): %v", tc.in, err)
			}
			if got.String() != tc.want {
				t.Fatalf("ParseHash(%q) = %s, want %s", tc.in, got, tc.want)
			}
			want, _ := new(big.Int).SetString(tc.want, 10)
			if got != fromBig(t, want) {
				t.Fatalf("ParseHash(%q) = %#v, want %s per math/big", tc.in, got, want)
			}
		})
	}
}

func TestHashCmp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b shardmap.Hash
		want int
	}{
		{name: "equal", a: shardmap.Hash{Hi: 1, Lo: 2}, b: shardmap.Hash{Hi: 1, Lo: 2}, want: 0},
		{name: "hi decides", a: shardmap.Hash{Hi: 1}, b: shardmap.Hash{Lo: ^uint64(0)}, want: 1},
		{name: "lo decides", a: shardmap.Hash{Hi: 5, Lo: 1}, b: shardmap.Hash{Hi: 5, Lo: 2}, want: -1},
		{name: "zero vs max", a: shardmap.Hash{}, b: shardmap.MaxHash, want: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.a.Cmp(tc.b); got != tc.want {
				t.Fatalf("%s.Cmp(%s) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := tc.b.Cmp(tc.a); got != -tc.want {
				t.Fatalf("%s.Cmp(%s) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
			if got := toBig(tc.a).Cmp(toBig(tc.b)); got != tc.want {
				t.Fatalf("math/big disagrees: %d", got)
			}
		})
	}
}

// FuzzParseHash checks ParseHash against math/big: it accepts exactly the
// digit strings below 2^128, and String round-trips to the canonical form.
func FuzzParseHash(f *testing.F) {
	for _, s := range []string{"0", "007", "340282366920938463463374607431768211455",
		"340282366920938463463374607431768211456", "-1", "", "1e3", "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := shardmap.ParseHash(s)
		digits := s != "" && strings.Trim(s, "0123456789") == ""
		ref, _ := new(big.Int).SetString(s, 10)
		valid := digits && ref != nil && ref.Cmp(two128) < 0
		if valid != (err == nil) {
			t.Fatalf("ParseHash(%q) err = %v, want valid = %v", s, err, valid)
		}
		if !valid {
			return
		}
		if got.String() != ref.String() {
			t.Fatalf("ParseHash(%q) = %s, want %s", s, got, ref)
		}
		again, err := shardmap.ParseHash(got.String())
		if err != nil || again != got {
			t.Fatalf("round trip of %s = %s, %v", got, again, err)
		}
	})
}

// FuzzHashString checks String against math/big over the whole 128-bit range.
func FuzzHashString(f *testing.F) {
	f.Add(uint64(0), uint64(0))
	f.Add(^uint64(0), ^uint64(0))
	f.Add(uint64(1), uint64(0))
	f.Add(uint64(0x8ac7230489e80000>>1), uint64(0)) // near 10^19 boundaries
	f.Fuzz(func(t *testing.T, hi, lo uint64) {
		h := shardmap.Hash{Hi: hi, Lo: lo}
		if got, want := h.String(), toBig(h).String(); got != want {
			t.Fatalf("Hash{%#x, %#x}.String() = %s, want %s", hi, lo, got, want)
		}
	})
}

func BenchmarkHashKey(b *testing.B) {
	for _, n := range []int{8, 32, 256, 1024} {
		key := strings.Repeat("k", n)
		b.Run("len="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				shardmap.HashKey(key)
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

func BenchmarkParseHash(b *testing.B) {
	s := "340282366920938463463374607431768211455"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := shardmap.ParseHash(s); err != nil {
			b.Fatal(err)
		}
	}
}
