package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The secured broker's fixed credentials: SASLUser has this password for SCRAM-SHA-256,
// SCRAM-SHA-512 (created when the broker starts) and PLAIN (in the listener's JAAS config).
const (
	SASLUser     = "alice"
	SASLPassword = "alice-secret"
)

// ReauthInterval is the SASL session lifetime the secured broker gives SCRAM-SHA-512 logins
// (connections.max.reauth.ms on the SASL_SSL listener): clients must re-authenticate that
// often (KIP-368), or the broker closes the connection. The other mechanisms have no limit.
const ReauthInterval = 5 * time.Second

// SecuredKafka is a single-node broker with secured listeners beside the plaintext one:
//
//	PLAINTEXT  Brokers(): no TLS, no SASL; the controller and inter-broker traffic, and the
//	           harness's own setup (topics, produce, offsets, SCRAM users)
//	SASL_SSL   SASL: TLS (server certificate only) plus SASL SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN
//	SSL        MTLS: TLS that requires a client certificate signed by Certs.CA
//
// The certificates are generated at start (GenerateCerts) into DIR/certs.
type SecuredKafka struct {
	*Kafka
	SASL  string // host:port of the SASL_SSL listener
	MTLS  string // host:port of the SSL listener with ssl.client.auth=required
	Certs Certs
}

// StartSecuredKafka starts a secured broker whose data, config, certificates and log live in dir
// ("" means a new temporary folder), creates the SCRAM users and waits until each mechanism logs
// in. It needs the local jars and Java (no Docker fallback, no FERRY_TEST_KAFKA): without them it
// returns an error wrapping ErrUnavailable. About as slow to start as StartKafka.
func StartSecuredKafka(ctx context.Context, dir string) (*SecuredKafka, error) {
	repo, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	jars, _ := filepath.Glob(filepath.Join(cacheDir(repo), "kafka", "libs", "kafka_2.13-*.jar"))
	if _, err := lookJava(); err != nil || len(jars) == 0 {
		return nil, fmt.Errorf("start secured kafka: no jars in %s or no java: %w",
			filepath.Join(cacheDir(repo), "kafka", "libs"), ErrUnavailable)
	}
	dir, err = makeDir(dir, "ferry-kafka-secured-")
	if err != nil {
		return nil, err
	}
	certs, err := GenerateCerts(filepath.Join(dir, "certs"))
	if err != nil {
		return nil, fmt.Errorf("secured kafka certificates: %w", err)
	}
	saslPort, mtlsPort := FreePort(), FreePort()
	for mtlsPort == saslPort {
		mtlsPort = FreePort()
	}
	props := []string{
		"sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
		"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
		"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
		fmt.Sprintf("listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_%s=%q;", SASLUser, SASLPassword),
		"listener.name.sasl_ssl.scram-sha-512.connections.max.reauth.ms=" + strconv.FormatInt(ReauthInterval.Milliseconds(), 10),
		"ssl.keystore.type=PEM",
		"ssl.keystore.location=" + certs.BrokerKeystore,
		"ssl.truststore.type=PEM",
		"ssl.truststore.location=" + certs.CA,
		"listener.name.mtls.ssl.client.auth=required",
	}
	if extra := os.Getenv("FERRY_TEST_KAFKA_PROPERTIES"); extra != "" {
		props = append([]string{extra}, props...)
	}
	k := &Kafka{dir: dir, mode: "local", env: []string{
		fmt.Sprintf("FERRY_TEST_KAFKA_LISTENERS=SASL_SSL:SASL_SSL:%d,MTLS:SSL:%d", saslPort, mtlsPort),
		"FERRY_TEST_KAFKA_PROPERTIES=" + strings.Join(props, "\n"),
	}}
	if err := k.Start(ctx); err != nil {
		return nil, err
	}
	s := &SecuredKafka{
		Kafka: k,
		SASL:  "127.0.0.1:" + strconv.Itoa(saslPort),
		MTLS:  "127.0.0.1:" + strconv.Itoa(mtlsPort),
		Certs: certs,
	}
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		if err := s.UpsertSCRAMUser(ctx, mech, SASLUser, SASLPassword); err != nil {
			k.Close()
			return nil, err
		}
	}
	if err := s.waitLogin(ctx, "PLAIN", SASLUser, SASLPassword); err != nil {
		k.Close()
		return nil, err
	}
	return s, nil
}

