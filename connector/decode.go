package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/mapping"
)

// Decode error reasons: the reason label of ferry_decode_errors_total and
// the start of the ferry.error.message header of a dead-lettered record.
const (
	// reasonUnknownSchema: the registry has no schema with the value's id.
	reasonUnknownSchema = "unknown_schema"
	// reasonUnsupportedSchema: the registry's schema is one ferry cannot
	// decode with (a type it does not know, references it cannot resolve,
	// a schema its library rejects).
	reasonUnsupportedSchema = "unsupported_schema"
	// reasonCorrupt: the payload does not decode with its schema.
	reasonCorrupt = "corrupt_payload"
)

// errClassDecode is the ferry.error.class of a dead-lettered record whose
// value could not be decoded.
const errClassDecode = "decode_failed"

// registryRequestTimeout bounds one registry request; decode.registry.timeout
// bounds them all, retries included.
const registryRequestTimeout = 10 * time.Second

// schemaRegistry is the part of *sr.Client the decoder uses.
type schemaRegistry interface {
	SchemaByID(ctx context.Context, id int) (sr.Schema, error)
	SchemaByVersion(ctx context.Context, subject string, version int) (sr.SubjectSchema, error)
}

// maxImports bounds the schemas a schema may reference, transitively.
const maxImports = 64

// decodeError is a value that cannot be decoded. Its record follows
// delivery.on_invalid; nothing about it is retried.
type decodeError struct {
	reason string
	err    error
}

func (e *decodeError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

func badValue(reason, format string, args ...any) *decodeError {
	return &decodeError{reason: reason, err: fmt.Errorf(format, args...)}
}

// decoder turns Confluent-framed values into JSON. Only the poll loop uses
// it (and Preview its own), so its cache and scratch buffers take no lock.
//
// Schemas are fetched by prefetch, before a poll's records are dispatched,
// so decode does no I/O: the poll loop is the one place that may wait for
// the registry, with its context, and a record is never half dispatched.
type decoder struct {
	reg     schemaRegistry
	url     string
	timeout time.Duration
	log     *slog.Logger
	m       *decodeMetrics
	// schemas caches every id seen, for the life of the process: ids are
	// immutable in a registry, and a topic uses few of them. An id the
	// registry does not know is cached too (its schema's err says so), so
	// a flood of such records asks the registry once.
	schemas map[uint32]*valueSchema
	// buf, out, text and idx are scratch: the decoded JSON of protobuf
	// and of Avro (the mapper copies it), goavro's JSON before its keys
	// are sorted, protobuf message indexes.
	buf  bytes.Buffer
	out  []byte
	text []byte
	idx  []int
	// backoff is the wait before retry attempt n (from 0) of a failing
	// registry request.
	backoff func(n int) time.Duration
}

// valueSchema is one registry schema, ready to decode with, or err saying
// why values framed with its id cannot be decoded.
type valueSchema struct {
	avro  *goavro.Codec
	proto *protoSchema
	err   *decodeError
}

// newDecoder returns nil when decode.value is none.
func newDecoder(cfg config.Decode, log *slog.Logger, m *decodeMetrics) (*decoder, error) {
	if cfg.Value != config.DecodeAuto {
		return nil, nil // no decoder: the default
	}
	cl, err := registryClient(cfg.Registry)
	if err != nil {
		return nil, err
	}
	return newDecoderWith(cl, cfg.Registry.URL, cfg.Registry.Timeout, log, m), nil
}

func registryClient(cfg config.Registry) (*sr.Client, error) {
	opts := []sr.ClientOpt{
		sr.URLs(cfg.URL),
		sr.UserAgent("ferry"),
		sr.HTTPClient(&http.Client{Timeout: registryRequestTimeout}),
	}
	if a := cfg.BasicAuth; a.Username != "" {
		opts = append(opts, sr.BasicAuth(a.Username, a.Password.Reveal()))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry client: %w", err)
	}
	return cl, nil
}

// Bounds on goavro's decoding, which are package variables. goavro sizes
// an array's backing slice by the block count a value claims before it
// reads an item, and its default bound (2^31-1 items, 32 GiB of slice) lets
// one corrupt record exhaust memory. A legitimate block of 4Mi items needs
// a multi-megabyte record (an empty item, null, is the only one of 0 bytes);
// a longer array is still decoded, in several blocks.
const (
	avroMaxBlockCount = 1 << 22
	avroMaxBlockSize  = 64 << 20
)

var avroLimits sync.Once

func newDecoderWith(reg schemaRegistry, url string, timeout time.Duration, log *slog.Logger, m *decodeMetrics) *decoder {
	avroLimits.Do(func() {
		goavro.MaxBlockCount, goavro.MaxBlockSize = avroMaxBlockCount, avroMaxBlockSize
	})
	if m == nil {
		m = newDecodeMetrics(nil)
	}
	return &decoder{
		reg: reg, url: url, timeout: timeout, log: log, m: m,
		schemas: make(map[uint32]*valueSchema),
		backoff: func(n int) time.Duration { return min(200*time.Millisecond<<min(n, 5), 5*time.Second) },
	}
}

// RegistryTypes asks the registry of cfg which schema types it supports: a
// request that needs its URL and credentials right, for ferry check.
func RegistryTypes(ctx context.Context, cfg config.Decode) ([]string, error) {
	cl, err := registryClient(cfg.Registry)
	if err != nil {
		return nil, err
	}
	types, err := cl.SupportedTypes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list schema types: %w", err)
	}
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = t.String()
	}
	return out, nil
}

