package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
)

// KafkaStartTimeout bounds how long Run waits at start for Kafka brokers
// that refuse connections, time out or do not resolve yet (a broker or a DNS
// name still coming up). Authentication and TLS errors end the wait at once:
// no retry fixes them.
const KafkaStartTimeout = 30 * time.Second

// Causes of Kafka connection failures: the cause label of
// ferry_kafka_auth_errors_total and KafkaError.Cause.
const (
	CauseSASLAuthFailed        = "sasl_authentication_failed"
	CauseSASLIllegalState      = "sasl_illegal_state"
	CauseSASLMechanism         = "sasl_mechanism_unsupported"
	CauseSASLRequired          = "sasl_required"
	CauseTLSUnknownAuthority   = "tls_unknown_authority"
	CauseTLSHostname           = "tls_hostname_mismatch"
	CauseTLSCertInvalid        = "tls_certificate_invalid"
	CauseTLSClientCertRequired = "tls_client_certificate_required"
	CauseTLSClientCertRejected = "tls_client_certificate_rejected"
	CauseTLSRequired           = "tls_required"
	CauseTLSNotExpected        = "tls_not_expected"
	CauseTLSHandshake          = "tls_handshake_failed"
	CauseUnreachable           = "unreachable"
	CauseCanceled              = "canceled"
	CauseOther                 = "other"
)

// KafkaError is a failure to connect to or authenticate with a Kafka broker,
// classified by ClassifyKafkaError.
type KafkaError struct {
	// Cause is one of the Cause* constants.
	Cause string
	// Hint says what failed and which settings to check, in ferry's words.
	Hint string
	// Final is set for authentication and TLS failures: the same settings
	// fail the same way every time, so waiting does not help.
	Final bool
	// Err is franz-go's error.
	Err error
}

func (e *KafkaError) Error() string { return e.Hint + ": " + e.Err.Error() }

func (e *KafkaError) Unwrap() error { return e.Err }

// remoteAlerts are the TLS alerts a broker sends when it refuses the client's
// certificate, or the lack of one (Go reports them as "remote error: tls:
// ..."). Java's broker answers a missing certificate with bad_certificate,
// even in TLS 1.3, where the protocol has certificate_required.
var remoteAlerts = []string{
	"tls: bad certificate", "tls: certificate required", "tls: unknown certificate authority",
	"tls: unknown certificate", "tls: certificate unknown", "tls: access denied",
	"tls: expired certificate", "tls: revoked certificate", "tls: unsupported certificate",
	"tls: handshake failure",
}

// ClassifyKafkaError names the cause of a Kafka connection error and the
// settings of k to check. It never returns nil for a non-nil err.
func ClassifyKafkaError(err error, k config.Kafka) *KafkaError {
	if err == nil {
		return nil
	}
	final := func(cause, hint string) *KafkaError {
		return &KafkaError{Cause: cause, Hint: hint, Final: true, Err: err}
	}
	retry := func(cause, hint string) *KafkaError { return &KafkaError{Cause: cause, Hint: hint, Err: err} }
	mech := strings.ToUpper(k.SASL.Mechanism)
	msg := err.Error()

	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed):
		return retry(CauseCanceled, "canceled")
	case errors.Is(err, kerr.SaslAuthenticationFailed) || strings.Contains(msg, "SASL_AUTHENTICATION_FAILED"):
		if mech == "AWS_MSK_IAM" {
			return final(CauseSASLAuthFailed, "SASL authentication failed: the broker refused the AWS identity (kafka.sasl.aws.*, kinesis.* credentials; the IAM policy needs kafka-cluster:Connect)")
		}
		return final(CauseSASLAuthFailed, fmt.Sprintf("SASL authentication failed: the broker refused kafka.sasl.username %q with kafka.sasl.password for kafka.sasl.mechanism %s", k.SASL.Username, mech))
	case errors.Is(err, kerr.IllegalSaslState) || strings.Contains(msg, "ILLEGAL_SASL_STATE"):
		return final(CauseSASLIllegalState, fmt.Sprintf("SASL authentication failed: the broker did not expect this SASL step (ILLEGAL_SASL_STATE); check kafka.sasl.mechanism %s", mech))
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return final(CauseSASLMechanism, fmt.Sprintf("SASL authentication failed: the broker does not enable kafka.sasl.mechanism %s on this listener", mech))
	}

	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	switch {
	case errors.As(err, &unknownCA):
		trusted := "the system's CAs"
		if k.TLS.CAFile != "" {
			trusted = "kafka.tls.ca_file " + k.TLS.CAFile
		}
		return final(CauseTLSUnknownAuthority, "TLS failed: the broker's certificate is not signed by a CA ferry trusts ("+trusted+"); set kafka.tls.ca_file to the CA that signed it")
	case errors.As(err, &hostname):
		name := "the broker's host name (kafka.brokers)"
		if k.TLS.ServerName != "" {
			name = fmt.Sprintf("kafka.tls.server_name %q", k.TLS.ServerName)
		}
		return final(CauseTLSHostname, "TLS failed: the broker's certificate is not valid for "+name+"; set kafka.tls.server_name to a name in the certificate")
	case errors.As(err, &invalid):
		return final(CauseTLSCertInvalid, "TLS failed: the broker's certificate is not valid (expired, not yet valid, or not for server use)")
	case errors.As(err, &header) || strings.Contains(msg, "first record does not look like a TLS handshake"):
		return final(CauseTLSNotExpected, "TLS failed: the broker does not speak TLS on this port; set kafka.tls.enabled: false or use its TLS listener")
	case strings.Contains(msg, "speaking to a tls endpoint"):
		return final(CauseTLSRequired, "the broker expects TLS on this port: set kafka.tls.enabled: true (and kafka.tls.ca_file)")
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil {
		alert := op.Err.Error()
		for _, a := range remoteAlerts {
			if !strings.Contains(alert, a) {
				continue
			}
			if k.TLS.CertFile == "" {
				return final(CauseTLSClientCertRequired, "TLS failed: the broker requires a client certificate (mTLS); set kafka.tls.cert_file and kafka.tls.key_file")
			}
			return final(CauseTLSClientCertRejected, "TLS failed: the broker refused the client certificate kafka.tls.cert_file "+k.TLS.CertFile+" (not signed by a CA it trusts, expired, or not for client authentication)")
		}
		return final(CauseTLSHandshake, "TLS failed: the broker ended the handshake ("+alert+")")
	}
	var firstEOF *kgo.ErrFirstReadEOF
	if errors.As(err, &firstEOF) {
		// franz-go tells its three cases apart only in its message.
		switch {
		case strings.Contains(msg, "SASL missing"):
			return retry(CauseSASLRequired, "the broker closed the connection after the first request: it probably requires SASL; set kafka.sasl.mechanism, username and password")
		case strings.Contains(msg, "TLS missing"):
			return retry(CauseTLSRequired, "the broker closed the connection at the first request: this port probably expects TLS; set kafka.tls.enabled: true (and kafka.tls.ca_file)")
		}
		return retry(CauseTLSNotExpected, "the broker closed the connection as soon as it opened: this port probably does not speak TLS; set kafka.tls.enabled: false or use its TLS listener")
	}
	if strings.Contains(msg, "tls:") {
		return final(CauseTLSHandshake, "TLS failed")
	}
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return retry(CauseUnreachable, "the broker address does not resolve (kafka.brokers)")
	case errors.As(err, &op) || errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "unable to dial"):
		return retry(CauseUnreachable, "the brokers do not answer (kafka.brokers)")
	}
	return retry(CauseOther, "kafka request failed")
}

