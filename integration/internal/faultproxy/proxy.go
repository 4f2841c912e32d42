// Package faultproxy is an HTTP proxy that sits between a Kinesis client and a Kinesis emulator
// (kinesis-mock, kinesalite) and injects the faults the emulators never produce: request-level
// throttling, 5xx, per-entry partial failures, ambiguous failures (stored but reported failed),
// fatal errors, delays, and AWS's PutRecords limits, which both emulators enforce loosely or not at
// all (see shared/design/RELIABILITY.md, a7 and (d)11).
//
// The proxy understands the awsJson1_1 protocol that aws-sdk-go-v2 speaks: Content-Type
// application/x-amz-json-1.1 and X-Amz-Target: Kinesis_20131202.<Action>. Every fault applies to
// PutRecords only; other actions (and CBOR-encoded requests) pass through unchanged. Tests run in
// the same process and steer the proxy through its goroutine-safe methods.
//
// A PutRecords request meets the faults in this order, and the first that fires answers it:
//
//  1. SetDelay (sleep before anything else)
//  2. SetFatal                 400 {"__type": code}, not forwarded
//  3. SetEnforceLimits (on)    400 ValidationException, not forwarded
//  4. SetThrottle              400 ProvisionedThroughputExceededException, not forwarded
//  5. SetServerErrors          500/503 InternalFailure / ServiceUnavailable, not forwarded
//  6. SetAmbiguous             forwarded whole, then 500 or a dropped connection
//  7. SetEntryFailer, SetPartialFailure: only the entries chosen to succeed are forwarded; the
//     response is rebuilt in request order with synthetic ErrorCode/ErrorMessage entries
//  8. SetResponseDelay (sleep after the emulator answered, before replying)
package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// AWS PutRecords limits enforced by SetEnforceLimits (default 1 MiB per record; 5 MiB per request,
// both counting data plus partition-key bytes; 1..500 records; 1..256-character partition keys).
const (
	MaxRecords          = 500
	MaxRecordBytes      = 1 << 20
	MaxRequestBytes     = 5 << 20
	MaxPartitionKeyLen  = 256
	putRecordsTarget    = "Kinesis_20131202.PutRecords"
	contentTypeJSON11   = "application/x-amz-json-1.1"
	codeThroughput      = "ProvisionedThroughputExceededException"
	codeInternalFailure = "InternalFailure"
)

// Ambiguous failure modes for SetAmbiguous.
const (
	Ambiguous500   = "500"   // forward, then answer 500 InternalFailure
	AmbiguousReset = "reset" // forward, then close the connection without an answer (TCP RST)
)

// Entry is one PutRecords entry, as given to an EntryFailer.
type Entry struct {
	Index           int    // position in the request, from 0
	Stream          string // StreamName, or StreamARN when no name was sent
	PartitionKey    string
	ExplicitHashKey string
	Data            []byte
}

// EntryFailer decides per entry whether to fail it synthetically and with which code
// (ProvisionedThroughputExceededException or InternalFailure; "" means the SetPartialFailure code,
// or ProvisionedThroughputExceededException).
type EntryFailer func(e Entry) (code string, fail bool)

// Stats counts what the proxy saw and did since New or ResetStats.
type Stats struct {
	Requests           int64 // every request, any action
	PutRecordsRequests int64 // PutRecords requests
	EntriesSeen        int64 // entries in PutRecords requests (including rejected requests)
	EntriesForwarded   int64 // entries forwarded to the emulator
	EntriesFailed      int64 // entries failed synthetically (partial failures)
	Throttled          int64 // requests answered 400 ProvisionedThroughputExceededException
	ServerErrors       int64 // requests answered 5xx without forwarding
	LimitViolations    int64 // requests rejected by the AWS limit checks
	Ambiguous          int64 // requests forwarded and then answered 500 or dropped
	Fatal              int64 // requests answered with the SetFatal code
}

type settings struct {
	enforceLimits bool
	throttle      float64
	serverErrors  float64
	serverStatus  int
	partial       float64
	partialCode   string
	failer        EntryFailer
	delay         time.Duration
	responseDelay time.Duration
	ambiguous     float64
	ambiguousHow  string
	fatal         string
}

func defaults() settings { return settings{enforceLimits: true} }

// Proxy is a running fault proxy. Its methods are safe for concurrent use.
type Proxy struct {
	target *url.URL
	ln     net.Listener
	srv    *http.Server
	pass   *httputil.ReverseProxy
	client *http.Client
	closed chan struct{}
	once   sync.Once

	mu    sync.Mutex
	set   settings
	rng   *rand.Rand
	stats Stats
}

