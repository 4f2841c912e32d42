package mapping

import (
	"strings"
	"testing"
)

func TestHeaderMatch(t *testing.T) {
	t.Parallel()
	rec := &Record{Headers: []Header{{Key: "region", Value: []byte("us")}, {Key: "region", Value: []byte("eu")}, {Key: "n"}}}
	tests := []struct {
		name string
		m    HeaderMatch
		want bool
	}{
		{name: "equals the last", m: HeaderMatch{Name: "region", Equals: "eu"}, want: true},
		{name: "an earlier value does not count", m: HeaderMatch{Name: "region", Equals: "us"}},
		{name: "present", m: HeaderMatch{Name: "region", Present: true}, want: true},
		{name: "null is present", m: HeaderMatch{Name: "n", Present: true}, want: true},
		{name: "null equals nothing", m: HeaderMatch{Name: "n", Regex: "^$"}},
		{name: "absent", m: HeaderMatch{Name: "x", Present: true}},
		{name: "regex", m: HeaderMatch{Name: "region", Regex: "^e"}, want: true},
		{name: "regex miss", m: HeaderMatch{Name: "region", Regex: "^u"}},
		{name: "case matters", m: HeaderMatch{Name: "Region", Present: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := tc.m.compile()
			if err != nil {
				t.Fatal(err)
			}
			if got := m.match(rec); got != tc.want {
				t.Fatalf("match = %v, want %v", got, tc.want)
			}
		})
	}
	for name, m := range map[string]HeaderMatch{
		"no name": {Equals: "x"}, "no condition": {Name: "a"}, "two conditions": {Name: "a", Equals: "x", Present: true},
		"bad regex": {Name: "a", Regex: "("},
	} {
		if _, err := m.compile(); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	eu := &HeaderMatch{Name: "region", Equals: "eu"}
	tomb := &Record{Topic: "orders"}
	euRec := &Record{Topic: "orders", Value: []byte("v"), Headers: []Header{{Key: "region", Value: []byte("eu")}}}
	usRec := &Record{Topic: "test.orders", Value: []byte("v"), Headers: []Header{{Key: "region", Value: []byte("us")}}}
	tests := []struct {
		name    string
		filters []Filter
		rec     *Record
		reason  string // "" means kept
	}{
		{name: "drop tombstones", filters: []Filter{{Tombstone: true}}, rec: tomb, reason: "tombstone"},
		{name: "keep values", filters: []Filter{{Tombstone: true}}, rec: euRec},
		{name: "keep only tombstones", filters: []Filter{{Tombstone: true, Keep: true}}, rec: euRec, reason: "not tombstone"},
		{name: "negate", filters: []Filter{{Tombstone: true, Negate: true}}, rec: euRec, reason: "not tombstone"},
		{name: "keep and negate cancel", filters: []Filter{{Tombstone: true, Negate: true, Keep: true}}, rec: tomb, reason: "tombstone"},
		{name: "drop by header", filters: []Filter{{Header: eu}}, rec: euRec, reason: "header region = eu"},
		{name: "keep by header", filters: []Filter{{Header: eu, Keep: true}}, rec: usRec, reason: "not header region = eu"},
		{name: "keep by header, kept", filters: []Filter{{Header: eu, Keep: true}}, rec: euRec},
		{name: "drop by topic", filters: []Filter{{Topic: `^test\.`}}, rec: usRec, reason: `topic ~ ^test\.`},
		{name: "topic kept", filters: []Filter{{Topic: `^test\.`}}, rec: euRec},
		{name: "custom reason", filters: []Filter{{Tombstone: true, Reason: "deletes"}}, rec: tomb, reason: "deletes"},
		{name: "first drop wins", filters: []Filter{{Topic: `orders`}, {Tombstone: true}}, rec: tomb, reason: "topic ~ orders"},
		{name: "later filter drops", filters: []Filter{{Topic: `^test`}, {Tombstone: true}}, rec: tomb, reason: "tombstone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs, err := CompileFilters(tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			// Resolving per topic must not change any verdict.
			for _, f := range []*Filters{fs, fs.forTopic(tc.rec.Topic)} {
				reason, drop := f.Check(tc.rec)
				if drop != (tc.reason != "") || reason != tc.reason {
					t.Fatalf("Check = %q, %v; want %q", reason, drop, tc.reason)
				}
			}
		})
	}
}

func TestCompileFiltersErrors(t *testing.T) {
	t.Parallel()
	for name, fs := range map[string][]Filter{
		"no predicate":   {{}},
		"two predicates": {{Tombstone: true, Topic: "x"}},
		"bad topic":      {{Topic: "("}},
		"bad header":     {{Header: &HeaderMatch{Name: "a"}}},
	} {
		if _, err := CompileFilters(fs); err == nil || !strings.Contains(err.Error(), "filter 0") {
			t.Errorf("%s: CompileFilters = %v", name, err)
		}
	}
	if fs, err := CompileFilters(nil); fs != nil || err != nil {
		t.Fatalf("CompileFilters(nil) = %v, %v", fs, err)
	}
	var none *Filters
	if _, drop := none.Check(&Record{}); drop {
		t.Fatal("nil filters dropped a record")
	}
}
