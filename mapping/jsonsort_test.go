package mapping

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestAppendSortedJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"scalar", ` 12.50e3 `, `12.50e3`},
		{"string kept byte for byte", `"caf\u00e9 \"q\" <&>"`, `"caf\u00e9 \"q\" <&>"`},
		{"object sorted", `{"b":1, "a" : 2,"c":null}`, `{"a":2,"b":1,"c":null}`},
		{"nested", `{"z":{"y":[{"b":true,"a":false}, [] ,{}],"x":"}"},"a":[1, 2]}`, `{"a":[1,2],"z":{"x":"}","y":[{"a":false,"b":true},[],{}]}}`},
		{"keys with escapes", `{"b\"":1,"a\\":2}`, `{"a\\":2,"b\"":1}`},
		{"duplicate keys keep their order", `{"a":2,"a":1}`, `{"a":2,"a":1}`},
		{"long number exact", `{"n":4611686018427387905}`, `{"n":4611686018427387905}`},
		{"empty object", ` { } `, `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := AppendSortedJSON([]byte("x"), []byte(tc.in))
			if err != nil || string(got) != "x"+tc.want {
				t.Fatalf("AppendSortedJSON(%s) = %s, %v; want x%s", tc.in, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{``, `{`, `{"a":1}x`, `[1,]`, strings.Repeat("[", maxSortDepth+2) + strings.Repeat("]", maxSortDepth+2)} {
		if got, err := AppendSortedJSON([]byte("x"), []byte(bad)); !errors.Is(err, ErrNotJSON) || string(got) != "x" {
			t.Errorf("AppendSortedJSON(%.20q) = %q, %v; want ErrNotJSON and dst unchanged", bad, got, err)
		}
	}
}

// FuzzSortedJSON checks that the output of any valid JSON is valid JSON of
// the same document (as encoding/json reads it, numbers kept as written),
// sorted: sorting it again changes nothing.
func FuzzSortedJSON(f *testing.F) {
	f.Add([]byte(`{"b":[1,{"d":"x","c":null}],"a":true}`))
	f.Add([]byte(`"\u0000\"\\"`))
	f.Add([]byte(` [ -0.5e-3 , {} ] `))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := AppendSortedJSON(nil, in)
		if err != nil {
			// Only invalid JSON, or JSON nested past maxSortDepth, is refused.
			if json.Valid(in) && nesting(in) <= maxSortDepth {
				t.Fatalf("%q refused: %v", in, err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%q gave invalid %q", in, out)
		}
		if !reflect.DeepEqual(decodeNumbers(t, in), decodeNumbers(t, out)) {
			t.Fatalf("%q became a different document %q", in, out)
		}
		again, err := AppendSortedJSON(nil, out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("%q sorted twice: %q then %q (%v)", in, out, again, err)
		}
	})
}

// nesting is the deepest nesting of arrays and objects in the JSON b.
func nesting(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return v
}
