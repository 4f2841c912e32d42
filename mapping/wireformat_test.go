package mapping

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestSplitWireFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []byte
		id      uint32
		payload []byte
		ok      bool
	}{
		{"nil", nil, 0, nil, false},
		{"json", []byte(`{"a":1}`), 0, nil, false},
		{"four bytes", []byte{0, 0, 0, 1}, 0, nil, false},
		{"header only", []byte{0, 0, 0, 0, 7}, 7, []byte{}, true},
		{"big id", []byte{0, 0x80, 0, 0, 1, 'x'}, 1<<31 + 1, []byte("x"), true},
		{"wrong magic", []byte{1, 0, 0, 0, 7, 'x'}, 0, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id, payload, ok := SplitWireFormat(tc.in)
			if ok != tc.ok || id != tc.id || !bytes.Equal(payload, tc.payload) {
				t.Fatalf("SplitWireFormat(%x) = %d, %x, %v; want %d, %x, %v", tc.in, id, payload, ok, tc.id, tc.payload, tc.ok)
			}
		})
	}
}

func TestSplitMessageIndexes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		path []int
		rest []byte
		err  error
	}{
		{"shorthand", []byte{0, 'p'}, []int{0}, []byte("p"), nil},
		{"one", []byte{2, 4, 'p'}, []int{2}, []byte("p"), nil},  // count 1, index 2 (zig-zag)
		{"nested", []byte{4, 2, 0}, []int{1, 0}, []byte{}, nil}, // count 2: [1, 0]
		{"empty", nil, nil, nil, ErrBadMessageIndexes},
		{"truncated", []byte{4, 2}, nil, nil, ErrBadMessageIndexes},
		{"negative count", []byte{1}, nil, nil, ErrBadMessageIndexes},
		{"negative index", []byte{2, 1}, nil, nil, ErrBadMessageIndexes},
		{"too many", []byte{0xfe, 0x01}, nil, nil, ErrBadMessageIndexes}, // count 127
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, rest, err := SplitMessageIndexes(nil, tc.in)
			if !errors.Is(err, tc.err) || !slices.Equal(path, tc.path) || !bytes.Equal(rest, tc.rest) {
				t.Fatalf("SplitMessageIndexes(%x) = %v, %x, %v; want %v, %x, %v", tc.in, path, rest, err, tc.path, tc.rest, tc.err)
			}
		})
	}
}

// FuzzWireFormat checks that any value either is not framed or splits into
// an id and a payload that re-frame to the same bytes, and that a message
// index prefix, when it parses, is bounded, non-negative and round-trips.
func FuzzWireFormat(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 'x'})
	f.Add([]byte{0, 0, 0, 0, 1, 4, 2, 0, 'x'})
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, payload, ok := SplitWireFormat(b)
		if !ok {
			if len(b) >= wireHeaderLen && b[0] == WireMagic {
				t.Fatalf("%x: framed value reported as not framed", b)
			}
			return
		}
		if again := AppendWireFormat(nil, id, payload); !bytes.Equal(again, b) {
			t.Fatalf("%x: re-framed as %x", b, again)
		}
		path, rest, err := SplitMessageIndexes(nil, payload)
		if err != nil {
			return
		}
		if len(path) == 0 || len(path) > MaxMessageIndexes {
			t.Fatalf("%x: path %v of bad length", payload, path)
		}
		for _, i := range path {
			if i < 0 {
				t.Fatalf("%x: negative index in %v", payload, path)
			}
		}
		// Varints have many spellings (0x80 0x00 is 0), so compare paths.
		re := AppendMessageIndexes(nil, path)
		again, left, err := SplitMessageIndexes(nil, append(re, rest...))
		if err != nil || !slices.Equal(again, path) || !bytes.Equal(left, rest) {
			t.Fatalf("%x: path %v re-encodes as %x, which reads as %v, %v", payload, path, re, again, err)
		}
	})
}