// prefetch fetches the schema of every framed value in fetches that is not
// cached yet. It returns a fatal error when the registry keeps failing for
// decode.registry.timeout, and ctx's error when ctx ends first.
func (d *decoder) prefetch(ctx context.Context, fetches kgo.Fetches) error {
	var err error
	fetches.EachRecord(func(r *kgo.Record) {
		if err == nil && !r.Attrs.IsControl() { // a transaction marker's value starts with byte 0 too
			err = d.prefetchValue(ctx, r.Value)
		}
	})
	return err
}

func (d *decoder) prefetchValue(ctx context.Context, v []byte) error {
	id, _, ok := mapping.SplitWireFormat(v)
	if !ok {
		return nil
	}
	if _, ok := d.schemas[id]; ok {
		return nil
	}
	return d.resolve(ctx, id)
}

// resolve fetches schema id into the cache. Three outcomes are final for
// the id: the registry answers it and its references (cached ready, or
// unusable), it answers 404 with error code 40403, "schema not found"
// (cached unknown), or it has no subject version that a reference names
// (cached unusable). Anything
// else (refused connections, timeouts, 5xx, 401, a 404 without that code,
// as a wrong URL path gives) is the registry failing, not the record: it is
// retried with backoff until decode.registry.timeout, then stops ferry,
// which resumes from its last commit once restarted.
func (d *decoder) resolve(ctx context.Context, id uint32) error {
	deadline := time.Now().Add(d.timeout)
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithDeadline(ctx, deadline)
		s, imports, err := d.fetch(actx, id)
		cancel()
		var bad *decodeError
		if errors.As(err, &bad) {
			d.m.requests.WithLabelValues("ok").Inc()
			d.log.Warn("schema registry schema cannot be used: its values follow delivery.on_invalid",
				"schema_id", id, "error", bad.Error())
			d.schemas[id] = &valueSchema{err: bad}
			return nil
		}
		if err == nil {
			d.m.requests.WithLabelValues("ok").Inc()
			d.schemas[id] = compileSchema(id, s, imports)
			if e := d.schemas[id].err; e != nil {
				d.log.Warn("schema registry schema cannot be used: its values follow delivery.on_invalid",
					"schema_id", id, "error", e.Error())
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if notFound(err) {
			d.m.requests.WithLabelValues("not_found").Inc()
			d.log.Warn("schema registry has no schema with this id: its values follow delivery.on_invalid", "schema_id", id)
			d.schemas[id] = &valueSchema{err: badValue(reasonUnknownSchema, "schema id %d is not in the registry", id)}
			return nil
		}
		d.m.requests.WithLabelValues("error").Inc()
		wait := d.backoff(attempt)
		if !time.Now().Add(wait).Before(deadline) {
			return fatalf("schema registry %s: fetching schema id %d failed for %s (decode.registry.timeout): %w",
				d.url, id, d.timeout, err)
		}
		d.log.Warn("schema registry request failed; retrying", "schema_id", id, "attempt", attempt+1,
			"retry_in", wait.String(), "error", err.Error())
		if !sleepCtx(ctx, wait) {
			return ctx.Err()
		}
	}
}

// fetch gets schema id and the text of every schema it references
// (transitively), by reference name: for protobuf the import path, for
// Avro the full name of the type the referenced schema defines. A
// reference the registry does not have makes the schema unusable: the
// error is then a *decodeError.
func (d *decoder) fetch(ctx context.Context, id uint32) (sr.Schema, map[string]string, error) {
	s, err := d.reg.SchemaByID(ctx, int(id))
	if err != nil || s.Type == sr.TypeJSON || len(s.References) == 0 {
		return s, nil, err
	}
	imports := map[string]string{}
	todo := slices.Clone(s.References)
	for len(todo) > 0 {
		ref := todo[0]
		todo = todo[1:]
		if _, ok := imports[ref.Name]; ok || s.Type == sr.TypeProtobuf && wellKnownProto(ref.Name) {
			continue
		}
		if len(imports) == maxImports {
			return s, nil, badValue(reasonUnsupportedSchema, "schema id %d references more than %d schemas", id, maxImports)
		}
		rs, err := d.reg.SchemaByVersion(ctx, ref.Subject, ref.Version)
		if refNotFound(err) {
			return s, nil, badValue(reasonUnsupportedSchema, "schema id %d references %q as subject %s version %d, which the registry does not have",
				id, ref.Name, ref.Subject, ref.Version)
		}
		if err != nil {
			return s, nil, fmt.Errorf("reference %q of schema id %d (subject %s version %d): %w", ref.Name, id, ref.Subject, ref.Version, err)
		}
		imports[ref.Name] = rs.Schema.Schema
		todo = append(todo, rs.References...)
	}
	return s, imports, nil
}

// refNotFound reports a registry's "subject not found", "version not found"
// or "schema not found" (404 with error code 40401, 40402 or 40403).
func refNotFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound && re.ErrorCode >= 40401 && re.ErrorCode <= 40403
}

