package config

import (
	"slices"
	"strings"
	"time"

	"github.com/ferrylabs/ferry/mapping"
)

// startTimestamp prefixes a kafka.start of a point in time.
const startTimestamp = "timestamp:"

// StartTime returns the time of a kafka.start of the form
// timestamp:RFC3339; ok is false for earliest, latest or anything else.
func (k Kafka) StartTime() (t time.Time, ok bool) {
	s, found := strings.CutPrefix(k.Start, startTimestamp)
	if !found {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// RouteKeyError is a route setting Rule cannot parse: Key is its name within
// the route (format, value, hash_key).
type RouteKeyError struct {
	Key, Value string
	Err        error
}

func (e *RouteKeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *RouteKeyError) Unwrap() error { return e.Err }

// Rule is the mapping rule of a route.
// A setting it cannot parse gives a *RouteKeyError naming the key.
func (r Route) Rule() (mapping.Rule, error) {
	format, err := mapping.ParseFormat(r.Format)
	if err != nil {
		return mapping.Rule{}, &RouteKeyError{Key: "format", Value: r.Format, Err: err}
	}
	value, err := mapping.ParseValueMode(r.Value)
	if err != nil {
		return mapping.Rule{}, &RouteKeyError{Key: "value", Value: r.Value, Err: err}
	}
	hashKey, err := mapping.ParseHashKey(r.HashKey)
	if err != nil {
		return mapping.Rule{}, &RouteKeyError{Key: "hash_key", Value: r.HashKey, Err: err}
	}
	rule := mapping.Rule{HashKey: hashKey, Topics: r.Topics, Regex: r.Regex, Stream: r.Stream, PartitionKey: r.PartitionKey,
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

// UsesDLQ reports whether any policy can send a record to
// delivery.dlq_topic.
func (c Config) UsesDLQ() bool {
	d := c.Delivery
	if d.OnInvalid == OnInvalidDLQ || d.Tombstones == TombstonesDLQ || d.OnMissingStream == OnMissingStreamDLQ {
		return true
	}
	for _, r := range c.Routes {
		if slices.Contains(r.OnMissing, "dlq") {
			return true
		}
	}
	return false
}

// streamIsTemplate reports whether a route's stream is a template rather than
// a name: stream names cannot hold a '$'.
func streamIsTemplate(s string) bool { return strings.Contains(s, "$") }
