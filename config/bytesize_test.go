package config

import (
	"math"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "5MiB", want: 5 << 20},
		{in: "64 MiB", want: 64 << 20},
		{in: "5mib", want: 5 << 20},
		{in: "5MIB", want: 5 << 20},
		{in: " 7 MiB ", want: 7 << 20},
		{in: "1KiB", want: 1024},
		{in: "3GiB", want: 3 << 30},
		{in: "1KB", want: 1000},
		{in: "1kb", want: 1000},
		{in: "2MB", want: 2_000_000},
		{in: "2GB", want: 2_000_000_000},
		{in: "10B", want: 10},
		{in: "10 b", want: 10},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "+5", wantErr: true},
		{in: "1.5MiB", wantErr: true},
		{in: "5XB", wantErr: true},
		{in: "5 M", wantErr: true},
		{in: "5\tMiB", wantErr: true},
		{in: "9223372036854775808", wantErr: true},
		{in: "9000000000GiB", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			var got ByteSize
			err := got.UnmarshalText([]byte(tc.in))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("UnmarshalText(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("UnmarshalText(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1536, "1536"},
		{3000, "3KB"},
		{5 << 20, "5MiB"},
		{10 << 20, "10MiB"},
		{1 << 30, "1GiB"},
		{1_000_000_000, "1GB"},
		{1_024_000_000, "1024MB"},
		{-5, "-5"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			b, err := tc.in.MarshalText()
			if err != nil || string(b) != tc.want || tc.in.String() != tc.want {
				t.Fatalf("MarshalText(%d) = %q, %v; String() = %q; want %q", int64(tc.in), b, err, tc.in.String(), tc.want)
			}
		})
	}
}

func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"0", "5MiB", "64 MiB", "1kb", "9223372036854775807", "9GiB", "-1", "1.5GB", " 3 b"} {
		f.Add(s, int64(len(s)*1000))
	}
	f.Add("", int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, s string, n int64) {
		// Any text: never panics, and an accepted size prints back exactly.
		if v, err := ParseByteSize(s); err == nil {
			if v < 0 {
				t.Fatalf("ParseByteSize(%q) = %d, negative", s, v)
			}
			back, err := ParseByteSize(v.String())
			if err != nil || back != v {
				t.Fatalf("ParseByteSize(%q) = %d; its String %q parses to %d, %v", s, v, v.String(), back, err)
			}
		}
		// Any valid size: parse(print(x)) == x.
		if n >= 0 {
			x := ByteSize(n)
			back, err := ParseByteSize(x.String())
			if err != nil || back != x {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d", x.String(), back, err, x)
			}
		}
	})
}