// New starts a proxy on 127.0.0.1 (a free port) in front of target, an emulator's base URL such
// as http://127.0.0.1:4568. It starts in pass-through mode with AWS limit enforcement on.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: bad target %q (want http://host:port)", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	p := &Proxy{
		target: u,
		ln:     ln,
		client: &http.Client{Transport: tr},
		closed: make(chan struct{}),
		set:    defaults(),
		rng:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x9e3779b97f4a7c15)),
	}
	p.pass = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = u.Host
		},
		Transport:     tr,
		FlushInterval: -1, // stream (SubscribeToShard) without buffering
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL, to be used as the Kinesis endpoint.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops the proxy, aborting requests that are waiting in a delay.
func (p *Proxy) Close() {
	p.once.Do(func() {
		close(p.closed)
		_ = p.srv.Close()
		p.client.CloseIdleConnections()
	})
}

func (p *Proxy) update(f func(s *settings)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.set)
}

// SetEnforceLimits turns AWS PutRecords limit checks on (the default) or off.
func (p *Proxy) SetEnforceLimits(on bool) { p.update(func(s *settings) { s.enforceLimits = on }) }

// SetThrottle answers that fraction (0..1) of PutRecords requests with HTTP 400
// ProvisionedThroughputExceededException "Rate exceeded", without forwarding them.
func (p *Proxy) SetThrottle(fraction float64) { p.update(func(s *settings) { s.throttle = fraction }) }

// SetServerErrors answers that fraction of PutRecords requests with status (500 or 503; 0 means
// 500) without forwarding them.
func (p *Proxy) SetServerErrors(fraction float64, status int) {
	if status == 0 {
		status = http.StatusInternalServerError
	}
	p.update(func(s *settings) { s.serverErrors, s.serverStatus = fraction, status })
}

// SetPartialFailure fails that fraction of PutRecords entries with code
// (ProvisionedThroughputExceededException or InternalFailure; "" means the former).
func (p *Proxy) SetPartialFailure(fraction float64, code string) {
	p.update(func(s *settings) { s.partial, s.partialCode = fraction, code })
}

// SetEntryFailer installs a scripted per-entry failure decision; it takes precedence over
// SetPartialFailure's fraction. nil removes it. f runs with no proxy lock held.
func (p *Proxy) SetEntryFailer(f EntryFailer) { p.update(func(s *settings) { s.failer = f }) }

// SetDelay sleeps d before handling each PutRecords request.
func (p *Proxy) SetDelay(d time.Duration) { p.update(func(s *settings) { s.delay = d }) }

// SetResponseDelay sleeps d after the emulator answered a PutRecords request and before replying,
// which widens the window in which records are stored but not yet acknowledged.
func (p *Proxy) SetResponseDelay(d time.Duration) {
	p.update(func(s *settings) { s.responseDelay = d })
}

// SetAmbiguous forwards that fraction of PutRecords requests whole and then fails them anyway:
// how is Ambiguous500 (answer 500) or AmbiguousReset (drop the connection).
func (p *Proxy) SetAmbiguous(fraction float64, how string) {
	p.update(func(s *settings) { s.ambiguous, s.ambiguousHow = fraction, how })
}

// SetFatal answers every PutRecords request with HTTP 400 and that error code, e.g.
// AccessDeniedException or ResourceNotFoundException. "" turns it off.
func (p *Proxy) SetFatal(code string) { p.update(func(s *settings) { s.fatal = code }) }

// SetSeed makes the random choices (fractions) repeatable.
func (p *Proxy) SetSeed(seed uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rng = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// Reset returns to pass-through with limit enforcement on. It keeps the stats.
func (p *Proxy) Reset() { p.update(func(s *settings) { *s = defaults() }) }

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// ResetStats zeroes the counters.
func (p *Proxy) ResetStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = Stats{}
}

func (p *Proxy) count(f func(st *Stats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.stats)
}

// chance reports whether a random draw falls under fraction.
func (p *Proxy) chance(fraction float64) bool {
	if fraction <= 0 {
		return false
	}
	if fraction >= 1 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64() < fraction
}

func (p *Proxy) snapshot() settings {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.set
}

func (p *Proxy) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closed:
		return errors.New("proxy closed")
	}
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.count(func(st *Stats) { st.Requests++ })
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != putRecordsTarget ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), contentTypeJSON11) {
		p.pass.ServeHTTP(w, r)
		return
	}
	p.putRecords(w, r)
}

// putRecordsRequest holds the fields the proxy reads; raw keeps every field for forwarding.
type putRecordsRequest struct {
	raw     map[string]json.RawMessage
	records []json.RawMessage
	entries []Entry
	stream  string
}

