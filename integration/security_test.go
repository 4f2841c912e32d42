//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// The secured broker (harness.SharedSecuredKafka) is a second broker, started on first use, so
// the plaintext suite keeps its broker as it was. Setup, produce and the offset checks go through
// its PLAINTEXT listener (e.brokers); ferry connects only to a secured one.

// secured is one way for ferry to connect to the secured broker.
type secured struct {
	name string
	addr func(*harness.SecuredKafka) string
	yaml func(*harness.SecuredKafka) string // the kafka.tls and kafka.sasl keys, indented under kafka:
}

func saslYAML(mechanism, user, password string) func(*harness.SecuredKafka) string {
	return func(s *harness.SecuredKafka) string {
		return fmt.Sprintf("  tls: {enabled: true, ca_file: %q}\n  sasl: {mechanism: %s, username: %q, password: %q}\n",
			s.Certs.CA, mechanism, user, password)
	}
}

func saslAddr(s *harness.SecuredKafka) string { return s.SASL }
func mtlsAddr(s *harness.SecuredKafka) string { return s.MTLS }

var securedModes = []secured{
	{"SASL_SSL SCRAM-SHA-256", saslAddr, saslYAML("SCRAM-SHA-256", harness.SASLUser, harness.SASLPassword)},
	{"SASL_SSL SCRAM-SHA-512", saslAddr, saslYAML("SCRAM-SHA-512", harness.SASLUser, harness.SASLPassword)},
	{"SASL_SSL PLAIN", saslAddr, saslYAML("PLAIN", harness.SASLUser, harness.SASLPassword)},
	{"SSL mTLS", mtlsAddr, func(s *harness.SecuredKafka) string {
		return fmt.Sprintf("  tls: {enabled: true, ca_file: %q, cert_file: %q, key_file: %q}\n",
			s.Certs.CA, s.Certs.ClientCert, s.Certs.ClientKey)
	}},
}

// newSecuredEnv is newEnv on the secured broker.
func newSecuredEnv(t *testing.T, partitions, shards int32) (*env, *harness.SecuredKafka) {
	t.Helper()
	s, err := harness.SharedSecuredKafka(t.Context())
	harness.Require(t, err)
	return newEnvOn(t, s.Kafka, harness.KindMock, 1, partitions, shards), s
}

// securedConfig is e.config("") connecting to addr with the given TLS and SASL keys; extra
// lines go under kafka: too.
func (e *env) securedConfig(addr, kafkaYAML, extra string) string {
	e.t.Helper()
	path := e.config("")
	plain := fmt.Sprintf("  brokers: [%q]\n", e.brokers[0])
	body := readFile(e.t, path)
	if !strings.Contains(body, plain) {
		e.t.Fatalf("config has no %q line:\n%s", plain, body)
	}
	body = strings.Replace(body, plain, fmt.Sprintf("  brokers: [%q]\n", addr)+kafkaYAML+extra, 1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// exec runs `ferry cmd --config cfg` to its end (within a minute) and returns its exit code, its
// whole output and how long it took.
func (e *env) exec(t *testing.T, cmd, cfg string) (int, string, time.Duration) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), cmd+".log")
	start := time.Now()
	p, err := harness.Start(t.Context(), e.bin, []string{cmd, "--config", cfg}, os.Environ(), logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	code, err := p.Wait(time.Minute)
	if err != nil {
		t.Fatalf("ferry %s: %v\n%s", cmd, err, p.Tail())
	}
	return code, readFile(t, logPath), time.Since(start)
}

// (S1) Each secured mode end to end: ferry check passes, every record reaches kinesis-mock exactly
// once, the group's commits reach the end offsets, and no connection was refused.
func TestSecuredEndToEnd(t *testing.T) {
	for _, mode := range securedModes {
		t.Run(strings.NewReplacer(" ", "_", "-", "").Replace(mode.name), func(t *testing.T) {
			e, s := newSecuredEnv(t, 3, 2)
			produced := e.produce(scale(1500), 100, 128)
			cfg := e.securedConfig(mode.addr(s), mode.yaml(s), "")
			if code, out, _ := e.exec(t, "check", cfg); code != 0 || !strings.Contains(out, "all checks passed") {
				t.Fatalf("ferry check: exit %d\n%s", code, out)
			}
			start := time.Now()
			p := e.start(cfg, "ferry")
			e.waitCommitted(-1, 2*time.Minute, p)
			t.Logf("%s: %d records committed in %s", mode.name, len(produced), time.Since(start).Round(time.Millisecond))
			if code, body := httpGet(t, p, "/healthz"); code != 200 {
				t.Errorf("/healthz = %d %s", code, body)
			}
			_, metrics := httpGet(t, p, "/metrics")
			if n := metric(metrics, "ferry_kafka_auth_errors_total"); n != 0 {
				t.Errorf("ferry_kafka_auth_errors_total = %v on good settings", n)
			}
			if n := metric(metrics, "ferry_kafka_auth_failing"); n != 0 {
				t.Errorf("ferry_kafka_auth_failing = %v on good settings", n)
			}
			conns, auths := metric(metrics, "ferry_kafka_connections_total"), metric(metrics, "ferry_kafka_sasl_authentications_total")
			t.Logf("%v connections, %v SASL authentications", conns, auths)
			if conns == 0 {
				t.Error("ferry_kafka_connections_total = 0")
			}
			if strings.HasPrefix(mode.name, "SASL") && auths < conns {
				t.Errorf("%v SASL authentications for %v connections", auths, conns)
			}
			e.stop(p)
			r := e.readBack(produced)
			assertNoLoss(t, r)
			if len(r.dups) > 0 || r.read != r.produced {
				t.Fatalf("want exactly once: %s", r)
			}
		})
	}
}