// notFound reports a registry's "schema not found" (HTTP 404, error code
// 40403). A bare 404 is a wrong URL (a missing /apis/ccompat/v7, say), and
// taking it for an unknown id would send every record to on_invalid.
func notFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound && re.ErrorCode == 40403
}

// compileSchema readies s for decoding, with imports the text of the
// schemas it references (see fetch); a schema ferry cannot use comes back
// with err set, so each of its values follows delivery.on_invalid.
func compileSchema(id uint32, s sr.Schema, imports map[string]string) *valueSchema {
	vs := &valueSchema{}
	switch s.Type {
	case sr.TypeAvro:
		text := s.Schema
		if len(s.References) > 0 {
			for _, ref := range s.References {
				if _, ok := imports[ref.Name]; !ok {
					vs.err = badValue(reasonUnsupportedSchema, "avro schema id %d: reference %q (subject %s version %d) was not fetched",
						id, ref.Name, ref.Subject, ref.Version)
					return vs
				}
			}
			var err error
			if text, err = inlineAvroRefs(text, imports); err != nil {
				vs.err = badValue(reasonUnsupportedSchema, "avro schema id %d: %w", id, err)
				return vs
			}
		}
		// Standard JSON: a union is its value alone, not {"type": value},
		// so json: pointers reach a nullable field as /field.
		codec, err := goavro.NewCodecForStandardJSONFull(text)
		if err != nil {
			vs.err = badValue(reasonUnsupportedSchema, "avro schema id %d: %w", id, err)
			return vs
		}
		vs.avro = codec
	case sr.TypeJSON:
		// The payload is the JSON document itself.
	case sr.TypeProtobuf:
		ps, err := compileProto(s, imports)
		if err != nil {
			vs.err = badValue(reasonUnsupportedSchema, "protobuf schema id %d: %w", id, err)
			return vs
		}
		vs.proto = ps
	default:
		vs.err = badValue(reasonUnsupportedSchema, "schema id %d has type %s, which ferry does not decode", id, s.Type)
	}
	return vs
}

// decode returns v decoded to JSON, or v itself when it is not framed. The
// result may alias v or the decoder's scratch buffer, valid until the next
// call: the mapper copies what it keeps. The value's schema must have been
// prefetched; an error is a *decodeError.
func (d *decoder) decode(v []byte) ([]byte, error) {
	id, payload, ok := mapping.SplitWireFormat(v)
	if !ok {
		return v, nil
	}
	s := d.schemas[id]
	switch {
	case s == nil:
		return nil, badValue(reasonUnknownSchema, "schema id %d was not fetched", id) // prefetch missed it: a bug
	case s.err != nil:
		return nil, s.err
	case s.avro != nil:
		return d.decodeAvro(id, s.avro, payload)
	case s.proto != nil:
		return d.decodeProto(id, s.proto, payload)
	default: // JSON Schema
		if !json.Valid(payload) {
			return nil, badValue(reasonCorrupt, "schema id %d is a JSON Schema, and the payload is not JSON", id)
		}
		return payload, nil
	}
}

