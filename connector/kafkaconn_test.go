package connector

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/ferrylabs/ferry/config"
)

// testPKI is a CA, a server certificate for 127.0.0.1/localhost and client
// certificates, written as PEM files.
type testPKI struct {
	server                    tls.Certificate
	pool                      *x509.CertPool // trusts the CA, for the broker's client certificates
	caFile, otherCAFile       string
	clientCert, clientKey     string // signed by the CA
	otherClientCert, otherKey string // signed by an unrelated CA
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caCert, caKey := makeCert(t, "test CA", nil, nil, 0)
	otherCert, otherKey := makeCert(t, "other CA", nil, nil, 0)
	srvCert, srvKey := makeCert(t, "localhost", caCert, caKey, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := makeCert(t, "ferry", caCert, caKey, x509.ExtKeyUsageClientAuth)
	oCliCert, oCliKey := makeCert(t, "ferry", otherCert, otherKey, x509.ExtKeyUsageClientAuth)
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certPEM := func(c *x509.Certificate) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw} }
	keyPEM := func(k *ecdsa.PrivateKey) *pem.Block {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testPKI{
		server:          tls.Certificate{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey},
		pool:            pool,
		caFile:          write("ca.pem", certPEM(caCert)),
		otherCAFile:     write("other-ca.pem", certPEM(otherCert)),
		clientCert:      write("client.pem", certPEM(cliCert)),
		clientKey:       write("client-key.pem", keyPEM(cliKey)),
		otherClientCert: write("other-client.pem", certPEM(oCliCert)),
		otherKey:        write("other-client-key.pem", keyPEM(oCliKey)),
	}
}

func makeCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// pingErr connects to brokers with k's TLS and SASL settings, through
// KafkaClientOpts as ferry does, and returns the Ping error.
func pingErr(t *testing.T, brokers []string, k config.Kafka) error {
	t.Helper()
	cfg := config.Default()
	k.ClientID = "ferry"
	k.Brokers = brokers
	cfg.Kafka = k
	opts, err := KafkaClientOpts(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

func cluster(t *testing.T, opts ...kfake.Opt) []string {
	t.Helper()
	return newCluster(t, opts...).ListenAddrs()
}

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// saslCluster is a kfake cluster with SASL (PLAIN user ferry/right, and
// SCRAM-SHA-256 for the same user). kfake closes the connection on a wrong
// password; while reject is set, SaslAuthenticate is answered as Kafka
// answers it instead: SASL_AUTHENTICATION_FAILED with a message.
func saslCluster(t *testing.T, reject *atomic.Bool, opts ...kfake.Opt) []string {
	t.Helper()
	c := newCluster(t, append([]kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", "ferry", "right"),
		kfake.Superuser("SCRAM-SHA-256", "ferry", "right")}, opts...)...)
	c.ControlKey(36, func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !reject.Load() {
			return nil, nil, false
		}
		resp := req.(*kmsg.SASLAuthenticateRequest).ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: Invalid username or password"
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
	return c.ListenAddrs()
}

// Real failures, from kfake behind TLS and SASL, are named by their cause
// and point at the settings to change; authentication and TLS failures are
// final, a broker that is not there is not.
func TestClassifyKafkaErrorOnRealFailures(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
	mtls := serverTLS.Clone()
	mtls.ClientAuth = tls.RequireAndVerifyClientCert
	mtls.ClientCAs = pki.pool
	tlsBrokers := cluster(t, kfake.TLS(serverTLS))
	mtlsBrokers := cluster(t, kfake.TLS(mtls))
	var accept, reject atomic.Bool
	reject.Store(true)
	saslBrokers := saslCluster(t, &accept)
	rejectBrokers := saslCluster(t, &reject)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	trust := config.TLS{Enabled: true, CAFile: pki.caFile}
	withCert := trust
	withCert.CertFile, withCert.KeyFile = pki.clientCert, pki.clientKey
	otherCert := trust
	otherCert.CertFile, otherCert.KeyFile = pki.otherClientCert, pki.otherKey
	cases := []struct {
		name    string
		brokers []string
		k       config.Kafka
		cause   string // "" means Ping succeeds
		final   bool
		hint    []string
	}{
		{"tls ok", tlsBrokers, config.Kafka{TLS: trust}, "", false, nil},
		{"mtls ok", mtlsBrokers, config.Kafka{TLS: withCert}, "", false, nil},
		{"sasl ok", saslBrokers, config.Kafka{SASL: config.SASL{Mechanism: "SCRAM-SHA-256", Username: "ferry", Password: "right"}}, "", false, nil},
		{"unknown CA", tlsBrokers, config.Kafka{TLS: config.TLS{Enabled: true, CAFile: pki.otherCAFile}},
			CauseTLSUnknownAuthority, true, []string{"not signed by a CA ferry trusts", "kafka.tls.ca_file " + pki.otherCAFile}},
		{"system pool", tlsBrokers, config.Kafka{TLS: config.TLS{Enabled: true}},
			CauseTLSUnknownAuthority, true, []string{"the system's CAs"}},
		{"server name", tlsBrokers, config.Kafka{TLS: config.TLS{Enabled: true, CAFile: pki.caFile, ServerName: "kafka.example.com"}},
			CauseTLSHostname, true, []string{`kafka.tls.server_name "kafka.example.com"`, "not kafka.example.com"}},
		{"no client certificate", mtlsBrokers, config.Kafka{TLS: trust},
			CauseTLSClientCertRequired, true, []string{"requires a client certificate", "kafka.tls.cert_file and kafka.tls.key_file"}},
		{"client certificate of another CA", mtlsBrokers, config.Kafka{TLS: otherCert},
			CauseTLSClientCertRejected, true, []string{"refused the client certificate", pki.otherClientCert}},
		// kfake closes the connection where Kafka sends a TLS alert
		// (TestSecured* in integration/ cover Kafka's answer).
		{"plaintext to TLS", tlsBrokers, config.Kafka{},
			CauseTLSRequired, false, []string{"set kafka.tls.enabled: true"}},
		{"wrong password", rejectBrokers, config.Kafka{SASL: config.SASL{Mechanism: "SCRAM-SHA-256", Username: "ferry", Password: "wrong"}},
			CauseSASLAuthFailed, true, []string{`kafka.sasl.username "ferry"`, "kafka.sasl.password", "SCRAM-SHA-256"}},
		{"wrong PLAIN password", rejectBrokers, config.Kafka{SASL: config.SASL{Mechanism: "PLAIN", Username: "ferry", Password: "wrong"}},
			CauseSASLAuthFailed, true, []string{"kafka.sasl.mechanism PLAIN"}},
		{"no SASL", saslBrokers, config.Kafka{}, CauseSASLRequired, false, []string{"kafka.sasl.mechanism"}},
		{"closed port", []string{closed}, config.Kafka{}, CauseUnreachable, false, []string{"do not answer"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := pingErr(t, tc.brokers, tc.k)
			if tc.cause == "" {
				if err != nil {
					t.Fatalf("Ping = %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Ping succeeded")
			}
			ke := ClassifyKafkaError(err, tc.k)
			t.Logf("%s", ke)
			if ke.Cause != tc.cause || ke.Final != tc.final {
				t.Fatalf("cause %s (final %v), want %s (final %v): %v", ke.Cause, ke.Final, tc.cause, tc.final, err)
			}
			for _, h := range tc.hint {
				if !strings.Contains(ke.Error(), h) {
					t.Errorf("%q does not say %q", ke.Error(), h)
				}
			}
			if !errors.Is(ke, err) {
				t.Error("KafkaError does not unwrap to franz-go's error")
			}
		})
	}
}

// Errors that are hard to provoke for real, classified from their types and
// franz-go's wording.
func TestClassifyKafkaError(t *testing.T) {
	t.Parallel()
	k := config.Kafka{SASL: config.SASL{Mechanism: "scram-sha-512", Username: "u"}}
	cases := []struct {
		name  string
		err   error
		cause string
		final bool
	}{
		{"sasl failed", fmt.Errorf("%w: Authentication failed: invalid credentials", kerr.SaslAuthenticationFailed), CauseSASLAuthFailed, true},
		{"sasl failed by name only", errors.New(brokerSASLFailed), CauseSASLAuthFailed, true},
		{"illegal sasl state", kerr.IllegalSaslState, CauseSASLIllegalState, true},
		{"illegal sasl state by name", errors.New(brokerSASLState), CauseSASLIllegalState, true},
		{"unsupported mechanism", kerr.UnsupportedSaslMechanism, CauseSASLMechanism, true},
		{"certificate required", &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, CauseTLSClientCertRequired, true},
		{"other alert", &net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}, CauseTLSHandshake, true},
		{"record header", fmt.Errorf("unable to dial: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), CauseTLSNotExpected, true},
		{"refused", fmt.Errorf("unable to dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), CauseUnreachable, false},
		{"dns", fmt.Errorf("unable to dial: %w", &net.DNSError{Err: "no such host", Name: "kafka"}), CauseUnreachable, false},
		{"timeout", context.DeadlineExceeded, CauseUnreachable, false},
		{"canceled", context.Canceled, CauseCanceled, false},
		{"client closed", kgo.ErrClientClosed, CauseCanceled, false},
		{"unknown", errors.New("something else"), CauseOther, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ke := ClassifyKafkaError(tc.err, k)
			if ke.Cause != tc.cause || ke.Final != tc.final {
				t.Fatalf("cause %s (final %v), want %s (final %v)", ke.Cause, ke.Final, tc.cause, tc.final)
			}
			if tc.cause == CauseSASLAuthFailed && !strings.Contains(ke.Error(), "SCRAM-SHA-512") {
				t.Errorf("%q does not name the mechanism", ke.Error())
			}
		})
	}
	if ClassifyKafkaError(nil, k) != nil {
		t.Error("a nil error classified as a failure")
	}
}

// At start a refused password stops Run within a second or two, named, and
// counted; franz-go alone would retry it forever.
func TestRunStopsAtStartOnAuthFailure(t *testing.T) {
	t.Parallel()
	topic := "auth-start"
	var reject atomic.Bool
	reject.Store(true)
	brokers := saslCluster(t, &reject, kfake.SeedTopics(1, topic))
	cfg := testConfig(brokers, topic)
	cfg.Kafka.SASL = config.SASL{Mechanism: "SCRAM-SHA-256", Username: "ferry", Password: "wrong"}
	reg := prometheus.NewRegistry()
	c, err := New(cfg, newFakeKinesis(), WithLogger(quietLogger()), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Run(t.Context())
	took := time.Since(start)
	if err == nil || !errors.Is(err, ErrFatal) {
		t.Fatalf("Run = %v, want a fatal error", err)
	}
	var ke *KafkaError
	if !errors.As(err, &ke) || ke.Cause != CauseSASLAuthFailed {
		t.Fatalf("Run = %v, want cause %s", err, CauseSASLAuthFailed)
	}
	if !strings.Contains(err.Error(), "kafka.sasl.password") {
		t.Errorf("%q does not name kafka.sasl.password", err)
	}
	if took > 5*time.Second {
		t.Errorf("Run took %s to give up", took)
	}
	if c.Healthy() {
		t.Error("healthy after a failed start")
	}
	if n := testutil.ToFloat64(c.m.kafkaAuthErrors.WithLabelValues(CauseSASLAuthFailed)); n < 1 {
		t.Errorf("ferry_kafka_auth_errors_total{cause=%s} = %v", CauseSASLAuthFailed, n)
	}
}

// A broker that is not there is waited for, up to the start bound; one
// that comes up within it is used; a TLS mismatch that looks like a closed
// connection is final after confirmAfter tries, not after the bound.
func TestRunWaitsForBrokersAtStart(t *testing.T) {
	t.Parallel()
	port := func(t *testing.T) int {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	t.Run("gives up after the bound", func(t *testing.T) {
		t.Parallel()
		addr := fmt.Sprintf("127.0.0.1:%d", port(t))
		c, err := New(testConfig([]string{addr}, "absent"), newFakeKinesis(), WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		c.startTimeout = time.Second
		start := time.Now()
		err = c.Run(t.Context())
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "did not answer within 1s") {
			t.Fatalf("Run = %v, want the start bound named", err)
		}
		var ke *KafkaError
		if !errors.As(err, &ke) || ke.Cause != CauseUnreachable {
			t.Fatalf("Run = %v, want cause %s", err, CauseUnreachable)
		}
		if took < time.Second || took > 5*time.Second {
			t.Errorf("Run gave up after %s, want about 1s", took)
		}
	})
	t.Run("uses a broker that comes up", func(t *testing.T) {
		t.Parallel()
		p := port(t)
		topic := "late"
		cfg := testConfig([]string{fmt.Sprintf("127.0.0.1:%d", p)}, topic)
		c, err := New(cfg, newFakeKinesis(), WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		c.startTimeout = 20 * time.Second
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		time.Sleep(1500 * time.Millisecond)
		cluster(t, kfake.Ports(p), kfake.SeedTopics(1, topic))
		deadline := time.Now().Add(20 * time.Second)
		for !c.Ready() {
			if time.Now().After(deadline) {
				t.Fatal("never joined the group after the broker came up")
			}
			select {
			case err := <-done:
				t.Fatalf("Run = %v before the broker came up", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v after a stop", err)
		}
	})
	t.Run("stop while waiting is clean", func(t *testing.T) {
		t.Parallel()
		c, err := New(testConfig([]string{fmt.Sprintf("127.0.0.1:%d", port(t))}, "absent"), newFakeKinesis(), WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
		defer cancel()
		if err := c.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil for a stop during the start wait", err)
		}
	})
	t.Run("plaintext to a TLS port", func(t *testing.T) {
		t.Parallel()
		topic := "tls"
		pki := newTestPKI(t)
		cfg := testConfig(cluster(t, kfake.SeedTopics(1, topic),
			kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12})), topic)
		c, err := New(cfg, newFakeKinesis(), WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = c.Run(t.Context())
		var ke *KafkaError
		if !errors.As(err, &ke) || ke.Cause != CauseTLSRequired {
			t.Fatalf("Run = %v, want cause %s", err, CauseTLSRequired)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("took %s: the start bound, not confirmAfter tries", took)
		}
	})
}

// After start, a broker that refuses authentication makes ferry unhealthy
// at once, and stops it when the refusal lasts kafka.auth_failure_timeout;
// a successful connection clears it, and a failure nobody retries goes
// stale instead of stopping ferry.
func TestAuthFailureAfterStart(t *testing.T) {
	t.Parallel()
	refused := fmt.Errorf("%w: invalid credentials", kerr.SaslAuthenticationFailed)
	meta := kgo.BrokerMetadata{NodeID: 1, Host: "127.0.0.1", Port: 9092}
	cases := []struct {
		name string
		// events: at each offset from the start, a failed (true) or
		// successful (false) connection.
		events map[time.Duration]bool
		// fatalAt is when the connector stops (0: never within 100 s).
		fatalAt time.Duration
		// unhealthyAt are times at which Healthy must be false, healthyAt
		// times at which it must be true.
		unhealthyAt, healthyAt []time.Duration
	}{
		{
			name:        "persists",
			events:      every(0, 2*time.Second, 100*time.Second, true),
			fatalAt:     10 * time.Second,
			unhealthyAt: []time.Duration{1500 * time.Millisecond, 9 * time.Second},
		},
		{
			name:        "recovers",
			events:      merge(every(0, 2*time.Second, 6*time.Second, true), map[time.Duration]bool{7 * time.Second: false}),
			unhealthyAt: []time.Duration{1500 * time.Millisecond, 6500 * time.Millisecond},
			healthyAt:   []time.Duration{8500 * time.Millisecond, 50 * time.Second},
		},
		{
			name:        "goes stale",
			events:      map[time.Duration]bool{0: true},
			unhealthyAt: []time.Duration{1500 * time.Millisecond},
			healthyAt:   []time.Duration{authStale + 2*time.Second},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig([]string{"127.0.0.1:9092"}, "t")
				cfg.Kafka.AuthFailureTimeout = 10 * time.Second
				reg := prometheus.NewRegistry()
				c, err := New(cfg, newFakeKinesis(), WithLogger(quietLogger()), WithRegisterer(reg))
				if err != nil {
					t.Fatal(err)
				}
				c.watch.arm()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				start := time.Now()
				go c.watchAuth(ctx)
				go func() {
					for _, at := range sortedKeys(tc.events) {
						select {
						case <-ctx.Done():
							return
						case <-time.After(at - time.Since(start)):
						}
						var err error
						if tc.events[at] {
							err = refused
						}
						c.watch.OnBrokerConnect(meta, 0, nil, err)
					}
				}()
				checks := map[time.Duration]bool{}
				for _, at := range tc.unhealthyAt {
					checks[at] = false
				}
				for _, at := range tc.healthyAt {
					checks[at] = true
				}
				for _, at := range sortedKeys(checks) {
					time.Sleep(at - time.Since(start))
					synctest.Wait()
					if c.fatalErr() != nil {
						break
					}
					if got := c.Healthy(); got != checks[at] {
						t.Errorf("at %s: Healthy = %v, want %v", at, got, checks[at])
					}
					wantGauge := 1.0
					if checks[at] {
						wantGauge = 0
					}
					if g := testutil.ToFloat64(c.m.kafkaAuthFailing); g != wantGauge {
						t.Errorf("at %s: ferry_kafka_auth_failing = %v, want %v", at, g, wantGauge)
					}
				}
				for c.fatalErr() == nil && time.Since(start) < 100*time.Second {
					time.Sleep(100 * time.Millisecond)
				}
				err = c.fatalErr()
				cancel()
				switch {
				case tc.fatalAt == 0 && err != nil:
					t.Fatalf("stopped at %s: %v", time.Since(start), err)
				case tc.fatalAt > 0 && err == nil:
					t.Fatal("never stopped")
				case tc.fatalAt > 0:
					// The refusal at the bound is seen by the next check
					// (each second), and this loop looks every 100 ms.
					if took := time.Since(start); took < tc.fatalAt || took > tc.fatalAt+1100*time.Millisecond {
						t.Errorf("stopped after %s, want %s", took, tc.fatalAt)
					}
					var ke *KafkaError
					if !errors.Is(err, ErrFatal) || !errors.As(err, &ke) || ke.Cause != CauseSASLAuthFailed {
						t.Errorf("fatal error %v, want a fatal %s", err, CauseSASLAuthFailed)
					}
					if !strings.Contains(err.Error(), "kafka.auth_failure_timeout") {
						t.Errorf("%q does not name kafka.auth_failure_timeout", err)
					}
				}
				if n := testutil.ToFloat64(c.m.kafkaAuthErrors.WithLabelValues(CauseSASLAuthFailed)); n == 0 {
					t.Error("no ferry_kafka_auth_errors_total counted")
				}
			})
		})
	}
}

// every is a failed (or successful) connection every step in [from, to).
func every(from, step, to time.Duration, fail bool) map[time.Duration]bool {
	out := map[time.Duration]bool{}
	for at := from; at < to; at += step {
		out[at] = fail
	}
	return out
}

func merge(a, b map[time.Duration]bool) map[time.Duration]bool {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func sortedKeys(m map[time.Duration]bool) []time.Duration { return slices.Sorted(maps.Keys(m)) }

// On a real client: with a session lifetime of 1.5 s, ferry re-authenticates
// on its connections instead of reconnecting; when the broker starts
// refusing the re-authentications (a password changed, a user deleted),
// ferry turns unhealthy at once and stops after kafka.auth_failure_timeout.
func TestRefusedReauthenticationStopsRun(t *testing.T) {
	t.Parallel()
	topic := "reauth"
	var reject atomic.Bool
	brokers := saslCluster(t, &reject, kfake.SeedTopics(2, topic),
		kfake.BrokerConfigs(map[string]string{"connections.max.reauth.ms": "1500"}))
	cfg := testConfig(brokers, topic)
	cfg.Kafka.SASL = config.SASL{Mechanism: "PLAIN", Username: "ferry", Password: "right"}
	cfg.Kafka.AuthFailureTimeout = 3 * time.Second
	reg := prometheus.NewRegistry()
	kin := newFakeKinesis()
	c, err := New(cfg, kin, WithLogger(quietLogger()), WithRegisterer(reg),
		WithKafkaOpts(kgo.FetchMaxWait(500*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(t.Context()) }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.SASL(plain.Auth{User: "ferry", Pass: "right"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 20 {
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(kin.snapshot()) < 20 || time.Now().Before(deadline.Add(-15*time.Second)) {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d of 20", len(kin.snapshot()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Five seconds of session lifetimes of 1.5 s on every connection.
	conns := testutil.ToFloat64(c.m.kafkaConnections)
	auths := testutil.ToFloat64(c.m.kafkaSASLAuths)
	t.Logf("after 5 s: %v connections, %v SASL authentications", conns, auths)
	if reauths := auths - conns; reauths < 2 {
		t.Errorf("%v re-authentications (%v authentications on %v connections), want some", reauths, auths, conns)
	}
	if !c.Healthy() || testutil.ToFloat64(c.m.kafkaAuthFailing) != 0 {
		t.Fatal("unhealthy while authentication works")
	}

	reject.Store(true)
	refused := time.Now()
	for c.Healthy() {
		if time.Since(refused) > 10*time.Second {
			t.Fatal("still healthy 10 s after the broker began refusing re-authentication")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("unhealthy %s after the refusals began", time.Since(refused).Round(time.Millisecond))
	if g := testutil.ToFloat64(c.m.kafkaAuthFailing); g != 1 {
		t.Errorf("ferry_kafka_auth_failing = %v while refused", g)
	}
	select {
	case err := <-done:
		took := time.Since(refused)
		var ke *KafkaError
		if !errors.Is(err, ErrFatal) || !errors.As(err, &ke) || ke.Cause != CauseSASLAuthFailed {
			t.Fatalf("Run = %v, want a fatal %s", err, CauseSASLAuthFailed)
		}
		// The refusal shows at the next re-authentication (within 1.5 s),
		// then lasts the timeout (3 s), checked each second; stopping
		// commits and leaves the group within a few more seconds.
		if took < cfg.Kafka.AuthFailureTimeout || took > 20*time.Second {
			t.Errorf("Run stopped %s after the refusals began", took)
		}
		t.Logf("Run stopped %s after the refusals began: %v", took.Round(time.Millisecond), err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop within 30 s of the refusals")
	}
	if n := testutil.ToFloat64(c.m.kafkaAuthErrors.WithLabelValues(CauseSASLAuthFailed)); n < 1 {
		t.Errorf("ferry_kafka_auth_errors_total{cause=%s} = %v", CauseSASLAuthFailed, n)
	}
}

// The brokers' own words, as franz-go passes them on.
const (
	brokerSASLFailed = "SASL_AUTHENTICATION_FAILED: SASL Authentication failed."
	brokerSASLState  = "ILLEGAL_SASL_STATE: Request is not valid given the current SASL state."
)