// (S2) Bad settings fail fast, in ferry check and in ferry run, with the same words naming the
// cause and the keys to change. ferry run exits 1 before joining the group, and never says it
// stopped cleanly.
func TestSecuredBadSettingsFailFast(t *testing.T) {
	e, s := newSecuredEnv(t, 1, 1)
	cases := []struct {
		name string
		addr string
		yaml string
		// cause is the start of the hint both commands print.
		cause string
	}{
		{"wrong password", s.SASL, saslYAML("SCRAM-SHA-256", harness.SASLUser, "not-the-password")(s),
			`SASL authentication failed: the broker refused kafka.sasl.username "alice" with kafka.sasl.password for kafka.sasl.mechanism SCRAM-SHA-256`},
		{"unknown CA", s.SASL, fmt.Sprintf("  tls: {enabled: true, ca_file: %q}\n  sasl: {mechanism: SCRAM-SHA-512, username: alice, password: alice-secret}\n", s.Certs.OtherCA),
			"TLS failed: the broker's certificate is not signed by a CA ferry trusts (kafka.tls.ca_file " + s.Certs.OtherCA + ")"},
		{"missing client certificate", s.MTLS, fmt.Sprintf("  tls: {enabled: true, ca_file: %q}\n", s.Certs.CA),
			"TLS failed: the broker requires a client certificate (mTLS); set kafka.tls.cert_file and kafka.tls.key_file"},
		{"client certificate of another CA", s.MTLS, fmt.Sprintf("  tls: {enabled: true, ca_file: %q, cert_file: %q, key_file: %q}\n",
			s.Certs.CA, s.Certs.OtherClientCert, s.Certs.OtherClientKey),
			"TLS failed: the broker refused the client certificate kafka.tls.cert_file " + s.Certs.OtherClientCert},
		{"server name mismatch", s.SASL, fmt.Sprintf("  tls: {enabled: true, ca_file: %q, server_name: kafka.example.com}\n  sasl: {mechanism: PLAIN, username: alice, password: alice-secret}\n", s.Certs.CA),
			`TLS failed: the broker's certificate is not valid for kafka.tls.server_name "kafka.example.com"`},
		{"plaintext to the TLS port", s.SASL, "",
			"the broker expects TLS on this port: set kafka.tls.enabled: true"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cfg := e.securedConfig(tc.addr, tc.yaml, "")
			code, out, took := e.exec(t, "check", cfg)
			t.Logf("ferry check: exit %d in %s", code, took.Round(time.Millisecond))
			if code != 1 || !strings.Contains(out, "[FAIL] kafka brokers") || !strings.Contains(out, tc.cause) {
				t.Errorf("ferry check: exit %d, want 1 and %q:\n%s", code, tc.cause, out)
			}
			if took > 5*time.Second {
				t.Errorf("ferry check took %s", took)
			}
			code, out, took = e.exec(t, "run", cfg)
			t.Logf("ferry run: exit %d in %s", code, took.Round(time.Millisecond))
			// The same words, in a JSON log line.
			quoted, _ := json.Marshal(tc.cause)
			if code != 1 || !strings.Contains(out, strings.Trim(string(quoted), `"`)) {
				t.Errorf("ferry run: exit %d, want 1 and %q:\n%s", code, tc.cause, out)
			}
			if strings.Contains(out, "stopped cleanly") {
				t.Errorf("ferry run says it stopped cleanly:\n%s", out)
			}
			if took > 10*time.Second {
				t.Errorf("ferry run took %s to give up", took)
			}
		})
	}
	if committed := e.committed(); total(committed) != 0 {
		t.Errorf("a failed start committed %v", committed)
	}
}