// decodeAvro decodes an Avro binary payload to goavro's standard JSON
// (records as objects, unions as their bare value, enums as strings,
// bytes and fixed as strings of code points U+0000..U+00FF, logical types
// as their underlying type: timestamp-millis a number of milliseconds,
// date a number of days, decimal its bytes), then sorts every object's
// keys: goavro writes a record's fields in map order, and the same record
// must give the same bytes each time it is delivered.
func (d *decoder) decodeAvro(id uint32, codec *goavro.Codec, payload []byte) ([]byte, error) {
	native, rest, err := codec.NativeFromBinary(payload)
	if err != nil {
		return nil, badValue(reasonCorrupt, "avro payload does not match schema id %d: %w", id, err)
	}
	if len(rest) > 0 {
		return nil, badValue(reasonCorrupt, "avro payload has %d bytes past the end of schema id %d's record", len(rest), id)
	}
	d.text, err = codec.TextualFromNative(d.text[:0], native)
	if err != nil {
		return nil, badValue(reasonCorrupt, "avro payload of schema id %d has no JSON form: %w", id, err)
	}
	if d.out, err = mapping.AppendSortedJSON(d.out[:0], d.text); err != nil {
		return nil, badValue(reasonCorrupt, "avro payload of schema id %d has no JSON form: %w", id, err) // NaN, say
	}
	return d.out, nil
}

// decodeRecord decodes the value of r (already in c.rec) for the mapper. It
// reports done when the record was handled instead: a value that cannot be
// decoded follows delivery.on_invalid.
func (c *Connector) decodeRecord(p *partition, r *kgo.Record) (done bool, err error) {
	v, err := c.dec.decode(r.Value)
	if err == nil {
		c.rec.Value = v
		return false, nil
	}
	reason := reasonCorrupt
	var de *decodeError
	if errors.As(err, &de) {
		reason = de.reason
	}
	c.dec.m.errors.WithLabelValues(r.Topic, reason).Inc()
	if c.cfg.Delivery.OnInvalid == config.OnInvalidFail {
		// Stop before tracking: nothing of it is held.
		return true, c.onInvalid(r, nil, errClassDecode, "decoding its value: "+err.Error())
	}
	e, err2 := c.trackBare(p, r)
	if err2 != nil {
		return true, err2
	}
	return true, c.onInvalid(r, e, errClassDecode, err.Error())
}

// VerdictUndecodable is the preview verdict of a record whose value cannot
// be decoded with its registry schema.
const VerdictUndecodable = "undecodable"

// previewDecoded is previewOne on the decoded value (dec nil: no decoding).
func previewDecoded(cfg config.Config, dec *decoder, mapper *mapping.Mapper, stream func(string) *previewStream, r *kgo.Record) PreviewRecord {
	if dec == nil {
		return previewOne(cfg, mapper, stream, r)
	}
	v, err := dec.decode(r.Value)
	if err != nil {
		return PreviewRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Verdict: VerdictUndecodable,
			Reason: fmt.Sprintf("%v (delivery.on_invalid: %s)", err, cfg.Delivery.OnInvalid)}
	}
	decoded := *r
	decoded.Value = v
	return previewOne(cfg, mapper, stream, &decoded)
}

// decodeMetrics are the decoder's counters, registered with the rest.
type decodeMetrics struct {
	errors   *prometheus.CounterVec
	requests *prometheus.CounterVec
}

// newDecodeMetrics registers with reg; nil leaves them unregistered.
func newDecodeMetrics(reg prometheus.Registerer) *decodeMetrics {
	m := &decodeMetrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_decode_errors_total",
			Help: "Records whose value could not be decoded with its registry schema (they follow delivery.on_invalid), by reason: unknown_schema, unsupported_schema, corrupt_payload.",
		}, []string{"topic", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_schema_registry_requests_total",
			Help: "Schema fetches from the registry (one per schema id not yet cached), by result: ok, not_found, error (retried).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.errors, m.requests)
	}
	return m
}
