package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes. In files, environment variables and --set
// values it is written as a plain integer ("1048576") or an integer with a
// unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024),
// case-insensitive, with an optional space ("5MiB", "64 MiB"). Fractions and
// negative sizes are rejected, so every accepted text is exact.
type ByteSize int64

// Byte size units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	KB  ByteSize = 1000
	MB  ByteSize = 1000 * KB
	GB  ByteSize = 1000 * MB
)

// sizeUnits is ordered from the largest multiplier down, so printing picks
// the shortest exact form.
var sizeUnits = []struct {
	name string
	mult ByteSize
}{
	{"GiB", GiB}, {"GB", GB}, {"MiB", MiB}, {"MB", MB}, {"KiB", KiB}, {"KB", KB},
}

// errByteSize is wrapped by every parse error.
var errByteSize = errors.New("want a non-negative integer with an optional unit B, KB, MB, GB, KiB, MiB or GiB")

// ParseByteSize parses the text form described on ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid byte size %q: %w", s, errByteSize)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid byte size %q: too large", s)
	}
	unit := strings.TrimLeft(t[i:], " ")
	mult := ByteSize(1)
	switch {
	case unit == "" || strings.EqualFold(unit, "B"):
	default:
		found := false
		for _, u := range sizeUnits {
			if strings.EqualFold(unit, u.name) {
				mult, found = u.mult, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("invalid byte size %q: unknown unit %q: %w", s, unit, errByteSize)
		}
	}
	if n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("invalid byte size %q: too large", s)
	}
	return ByteSize(n) * mult, nil
}

// String returns the shortest exact form: "5MiB", "3KB", or the plain integer
// when no unit divides the size.
func (b ByteSize) String() string {
	if b > 0 {
		for _, u := range sizeUnits {
			if b%u.mult == 0 {
				return strconv.FormatInt(int64(b/u.mult), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText returns String's form; ParseByteSize reads it back unchanged.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses the text form described on ByteSize.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