// (S3) A password changed while ferry runs: the next re-authentication (SCRAM-SHA-512 sessions
// last harness.ReauthInterval) is refused; /healthz turns 503, the failing gauge and the error
// counter show it, ferry logs it, and once it has lasted kafka.auth_failure_timeout ferry exits 1
// naming the cause. What was delivered before stays committed.
func TestSecuredPasswordChangedWhileRunning(t *testing.T) {
	e, s := newSecuredEnv(t, 2, 1)
	user := fmt.Sprintf("bob-%d", rand.IntN(1e6))
	if err := s.UpsertSCRAMUser(t.Context(), "SCRAM-SHA-512", user, "first-password"); err != nil {
		t.Fatal(err)
	}
	produced := e.produce(scale(500), 50, 64)
	const timeout = 8 * time.Second
	p := e.start(e.securedConfig(s.SASL, saslYAML("SCRAM-SHA-512", user, "first-password")(s),
		fmt.Sprintf("  auth_failure_timeout: %s\n", timeout)), "ferry")
	e.waitCommitted(-1, 2*time.Minute, p)

	if err := s.UpsertSCRAMUser(t.Context(), "SCRAM-SHA-512", user, "second-password"); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	var unhealthy time.Duration
	for unhealthy == 0 {
		if p.Exited() {
			t.Fatalf("ferry exited before /healthz reported the failure:\n%s", p.Tail())
		}
		if code, _ := httpGet(t, p, "/healthz"); code != 200 {
			unhealthy = time.Since(changed)
			break
		}
		if time.Since(changed) > 3*harness.ReauthInterval {
			t.Fatalf("/healthz still 200 %s after the password changed", time.Since(changed))
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, metrics := httpGet(t, p, "/metrics")
	t.Logf("/healthz 503 %s after the password changed", unhealthy.Round(time.Millisecond))
	if g := metric(metrics, "ferry_kafka_auth_failing"); g != 1 {
		t.Errorf("ferry_kafka_auth_failing = %v while refused", g)
	}
	if n := metric(metrics, "ferry_kafka_auth_errors_total", `cause="sasl_authentication_failed"`); n < 1 {
		t.Errorf("ferry_kafka_auth_errors_total{cause=\"sasl_authentication_failed\"} = %v", n)
	}
	code, err := p.Wait(timeout + 3*harness.ReauthInterval + 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(changed)
	t.Logf("ferry exited %d, %s after the password changed", code, took.Round(time.Millisecond))
	log := readFile(t, p.LogPath())
	for _, want := range []string{
		"kafka broker connection failing: authentication or TLS refused",
		"sasl_authentication_failed",
		"kafka.auth_failure_timeout",
		fmt.Sprintf(`kafka.sasl.username \"%s\"`, user),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	if code != 1 || strings.Contains(log, "stopped cleanly") {
		t.Fatalf("ferry exited %d, want 1 without a clean stop:\n%s", code, p.Tail())
	}
	if took < timeout {
		t.Errorf("ferry stopped %s after the change, before kafka.auth_failure_timeout %s", took, timeout)
	}
	r := e.readBack(produced)
	assertNoLoss(t, r)
}

// (S4) SASL re-authentication (KIP-368): SCRAM-SHA-512 sessions last harness.ReauthInterval, and
// a run of more than five of them, with records arriving throughout, delivers everything while
// ferry re-authenticates on its connections instead of opening new ones.
func TestSecuredReauthentication(t *testing.T) {
	e, s := newSecuredEnv(t, 3, 2)
	cfg := e.securedConfig(s.SASL, saslYAML("SCRAM-SHA-512", harness.SASLUser, harness.SASLPassword)(s), "")
	p := e.start(cfg, "ferry")
	run := 6*harness.ReauthInterval + harness.ReauthInterval/2
	start := time.Now()
	var produced []harness.Produced
	for i := 0; time.Since(start) < run; i++ {
		produced = append(produced, e.produceFrom(i*scale(50), (i+1)*scale(50), 40, 128)...)
		if p.Exited() {
			t.Fatalf("ferry exited:\n%s", p.Tail())
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.waitCommitted(-1, 2*time.Minute, p)
	_, metrics := httpGet(t, p, "/metrics")
	conns := metric(metrics, "ferry_kafka_connections_total")
	auths := metric(metrics, "ferry_kafka_sasl_authentications_total")
	reauths := auths - conns
	t.Logf("%s run, %d records: %v connections, %v SASL authentications, so %v re-authentications",
		time.Since(start).Round(time.Second), len(produced), conns, auths, reauths)
	if n := metric(metrics, "ferry_kafka_auth_errors_total"); n != 0 {
		t.Errorf("ferry_kafka_auth_errors_total = %v", n)
	}
	// The fetch connection alone re-authenticates every period; a client that reconnected instead
	// would show one connection per period per connection and no re-authentication.
	if reauths < 5 {
		t.Errorf("%v re-authentications in %s of %s sessions, want at least 5", reauths, run, harness.ReauthInterval)
	}
	if conns > 10 {
		t.Errorf("%v connections in %s: a reconnect storm", conns, run)
	}
	e.stop(p)
	r := e.readBack(produced)
	assertNoLoss(t, r)
	if len(r.dups) > 0 {
		t.Errorf("re-authentication caused %d duplicates", len(r.dups))
	}
}