func parsePutRecords(body []byte) (*putRecordsRequest, error) {
	req := &putRecordsRequest{}
	if err := json.Unmarshal(body, &req.raw); err != nil {
		return nil, err
	}
	if rec, ok := req.raw["Records"]; ok {
		if err := json.Unmarshal(rec, &req.records); err != nil {
			return nil, err
		}
	}
	var name, arn string
	_ = json.Unmarshal(req.raw["StreamName"], &name)
	_ = json.Unmarshal(req.raw["StreamARN"], &arn)
	req.stream = name
	if req.stream == "" {
		req.stream = arn
	}
	req.entries = make([]Entry, len(req.records))
	for i, r := range req.records {
		var e struct {
			Data            []byte
			PartitionKey    string
			ExplicitHashKey string
		}
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		req.entries[i] = Entry{Index: i, Stream: req.stream, PartitionKey: e.PartitionKey,
			ExplicitHashKey: e.ExplicitHashKey, Data: e.Data}
	}
	return req, nil
}

// checkLimits returns a ValidationException message for the first AWS limit the request breaks.
func checkLimits(req *putRecordsRequest) string {
	n := len(req.entries)
	if n < 1 || n > MaxRecords {
		return fmt.Sprintf("1 validation error detected: Value at 'records' failed to satisfy constraint: "+
			"Member must have length between 1 and %d (got %d)", MaxRecords, n)
	}
	total := 0
	for _, e := range req.entries {
		if k := utf8.RuneCountInString(e.PartitionKey); k < 1 || k > MaxPartitionKeyLen {
			return fmt.Sprintf("1 validation error detected: Value at 'records.%d.member.partitionKey' "+
				"failed to satisfy constraint: Member must have length between 1 and %d (got %d)",
				e.Index+1, MaxPartitionKeyLen, k)
		}
		size := len(e.Data) + len(e.PartitionKey)
		if size > MaxRecordBytes {
			return fmt.Sprintf("record %d is %d bytes (data plus partition key); the limit is %d",
				e.Index, size, MaxRecordBytes)
		}
		total += size
	}
	if total > MaxRequestBytes {
		return fmt.Sprintf("request is %d bytes (data plus partition keys); the limit is %d", total, MaxRequestBytes)
	}
	return ""
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	w.Header().Set("Content-Type", contentTypeJSON11)
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (p *Proxy) putRecords(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.count(func(st *Stats) { st.PutRecordsRequests++ })
	set := p.snapshot()
	if err := p.sleep(r.Context(), set.delay); err != nil {
		return
	}
	req, err := parsePutRecords(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	p.count(func(st *Stats) { st.EntriesSeen += int64(len(req.entries)) })
	violation := ""
	if set.enforceLimits {
		violation = checkLimits(req)
	}

	switch {
	case set.fatal != "":
		p.count(func(st *Stats) { st.Fatal++ })
		writeError(w, http.StatusBadRequest, set.fatal, "injected by faultproxy")
		return
	case violation != "":
		p.count(func(st *Stats) { st.LimitViolations++ })
		writeError(w, http.StatusBadRequest, "ValidationException", violation)
		return
	case p.chance(set.throttle):
		p.count(func(st *Stats) { st.Throttled++ })
		writeError(w, http.StatusBadRequest, codeThroughput, "Rate exceeded")
		return
	case p.chance(set.serverErrors):
		p.count(func(st *Stats) { st.ServerErrors++ })
		code := codeInternalFailure
		if set.serverStatus == http.StatusServiceUnavailable {
			code = "ServiceUnavailable"
		}
		writeError(w, set.serverStatus, code, "injected by faultproxy")
		return
	case p.chance(set.ambiguous):
		p.ambiguous(w, r, body, len(req.entries), set)
		return
	}

	failed := p.chooseFailures(req, set)
	if len(failed) == 0 {
		status, hdr, respBody, err := p.forward(r, body)
		if err != nil {
			writeError(w, http.StatusBadGateway, "ServiceUnavailable", err.Error())
			return
		}
		p.count(func(st *Stats) { st.EntriesForwarded += int64(len(req.entries)) })
		if p.sleep(r.Context(), set.responseDelay) != nil {
			return
		}
		reply(w, status, hdr, respBody)
		return
	}

	var keep []json.RawMessage
	for i, rec := range req.records {
		if _, ok := failed[i]; !ok {
			keep = append(keep, rec)
		}
	}
	p.count(func(st *Stats) { st.EntriesFailed += int64(len(failed)) })
	upstream := struct {
		FailedRecordCount int
		Records           []json.RawMessage
		EncryptionType    string `json:",omitempty"`
	}{EncryptionType: "NONE"}
	status, hdr := http.StatusOK, http.Header{"Content-Type": {contentTypeJSON11}}
	if len(keep) > 0 {
		fwd, err := rebuildRequest(req.raw, keep)
		if err != nil {
			writeError(w, http.StatusInternalServerError, codeInternalFailure, err.Error())
			return
		}
		var respBody []byte
		status, hdr, respBody, err = p.forward(r, fwd)
		if err != nil {
			writeError(w, http.StatusBadGateway, "ServiceUnavailable", err.Error())
			return
		}
		p.count(func(st *Stats) { st.EntriesForwarded += int64(len(keep)) })
		if status != http.StatusOK {
			// A request-level error from the emulator: pass it on as it is.
			if p.sleep(r.Context(), set.responseDelay) == nil {
				reply(w, status, hdr, respBody)
			}
			return
		}
		if err := json.Unmarshal(respBody, &upstream); err != nil || len(upstream.Records) != len(keep) {
			writeError(w, http.StatusBadGateway, codeInternalFailure,
				fmt.Sprintf("faultproxy: unexpected PutRecords response (%d records for %d sent, err %v)",
					len(upstream.Records), len(keep), err))
			return
		}
	}
	merged := make([]json.RawMessage, len(req.records))
	next := 0
	for i := range req.records {
		if code, ok := failed[i]; ok {
			merged[i], _ = json.Marshal(map[string]string{"ErrorCode": code, "ErrorMessage": errorMessage(code, req.stream)})
			continue
		}
		merged[i] = upstream.Records[next]
		next++
	}
	upstream.FailedRecordCount += len(failed)
	upstream.Records = merged
	out, err := json.Marshal(upstream)
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeInternalFailure, err.Error())
		return
	}
	if p.sleep(r.Context(), set.responseDelay) != nil {
		return
	}
	reply(w, status, hdr, out)
}

