package config

import (
	"github.com/ferrylabs/ferry/mapping"
)

// Rule is the mapping rule of a route.
func (r Route) Rule() (mapping.Rule, error) {
	format, err := mapping.ParseFormat(r.Format)
	if err != nil {
		return mapping.Rule{}, err
	}
	value, err := mapping.ParseValueMode(r.Value)
	if err != nil {
		return mapping.Rule{}, err
	}
	rule := mapping.Rule{Topics: r.Topics, Regex: r.Regex, Stream: r.Stream, PartitionKey: r.PartitionKey,
		OnMissing: r.OnMissing, Payload: mapping.Payload{Format: format, Value: value}}
	if r.When != nil && r.When.Header != nil {
		rule.When = r.When.Header.match()
	}
	for _, f := range r.Filters {
		mf := mapping.Filter{Tombstone: f.Tombstone, Topic: f.Topic, Negate: f.Negate, Keep: f.Keep, Reason: f.Reason}
		if f.Header != nil {
			mf.Header = f.Header.match()
		}
		rule.Filters = append(rule.Filters, mf)
	}
	return rule, nil
}

func (h *HeaderCondition) match() *mapping.HeaderMatch {
	return &mapping.HeaderMatch{Name: h.Name, Equals: h.Equals, Present: h.Present, Regex: h.Regex}
}