// UpsertSCRAMUser creates user (or sets its password) for mechanism (SCRAM-SHA-256 or
// SCRAM-SHA-512) through the plaintext listener, then waits until that login succeeds on the
// SASL listener: the broker applies new credentials asynchronously.
func (s *SecuredKafka) UpsertSCRAMUser(ctx context.Context, mechanism, user, password string) error {
	mech := kadm.ScramSha256
	if mechanism == "SCRAM-SHA-512" {
		mech = kadm.ScramSha512
	}
	adm, done, err := admin(s.Brokers())
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: mech, Iterations: 4096, Password: password}})
	if err == nil {
		err = resp[user].Err
	}
	if err != nil {
		return fmt.Errorf("create %s user %s: %w", mechanism, user, err)
	}
	return s.waitLogin(ctx, mechanism, user, password)
}

// waitLogin retries a SASL login on the SASL listener for up to 30 s.
func (s *SecuredKafka) waitLogin(ctx context.Context, mechanism, user, password string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := s.tryLogin(ctx, mechanism, user, password)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s login as %s on %s: %w (last error: %w)", mechanism, user, s.SASL, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *SecuredKafka) tryLogin(ctx context.Context, mechanism, user, password string) error {
	tc, err := s.ClientTLS(false)
	if err != nil {
		return err
	}
	var m sasl.Mechanism
	switch mechanism {
	case "PLAIN":
		m = plain.Auth{User: user, Pass: password}.AsMechanism()
	case "SCRAM-SHA-256":
		m = scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	default:
		return fmt.Errorf("unknown SASL mechanism %q", mechanism)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.SASL), kgo.DialTLSConfig(tc), kgo.SASL(m))
	if err != nil {
		return err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return cl.Ping(pctx)
}

// ClientTLS is a TLS configuration that trusts Certs.CA and, when withCert is set, presents the
// client certificate: what a client of the SASL (withCert false) or MTLS (true) listener needs.
func (s *SecuredKafka) ClientTLS(withCert bool) (*tls.Config, error) {
	pemCA, err := os.ReadFile(s.Certs.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, errors.New("no certificate in " + s.Certs.CA)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(s.Certs.ClientCert, s.Certs.ClientKey)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

var sharedSecured struct {
	mu    sync.Mutex
	kafka *SecuredKafka
	dir   string
}

// SharedSecuredKafka returns the test binary's shared secured broker, starting it on first use.
// harness.Main (CloseShared) stops it. Tests must not change SASLUser's credentials; they create
// their own users with UpsertSCRAMUser.
func SharedSecuredKafka(ctx context.Context) (*SecuredKafka, error) {
	sharedSecured.mu.Lock()
	defer sharedSecured.mu.Unlock()
	if sharedSecured.kafka != nil {
		return sharedSecured.kafka, nil
	}
	dir, err := os.MkdirTemp("", "ferry-kafka-secured-")
	if err != nil {
		return nil, err
	}
	s, err := StartSecuredKafka(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	sharedSecured.kafka, sharedSecured.dir = s, dir
	return s, nil
}

func closeSharedSecured() {
	sharedSecured.mu.Lock()
	defer sharedSecured.mu.Unlock()
	if sharedSecured.kafka != nil {
		sharedSecured.kafka.Close()
		_ = os.RemoveAll(sharedSecured.dir)
		sharedSecured.kafka = nil
	}
}