func errorMessage(code, stream string) string {
	if code == codeThroughput {
		return fmt.Sprintf("Rate exceeded for shard shardId-000000000000 in stream %s under account 000000000000.", stream)
	}
	return "Internal service failure."
}

// chooseFailures maps the index of each entry to fail to its error code.
func (p *Proxy) chooseFailures(req *putRecordsRequest, set settings) map[int]string {
	if set.failer == nil && set.partial <= 0 {
		return nil
	}
	defCode := set.partialCode
	if defCode == "" {
		defCode = codeThroughput
	}
	failed := map[int]string{}
	for _, e := range req.entries {
		if set.failer != nil {
			if code, fail := set.failer(e); fail {
				if code == "" {
					code = defCode
				}
				failed[e.Index] = code
			}
			continue
		}
		if p.chance(set.partial) {
			failed[e.Index] = defCode
		}
	}
	return failed
}

func rebuildRequest(raw map[string]json.RawMessage, keep []json.RawMessage) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(raw))
	for k, v := range raw {
		out[k] = v
	}
	recs, err := json.Marshal(keep)
	if err != nil {
		return nil, err
	}
	out["Records"] = recs
	return json.Marshal(out)
}

// hopHeaders are not copied to the forwarded request. Accept-Encoding is dropped so the transport
// negotiates (and undoes) compression itself and the proxy can read the body.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Content-Length", "Accept-Encoding"}

// forward sends body to the emulator with the original request's path and headers and returns
// the whole answer.
func (p *Proxy) forward(r *http.Request, body []byte) (int, http.Header, []byte, error) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	resp, err := p.client.Do(out)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

func reply(w http.ResponseWriter, status int, hdr http.Header, body []byte) {
	for k, vs := range hdr {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Content-Encoding", "Transfer-Encoding", "Connection":
			continue
		}
		w.Header()[k] = vs
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (p *Proxy) ambiguous(w http.ResponseWriter, r *http.Request, body []byte, n int, set settings) {
	if _, _, _, err := p.forward(r, body); err != nil {
		writeError(w, http.StatusBadGateway, "ServiceUnavailable", err.Error())
		return
	}
	p.count(func(st *Stats) {
		st.Ambiguous++
		st.EntriesForwarded += int64(n)
	})
	if p.sleep(r.Context(), set.responseDelay) != nil {
		return
	}
	if set.ambiguousHow == AmbiguousReset {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // close with RST, as a crashed front end would
				}
				_ = conn.Close()
				return
			}
		}
	}
	writeError(w, http.StatusInternalServerError, codeInternalFailure, "injected by faultproxy (request was stored)")
}
