package mapping

import (
	"errors"
	"fmt"
	"regexp"
)

// HeaderMatch is a predicate on one header, for a route's when and for
// filters. Set exactly one of Equals, Present and Regex. Like ${header:NAME},
// it reads the last header named Name (Kafka's Headers.lastHeader: a later
// header overrides an earlier one); a null value is present but equals and
// matches nothing. There is no "absent": put a route with Present first and
// the fallback route after it, or negate a filter.
type HeaderMatch struct {
	Name string
	// Equals matches a value of exactly these bytes. An empty value is
	// matched by Regex "^$" instead, so that a forgotten Equals is an error
	// rather than a test for "".
	Equals string
	// Present matches any value, null included.
	Present bool
	// Regex matches a value that contains a match (anchor it with ^...$).
	Regex string
}

type headerMatch struct {
	name    string
	equals  string
	present bool
	re      *regexp.Regexp
	// desc is the condition in words, for drop reasons.
	desc string
}

func (h *HeaderMatch) compile() (*headerMatch, error) {
	if h.Name == "" {
		return nil, errors.New("header match: empty name")
	}
	set := 0
	for _, b := range []bool{h.Equals != "", h.Present, h.Regex != ""} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("header match %q: set exactly one of equals, present and regex", h.Name)
	}
	m := &headerMatch{name: h.Name, equals: h.Equals, present: h.Present}
	switch {
	case h.Present:
		m.desc = fmt.Sprintf("header %s present", h.Name)
	case h.Regex != "":
		re, err := regexp.Compile(h.Regex)
		if err != nil {
			return nil, fmt.Errorf("header match %q: %w", h.Name, err)
		}
		m.re = re
		m.desc = fmt.Sprintf("header %s ~ %s", h.Name, h.Regex)
	default:
		m.desc = fmt.Sprintf("header %s = %s", h.Name, h.Equals)
	}
	return m, nil
}

func (m *headerMatch) match(rec *Record) bool {
	v, ok := lastHeader(rec.Headers, m.name)
	switch {
	case !ok:
		return false
	case m.present:
		return true
	case v == nil:
		return false
	case m.re != nil:
		return m.re.Match(v)
	}
	return string(v) == m.equals
}

// lastHeader returns the value of the last header named name.
func lastHeader(hs []Header, name string) ([]byte, bool) {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == name {
			return hs[i].Value, true
		}
	}
	return nil, false
}

// Filter drops records. By default it drops the records its predicate
// matches; Negate inverts the predicate and Keep the action (keep only the
// matching records), as Kafka Connect's Filter transform and predicates do.
// Set exactly one predicate: Tombstone, Header or Topic.
type Filter struct {
	// Tombstone matches records with a null value.
	Tombstone bool
	// Header matches by a header.
	Header *HeaderMatch
	// Topic is a regex matching topics.
	Topic  string
	Negate bool
	Keep   bool
	// Reason is reported for the records the filter drops, e.g. as a metric
	// label; by default it says the condition ("tombstone", "not header
	// region = eu"). Either way it is fixed per filter, so it keeps a
	// label's cardinality low.
	Reason string
}

type filterKind uint8

const (
	filterTombstone filterKind = iota
	filterHeader
	filterTopic
	filterAlways // a topic filter resolved for a topic that it drops
)

type filter struct {
	kind   filterKind
	header *headerMatch
	topic  *regexp.Regexp
	// dropOn is the predicate's value at which the record is dropped.
	dropOn bool
	reason string
}

// Filters is a compiled list of filters, applied in order: the first that
// drops a record gives the reason. The nil *Filters keeps everything.
type Filters struct {
	list []filter
	// byTopic says a filter reads the topic, so the list can be resolved
	// per topic (forTopic) and the regex run once per topic.
	byTopic bool
}

// CompileFilters compiles filters; it returns nil for none.
func CompileFilters(fs []Filter) (*Filters, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	out := &Filters{}
	for i := range fs {
		f := &fs[i]
		set := 0
		c := filter{dropOn: f.Negate == f.Keep} // drop when pred != negate != keep
		var desc string
		if f.Tombstone {
			set++
			c.kind, desc = filterTombstone, "tombstone"
		}
		if f.Header != nil {
			set++
			m, err := f.Header.compile()
			if err != nil {
				return nil, fmt.Errorf("filter %d: %w", i, err)
			}
			c.kind, c.header, desc = filterHeader, m, m.desc
		}
		if f.Topic != "" {
			set++
			re, err := regexp.Compile(f.Topic)
			if err != nil {
				return nil, fmt.Errorf("filter %d: topic: %w", i, err)
			}
			c.kind, c.topic, desc = filterTopic, re, "topic ~ "+f.Topic
			out.byTopic = true
		}
		if set != 1 {
			return nil, fmt.Errorf("filter %d: set exactly one of tombstone, header and topic", i)
		}
		c.reason = f.Reason
		if c.reason == "" {
			c.reason = desc
			if !c.dropOn {
				c.reason = "not " + desc
			}
		}
		out.list = append(out.list, c)
	}
	return out, nil
}

// Check reports whether the filters drop rec, and why.
func (fs *Filters) Check(rec *Record) (reason string, drop bool) {
	if fs == nil {
		return "", false
	}
	for i := range fs.list {
		f := &fs.list[i]
		var pred bool
		switch f.kind {
		case filterTombstone:
			pred = rec.Value == nil
		case filterHeader:
			pred = f.header.match(rec)
		case filterTopic:
			pred = f.topic.MatchString(rec.Topic)
		case filterAlways:
			pred = f.dropOn
		}
		if pred == f.dropOn {
			return f.reason, true
		}
	}
	return "", false
}

// forTopic returns the filters as they apply to the records of one topic:
// topic filters are decided once, so Check runs no regex per record.
func (fs *Filters) forTopic(topic string) *Filters {
	if fs == nil || !fs.byTopic {
		return fs
	}
	out := &Filters{}
	for _, f := range fs.list {
		if f.kind != filterTopic {
			out.list = append(out.list, f)
			continue
		}
		if f.topic.MatchString(topic) == f.dropOn {
			// Everything that reaches this filter is dropped: later
			// filters never run.
			out.list = append(out.list, filter{kind: filterAlways, dropOn: true, reason: f.reason})
			break
		}
	}
	if len(out.list) == 0 {
		return nil
	}
	return out
}