// confirmAfter is how many times in a row Run's start check accepts an
// error that usually means a TLS or SASL mismatch but may be a broker closing
// connections while it starts or stops (franz-go's ErrFirstReadEOF) before it
// treats it as final.
const confirmAfter = 3

// reachKafka asks the brokers for metadata before the connector consumes
// anything: a broker that refuses connections or times out is retried for up
// to c.startTimeout, an authentication or TLS failure ends Run at once,
// named. It returns ctx's error when ctx ends first.
func (c *Connector) reachKafka(ctx context.Context, cl *kgo.Client) error {
	start := time.Now()
	backoff := 250 * time.Millisecond
	same := 0
	var last string
	for {
		remaining := c.startTimeout - time.Since(start)
		pctx, cancel := context.WithTimeout(ctx, min(10*time.Second, max(remaining, time.Second)))
		err := cl.Ping(pctx)
		cancel()
		if err == nil {
			c.log.Info("kafka brokers answer", "brokers", c.cfg.Kafka.Brokers, "waited", time.Since(start).Round(time.Millisecond).String())
			c.watch.arm()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ke := ClassifyKafkaError(err, c.cfg.Kafka)
		if ke.Cause == last {
			same++
		} else {
			last, same = ke.Cause, 1
		}
		confirmed := ke.Cause != CauseUnreachable && ke.Cause != CauseOther && same >= confirmAfter
		if ke.Final || confirmed {
			return fatalf("kafka brokers %v: %w", c.cfg.Kafka.Brokers, ke)
		}
		if time.Since(start) >= c.startTimeout {
			return fatalf("kafka brokers %v did not answer within %s: %w", c.cfg.Kafka.Brokers, c.startTimeout, ke)
		}
		c.log.Warn("kafka brokers do not answer yet: retrying", "brokers", c.cfg.Kafka.Brokers, "cause", ke.Cause,
			"error", ke.Error(), "waited", time.Since(start).Round(time.Millisecond).String(), "timeout", c.startTimeout.String())
		if !sleepCtx(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// authStale is how long a broker's authentication failure counts as current
// without a new failed attempt: franz-go retries a broker within seconds
// while it needs it, so an older failure is of a broker no longer used.
const authStale = 30 * time.Second

// authReminder is how often a persisting failure is logged again.
const authReminder = 15 * time.Second

// connWatch is franz-go's hook for connection outcomes: it counts
// connections and SASL authentications, and tracks, per broker address, an
// authentication or TLS failure that has not been followed by a successful
// connection. Its methods run on franz-go's goroutines.
type connWatch struct {
	m   *Metrics
	log *slog.Logger
	cfg config.Kafka
	now func() time.Time

	// armed is set once the start check passed: failures before it end Run
	// and need no tracking.
	armed atomic.Bool

	mu      sync.Mutex
	failing map[string]*authFailure // by broker host:port
}

type authFailure struct {
	since, last time.Time
	err         *KafkaError
}

var (
	_ kgo.HookBrokerConnect = (*connWatch)(nil)
	_ kgo.HookBrokerE2E     = (*connWatch)(nil)
)

func newConnWatch(m *Metrics, log *slog.Logger, cfg config.Kafka) *connWatch {
	return &connWatch{m: m, log: log, cfg: cfg, now: time.Now, failing: map[string]*authFailure{}}
}

func (w *connWatch) arm() { w.armed.Store(true) }

// OnBrokerConnect sees every connection attempt, including its ApiVersions
// and SASL steps (err is the first that failed).
func (w *connWatch) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	if err == nil {
		w.m.kafkaConnections.Inc()
		w.recovered(addr)
		return
	}
	ke := ClassifyKafkaError(err, w.cfg)
	if !ke.Final {
		return // franz-go logs and retries unreachable brokers itself
	}
	w.m.kafkaAuthErrors.WithLabelValues(ke.Cause).Inc()
	if !w.armed.Load() {
		return
	}
	w.failed(addr, ke)
}

// OnBrokerE2E counts SASL authentications: each, first or re-authentication
// (KIP-368), starts with one SaslHandshake.
func (w *connWatch) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	const saslHandshake = 17
	if key == saslHandshake && e2e.Err() == nil {
		w.m.kafkaSASLAuths.Inc()
	}
}

func (w *connWatch) failed(addr string, ke *KafkaError) {
	now := w.now()
	w.mu.Lock()
	f, ok := w.failing[addr]
	if !ok {
		f = &authFailure{since: now}
		w.failing[addr] = f
	}
	changed := !ok || f.err.Cause != ke.Cause
	f.last, f.err = now, ke
	w.mu.Unlock()
	w.m.kafkaAuthFailing.Set(1)
	if changed {
		w.log.Warn("kafka broker connection failing: authentication or TLS refused", "broker", addr,
			"cause", ke.Cause, "error", ke.Error(), "stop_after", w.cfg.AuthFailureTimeout.String())
	}
}

func (w *connWatch) recovered(addr string) {
	w.mu.Lock()
	f, ok := w.failing[addr]
	delete(w.failing, addr)
	n := len(w.failing)
	w.mu.Unlock()
	if !ok {
		return
	}
	if n == 0 {
		w.m.kafkaAuthFailing.Set(0)
	}
	w.log.Info("kafka broker connection authenticated again", "broker", addr,
		"failed_for", w.now().Sub(f.since).Round(time.Millisecond).String())
}

// state drops failures not seen for authStale and returns the longest
// current one, if any.
func (w *connWatch) state() (addr string, f authFailure, ok bool) {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for a, cur := range w.failing {
		if now.Sub(cur.last) > authStale {
			delete(w.failing, a)
			continue
		}
		if !ok || cur.since.Before(f.since) {
			addr, f, ok = a, *cur, true
		}
	}
	return addr, f, ok
}

// watchAuth checks every second for an authentication or TLS failure that
// has lasted kafka.auth_failure_timeout, and then stops the connector; it
// keeps the failing gauge and Healthy up to date in between. A failure
// lasts from the first refused attempt to the latest one with no success
// in between: a single refusal nobody retries goes stale (authStale)
// instead of stopping ferry.
func (c *Connector) watchAuth(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var reminded time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		addr, f, failing := c.watch.state()
		c.authFailing.Store(failing)
		if !failing {
			c.m.kafkaAuthFailing.Set(0)
			continue
		}
		c.m.kafkaAuthFailing.Set(1)
		now := c.watch.now()
		lasted := f.last.Sub(f.since)
		if lasted >= c.cfg.Kafka.AuthFailureTimeout {
			c.fail(fatalf("kafka broker %s refused authentication or TLS for %s (kafka.auth_failure_timeout): %w",
				addr, lasted.Round(time.Second), f.err))
			return
		}
		if reminded.Before(f.since) {
			reminded = f.since // OnBrokerConnect logged the start
		}
		if now.Sub(reminded) >= authReminder {
			reminded = now
			c.log.Warn("kafka broker connection still failing", "broker", addr, "cause", f.err.Cause,
				"error", f.err.Error(), "for", now.Sub(f.since).Round(time.Second).String(), "stop_after", c.cfg.Kafka.AuthFailureTimeout.String())
		}
	}
}

// startOffset is where a partition without a committed offset starts, by
// kafka.start, given the base offset to build on (kgo.NewOffset or
// kgo.NoResetOffset): the first record, the end, or the first record at or
// after a time (the end if none is).
func startOffset(k config.Kafka, base kgo.Offset) kgo.Offset {
	if k.Start == config.StartLatest {
		return base.AtEnd()
	}
	if at, ok := k.StartTime(); ok {
		return base.AfterMilli(at.UnixMilli())
	}
	return base.AtStart()
}
