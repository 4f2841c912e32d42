package mapping

import (
	"errors"
	"fmt"
)

// ErrNoRoute is returned by Map for a topic that no rule matches.
var ErrNoRoute = errors.New("no route matches topic")

// ErrMissingKey is wrapped by the *MissingKeyError a route returns when none
// of its partition-key sources is present and its on_missing chain ends in
// fail, skip or dlq: the caller branches on the policy.
var ErrMissingKey = errors.New("no partition key")

// ErrInvalidStream is wrapped by the errors for a stream template whose
// expansion is not a Kinesis stream name ([a-zA-Z0-9_.-]{1,128}) or uses a
// header the record lacks. The caller applies its bad-record policy.
var ErrInvalidStream = errors.New("invalid stream name")

// MissingPolicy says what a route does with a record that has no partition
// key: the terminal entry of its on_missing chain.
type MissingPolicy uint8

const (
	// MissingFail stops the connector.
	MissingFail MissingPolicy = iota + 1
	// MissingSkip drops the record (and counts it).
	MissingSkip
	// MissingDLQ sends the record to the dead-letter destination.
	MissingDLQ
)

// String returns the on_missing entry that sets p.
func (p MissingPolicy) String() string {
	switch p {
	case MissingFail:
		return "fail"
	case MissingSkip:
		return "skip"
	case MissingDLQ:
		return "dlq"
	}
	return fmt.Sprintf("MissingPolicy(%d)", uint8(p))
}

// MissingKeyError reports a record without a partition key. Each route builds
// its error once, so the miss path does not allocate; the caller adds the
// record's coordinates when it wraps it.
type MissingKeyError struct {
	// Source is the route's partition_key setting.
	Source string
	// Policy is the terminal on_missing entry.
	Policy MissingPolicy
}

// Error says which source was missing and the policy.
func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("no partition key: %s is missing and so is every on_missing fallback (on_missing ends in %s)",
		e.Source, e.Policy)
}

// Unwrap makes errors.Is(err, ErrMissingKey) hold.
func (e *MissingKeyError) Unwrap() error { return ErrMissingKey }

// SyntaxError reports a template, JSON Pointer or partition-key setting that
// does not parse. Offset is the 0-based byte offset of the problem in Input.
type SyntaxError struct {
	Input  string
	Offset int
	Msg    string
}

// Error quotes the input and names the offset.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%q: %s at offset %d", e.Input, e.Msg, e.Offset)
}

func syntaxErr(input string, offset int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Input: input, Offset: offset, Msg: fmt.Sprintf(format, args...)}
}
