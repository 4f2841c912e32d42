package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParsePointer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		tokens   []string
		errAt    int // -1: no error
	}{
		{name: "whole document", in: "", errAt: -1},
		{name: "root member named empty", in: "/", tokens: []string{""}, errAt: -1},
		{name: "nested", in: "/user/id", tokens: []string{"user", "id"}, errAt: -1},
		{name: "escapes", in: "/a~1b/c~0d", tokens: []string{"a/b", "c~d"}, errAt: -1},
		{name: "~01 is ~1, not /", in: "/~01", tokens: []string{"~1"}, errAt: -1},
		{name: "empty tokens", in: "//x/", tokens: []string{"", "x", ""}, errAt: -1},
		{name: "no leading slash", in: "user", errAt: 0},
		{name: "bad escape", in: "/a~2", errAt: 2},
		{name: "trailing tilde", in: "/a/~", errAt: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePointer(tc.in)
			if tc.errAt >= 0 {
				var se *SyntaxError
				if !asSyntaxError(err, &se) || se.Offset != tc.errAt {
					t.Fatalf("ParsePointer(%q) = %v, want a syntax error at offset %d", tc.in, err, tc.errAt)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(p.tokens, "|") != strings.Join(tc.tokens, "|") || len(p.tokens) != len(tc.tokens) {
				t.Fatalf("tokens = %q, want %q", p.tokens, tc.tokens)
			}
			if p.String() != tc.in {
				t.Fatalf("String() = %q", p.String())
			}
		})
	}
}

func TestPointerAppendValue(t *testing.T) {
	t.Parallel()
	doc := `{"user":{"id":42,"name":"Zoë","tags":["a","b"],"ok":true,"no":false,"nil":null,"f":-1.5e+3},
	  "a/b":1,"m~n":2,"esc":"a\"b\\c\u00e9\ud83d\ude00","lone":"\ud800x","":"empty name","dup":1,"dup":2,
	  "nested":{"x":{"y":1}},"nested":{"z":2},"arr":[[0,1],[2,[3]]]}`
	tests := []struct {
		ptr, want string
		ok        bool
	}{
		{ptr: "/user/id", want: "42", ok: true},
		{ptr: "/user/name", want: "Zoë", ok: true},
		{ptr: "/user/tags/1", want: "b", ok: true},
		{ptr: "/user/tags/2"},
		{ptr: "/user/tags/-"},
		{ptr: "/user/tags/01"},
		{ptr: "/user/ok", want: "true", ok: true},
		{ptr: "/user/no", want: "false", ok: true},
		{ptr: "/user/nil"},
		{ptr: "/user/f", want: "-1.5e+3", ok: true},
		{ptr: "/user"},
		{ptr: "/user/tags"},
		{ptr: "/a~1b", want: "1", ok: true},
		{ptr: "/m~0n", want: "2", ok: true},
		{ptr: "/esc", want: "a\"b\\cé😀", ok: true},
		{ptr: "/lone", want: "\uFFFDx", ok: true},
		{ptr: "/", want: "empty name", ok: true},
		{ptr: "/dup", want: "2", ok: true},
		{ptr: "/nested/x/y"},
		{ptr: "/nested/z", want: "2", ok: true},
		{ptr: "/arr/1/1/0", want: "3", ok: true},
		{ptr: "/user/id/x"},
		{ptr: "/missing"},
		{ptr: ""},
	}
	for _, tc := range tests {
		t.Run(tc.ptr, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePointer(tc.ptr)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := p.AppendValue([]byte("pre:"), []byte(doc))
			if ok != tc.ok || (ok && string(got) != "pre:"+tc.want) || (!ok && string(got) != "pre:") {
				t.Fatalf("AppendValue = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
			ref, refOK := referenceLookup(&p, []byte(doc))
			if refOK != ok || (ok && ref != tc.want) {
				t.Fatalf("reference = %q, %v", ref, refOK)
			}
		})
	}
}

func TestPointerInvalidDocuments(t *testing.T) {
	t.Parallel()
	p, _ := ParsePointer("/a")
	for _, doc := range []string{``, `{"a":1`, `{"a":1}x`, `{"a":1,}`, `{"a":01}`, `{"a":"\x01"}`, `{"a":1} {}`,
		`{"a":1,"b":[}`, `{"a":"\u12"}`, `{'a':1}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":tru}`, `[` + strings.Repeat("[", maxDepth) + `]`} {
		if v, ok := p.AppendValue(nil, []byte(doc)); ok {
			t.Errorf("AppendValue(%q) = %q, want missing: the document is invalid", doc, v)
		}
	}
	deep := strings.Repeat(`{"a":`, maxDepth-1) + `{"a":"x"}` + strings.Repeat("}", maxDepth-1)
	pp, _ := ParsePointer(strings.Repeat("/a", maxDepth))
	if v, ok := pp.AppendValue(nil, []byte(deep)); !ok || string(v) != "x" {
		t.Errorf("at encoding/json's depth limit: %q, %v", v, ok)
	}
}

// referenceLookup is Pointer.AppendValue by way of encoding/json: decode the
// whole document into interface{} and walk it.
func referenceLookup(p *Pointer, doc []byte) (string, bool) {
	if !json.Valid(doc) {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", false
	}
	for _, tok := range p.tokens {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[tok]; !ok {
				return "", false
			}
		case []any:
			if tok == "" || (tok[0] == '0' && len(tok) > 1) || strings.TrimLeft(tok, "0123456789") != "" {
				return "", false
			}
			i, err := strconv.Atoi(tok)
			if err != nil || i >= len(x) {
				return "", false
			}
			v = x[i]
		default:
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// FuzzPointer holds the scanner to encoding/json: the same validity verdict
// as json.Valid, and the same value as decoding into interface{}.
func FuzzPointer(f *testing.F) {
	f.Add(`/a/0`, []byte(`{"a":[1,2]}`))
	f.Add(`/a`, []byte(`{"a":"x\u00e9\ud800\ud800\udc00","a":"y"}`))
	f.Add(`/a~1b`, []byte(`{"a/b":true}`))
	f.Add(``, []byte(`  -0.5e-7 `))
	f.Add(`/\u00e9`, []byte("{\"\\u00e9\":\"\xff\"}"))
	f.Add(`/x/y`, []byte(`{"x":{"y":null},"x":{"y":[]}}`))
	f.Add(`/`, []byte(`{"":"e"}`))
	f.Fuzz(func(t *testing.T, ptr string, doc []byte) {
		p, err := ParsePointer(ptr)
		if err != nil {
			return
		}
		if got, want := validJSON(doc), json.Valid(doc); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", doc, got, want)
		}
		got, ok := p.AppendValue(nil, doc)
		want, wantOK := referenceLookup(&p, doc)
		if ok != wantOK || string(got) != want {
			t.Fatalf("AppendValue(%q, %q) = %q, %v; encoding/json gives %q, %v", ptr, doc, got, ok, want, wantOK)
		}
	})
}

func asSyntaxError(err error, target **SyntaxError) bool {
	return errors.As(err, target)
}
