package mapping

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestParseTemplateErrors(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^(?P<env>\w+)\.(\w+)$`)
	tests := []struct {
		name, in string
		re       *regexp.Regexp
		key      bool
		offset   int
		msg      string
	}{
		{name: "unterminated", in: "s-${topic", offset: 2, msg: "unterminated ${"},
		{name: "empty variable", in: "s-${}", offset: 2, msg: "empty variable name"},
		{name: "empty header", in: "${header:}", offset: 0, msg: "empty header name"},
		{name: "unknown variable", in: "a${nope}", offset: 1, msg: "unknown variable ${nope}"},
		{name: "unknown group name", in: "a${nope}", re: re, offset: 1, msg: "no group of that name"},
		{name: "group without regex", in: "x-$1", offset: 2, msg: "needs a route matched by regex"},
		{name: "braced group without regex", in: "x-${1}", offset: 2, msg: "needs a route matched by regex"},
		{name: "named group without regex", in: "x-${env}", offset: 2, msg: "capture groups need a route matched by regex"},
		{name: "group out of range", in: "x-$3", re: re, offset: 2, msg: "capture group 3, but the route's regex has 2"},
		{name: "greedy digits", in: "x-$12", re: re, offset: 2, msg: "capture group 12"},
		{name: "lone dollar at end", in: "x$", offset: 1, msg: "lone $"},
		{name: "dollar before letter", in: "x$y", offset: 1, msg: "$ must start"},
		{name: "bad stream character", in: "a/b", offset: 1, msg: `'/' can't be part of a stream name`},
		{name: "literal dollar in a stream", in: "a$$", offset: 1, msg: `'$' can't be part of a stream name`},
		{name: "key variable in a stream", in: "s-${key}", offset: 2, msg: "only allowed in a partition-key template"},
		{name: "json in a stream", in: "s-${json:/a}", offset: 2, msg: "only allowed in a partition-key template"},
		{name: "bad pointer", in: "${json:a}", key: true, offset: 0, msg: "bad JSON Pointer"},
		{name: "key template without variables", in: "$$", key: true, offset: 0, msg: "needs a variable"},
		{name: "empty stream", in: "", offset: 0, msg: "empty stream name"},
		{name: "fixed text too long", in: strings.Repeat("a", 129) + "${topic}", offset: 0, msg: "over 128 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseTemplate(tc.in, tc.re, tc.key)
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset != tc.offset || !strings.Contains(se.Msg, tc.msg) {
				t.Fatalf("parse(%q) = %v, want %q at offset %d", tc.in, err, tc.msg, tc.offset)
			}
		})
	}
}

func TestTemplateExpand(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^(?P<env>[a-z]+)\.(\w+)(-x)?$`)
	rec := &Record{Topic: "prod.orders", Headers: []Header{
		{Key: "region", Value: []byte("eu")}, {Key: "region", Value: []byte("us")}, {Key: "empty", Value: []byte{}},
		{Key: "null"}, {Key: "bad", Value: []byte("a b")},
	}}
	tests := []struct {
		name, tmpl, want string
		re               *regexp.Regexp
		err              string
	}{
		{name: "static", tmpl: "orders-stream", want: "orders-stream"},
		{name: "topic", tmpl: "k-${topic}", want: "k-prod.orders"},
		{name: "groups", tmpl: "$2-$1", re: re, want: "orders-prod"},
		{name: "braced groups", tmpl: "${2}1-${0}", re: re, want: "orders1-prod.orders"},
		{name: "named group", tmpl: "${env}_all", re: re, want: "prod_all"},
		{name: "unmatched group is empty", tmpl: "${2}$3", re: re, want: "orders"},
		{name: "last header wins", tmpl: "${env}-${header:region}", re: re, want: "prod-us"},
		{name: "missing header", tmpl: "s-${header:tenant}", err: `record has no header "tenant"`},
		{name: "empty header is missing", tmpl: "s-${header:empty}", err: `record has no header "empty"`},
		{name: "null header is missing", tmpl: "s-${header:null}", err: `record has no header "null"`},
		{name: "invalid result", tmpl: "s-${header:bad}", err: `expands to "s-a b"`},
		{name: "too long", tmpl: strings.Repeat("a", 120) + "${topic}", err: "expands to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tm, err := ParseTemplate(tc.tmpl, tc.re)
			if err != nil {
				t.Fatal(err)
			}
			var match []int
			if tc.re != nil {
				match = tc.re.FindStringSubmatchIndex(rec.Topic)
			}
			got, err := tm.Expand([]byte("pre:"), rec, match)
			if tc.err != "" {
				if !errors.Is(err, ErrInvalidStream) || !strings.Contains(err.Error(), tc.err) || string(got) != "pre:" {
					t.Fatalf("Expand = %q, %v; want ErrInvalidStream with %q and dst unchanged", got, err, tc.err)
				}
				return
			}
			if err != nil || string(got) != "pre:"+tc.want {
				t.Fatalf("Expand = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestKeyTemplateExpand(t *testing.T) {
	t.Parallel()
	rec := &Record{Topic: "t", Partition: 7, Key: []byte("k1"), Value: []byte(`{"user":{"id":9}}`),
		Headers: []Header{{Key: "tenant", Value: []byte("acme")}}}
	tests := []struct {
		tmpl, want string
		missing    bool
	}{
		{tmpl: "${topic}:${key}", want: "t:k1"},
		{tmpl: "${header:tenant}-${json:/user/id}", want: "acme-9"},
		{tmpl: "$$${partition}", want: "$7"},
		{tmpl: "${json:/user/name}", missing: true},
		{tmpl: "${key}/${header:none}", missing: true},
	}
	for _, tc := range tests {
		tm, err := parseTemplate(tc.tmpl, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		got, missing := tm.expand(nil, rec, nil)
		if (missing >= 0) != tc.missing || (!tc.missing && string(got) != tc.want) {
			t.Errorf("%s: expand = %q, missing %d", tc.tmpl, got, missing)
		}
	}
}

func TestTemplateStaticAndPerTopic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tmpl             string
		static, perTopic bool
	}{
		{"s", true, true},
		{"s-${topic}", false, true},
		{"s-${header:h}", false, false},
	} {
		tm, err := ParseTemplate(tc.tmpl, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := tm.Static(); ok != tc.static || tm.PerTopic() != tc.perTopic || tm.String() != tc.tmpl {
			t.Errorf("%s: static %v, per topic %v", tc.tmpl, ok, tm.PerTopic())
		}
	}
}

func TestExpandStaticDoesNotAllocate(t *testing.T) {
	tm, _ := ParseTemplate("orders-stream", nil)
	rec := &Record{Topic: "orders"}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := tm.Expand(buf[:0], rec, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per Expand, want 0", n)
	}
}

func TestValidStreamName(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"a": true, "A-z_0.9": true, strings.Repeat("x", 128): true,
		"": false, strings.Repeat("x", 129): false, "a b": false, "é": false, "a/b": false, "a:b": false,
	} {
		if ValidStreamName(s) != want || ValidStreamName([]byte(s)) != want {
			t.Errorf("ValidStreamName(%q) != %v", s, want)
		}
	}
}

// FuzzParseTemplate parses any text as a stream and as a key template:
// errors are SyntaxErrors within the input, and whatever parses expands
// to a valid stream name or ErrInvalidStream.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"s", "${topic}", "$1-${2}", "${env}.x", "${header:h}", "${", "$", "$$", "${}", "${json:/a}",
		"${key}:${partition}", "$0", "${99999999999999999999}"} {
		f.Add(s, "prod.orders", "h-v")
	}
	re := regexp.MustCompile(`^(?P<env>[a-z]*)\.?(.*)$`)
	f.Fuzz(func(t *testing.T, s, topic, header string) {
		for _, key := range []bool{false, true} {
			for _, r := range []*regexp.Regexp{nil, re} {
				tm, err := parseTemplate(s, r, key)
				if err != nil {
					var se *SyntaxError
					if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(s) || se.Input != s {
						t.Fatalf("parse(%q) = %v, want a *SyntaxError within the input", s, err)
					}
					continue
				}
				if tm.String() != s {
					t.Fatalf("String() = %q, want %q", tm.String(), s)
				}
				rec := &Record{Topic: topic, Key: []byte(header), Value: []byte(header),
					Headers: []Header{{Key: "h", Value: []byte(header)}}}
				match := re.FindStringSubmatchIndex(topic)
				if key {
					tm.expand(nil, rec, match)
					continue
				}
				got, err := tm.Expand(nil, rec, match)
				if err == nil && !ValidStreamName(got) {
					t.Fatalf("Expand(%q) = %q: not a stream name", s, got)
				}
				if err != nil && !errors.Is(err, ErrInvalidStream) {
					t.Fatalf("Expand(%q): %v is not ErrInvalidStream", s, err)
				}
				if st, ok := tm.Static(); ok && (err != nil || string(got) != st) {
					t.Fatalf("static %q expanded to %q, %v", st, got, err)
				}
			}
		}
	})
}
