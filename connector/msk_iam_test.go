package connector

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/ferrylabs/ferry/config"
)

// emptyPayloadHash is the SHA-256 of no bytes: the payload of the
// presigned GET / that an AWS_MSK_IAM payload is.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// mskConfig is a valid configuration using AWS_MSK_IAM.
func mskConfig(brokers ...string) config.Config {
	c := config.Default()
	c.Kafka.Brokers = brokers
	c.Kafka.Topics = []string{"orders"}
	c.Kafka.TLS.Enabled = true
	c.Kafka.SASL.Mechanism = config.SASLAWSMSKIAM
	c.Kinesis.Region = "eu-west-1"
	c.Routes = []config.Route{{Topics: []string{"orders"}, Stream: "orders"}}
	return c
}

// mechanismOf returns the SASL mechanism that KafkaClientOpts configured.
func mechanismOf(t *testing.T, opts []kgo.Opt) sasl.Mechanism {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	mechs, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism)
	if len(mechs) != 1 || mechs[0].Name() != "AWS_MSK_IAM" {
		t.Fatalf("SASL mechanisms %v, want AWS_MSK_IAM", mechs)
	}
	return mechs[0]
}

// checkPayload checks every field of an aws-msk-iam-auth payload and
// recomputes its signature with the SDK's v4 signer, independently of
// franz-go's own signing code. It returns the payload's fields.
func checkPayload(t reporter, payload []byte, host, region string, creds aws.Credentials) map[string]string {
	t.Helper()
	var p map[string]string
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatalf("payload is not a JSON object of strings: %v: %s", err, payload)
		return nil
	}
	want := []string{"action", "host", "user-agent", "version", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
		"x-amz-expires", "x-amz-signature", "x-amz-signedheaders"}
	if creds.SessionToken != "" {
		want = append(want, "x-amz-security-token")
	}
	slices.Sort(want)
	var keys []string
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, want) {
		t.Errorf("payload fields %v, want %v", keys, want)
	}
	date := p["x-amz-date"]
	signed, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		t.Fatalf("x-amz-date %q: %v", date, err)
		return nil
	}
	if d := time.Since(signed); d < -time.Minute || d > time.Minute {
		t.Errorf("x-amz-date %s is %s from now", date, d)
	}
	for k, v := range map[string]string{
		"version":             "2020_10_22",
		"host":                host,
		"action":              "kafka-cluster:Connect",
		"x-amz-algorithm":     "AWS4-HMAC-SHA256",
		"x-amz-credential":    creds.AccessKeyID + "/" + date[:8] + "/" + region + "/kafka-cluster/aws4_request",
		"x-amz-signedheaders": "host",
		"x-amz-expires":       "900",
	} {
		if p[k] != v {
			t.Errorf("%s = %q, want %q", k, p[k], v)
		}
	}
	if p["user-agent"] == "" {
		t.Errorf("user-agent is empty")
	}
	if creds.SessionToken != "" && p["x-amz-security-token"] != creds.SessionToken {
		t.Errorf("x-amz-security-token = %q, want the session token", p["x-amz-security-token"])
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p["x-amz-signature"]) {
		t.Errorf("x-amz-signature %q is not 64 hex digits", p["x-amz-signature"])
	}

	// The payload is a presigned GET / of the host, action and expiry as
	// query parameters, with an empty body.
	q := url.Values{"Action": {"kafka-cluster:Connect"}, "X-Amz-Expires": {"900"}}
	req, err := http.NewRequest(http.MethodGet, "https://"+host+"/?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
		return nil
	}
	uri, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, emptyPayloadHash, "kafka-cluster", region, signed)
	if err != nil {
		t.Fatal(err)
		return nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
		return nil
	}
	sdk := u.Query()
	for k, v := range map[string]string{
		"x-amz-signature": "X-Amz-Signature", "x-amz-credential": "X-Amz-Credential", "x-amz-date": "X-Amz-Date",
		"x-amz-signedheaders": "X-Amz-SignedHeaders", "x-amz-security-token": "X-Amz-Security-Token",
	} {
		if p[k] != sdk.Get(v) {
			t.Errorf("%s = %q; the SDK's v4 signer gives %q", k, p[k], sdk.Get(v))
		}
	}
	return p
}

// reporter is what checkPayload reports through: a *testing.T, or inside
// kfake's control functions (another goroutine) softT, which must not stop
// the goroutine.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Fatal(args ...any)
}

// softT turns Fatal into Error, for goroutines other than the test's.
type softT struct{ *testing.T }

func (s softT) Fatalf(format string, args ...any) { s.Errorf(format, args...) }
func (s softT) Fatal(args ...any)                 { s.Error(args...) }

// The payload AWS_MSK_IAM sends, field by field, with the signature
// recomputed by the SDK's signer: with static keys, with and without a
// session token, and with the credentials of an assumed role.
func TestMSKIAMPayload(t *testing.T) {
	const host = "b-1.ferry.abc123.c2.kafka.eu-west-1.amazonaws.com"
	tests := []struct {
		name  string
		setup func(*config.Config)
		creds func(*fakeSTS) aws.Credentials
	}{
		{"static keys", func(c *config.Config) {
			c.Kinesis.AccessKeyID, c.Kinesis.SecretAccessKey = "AKIAFERRYTEST", "ferry/secret+key"
		}, func(*fakeSTS) aws.Credentials {
			return aws.Credentials{AccessKeyID: "AKIAFERRYTEST", SecretAccessKey: "ferry/secret+key"}
		}},
		{"static keys with a session token", func(c *config.Config) {
			c.Kafka.SASL.AWS.AccessKeyID, c.Kafka.SASL.AWS.SecretAccessKey = "ASIAFERRYTEST", "s3cret"
			c.Kafka.SASL.AWS.SessionToken = "IQoJb3JpZ2luX2VjE+/token=="
		}, func(*fakeSTS) aws.Credentials {
			return aws.Credentials{AccessKeyID: "ASIAFERRYTEST", SecretAccessKey: "s3cret", SessionToken: "IQoJb3JpZ2luX2VjE+/token=="}
		}},
		{"assumed role", func(c *config.Config) {
			c.Kinesis.AccessKeyID, c.Kinesis.SecretAccessKey = "AKIAFERRYUSER", "user-secret"
			c.Kafka.SASL.AWS.RoleARN, c.Kafka.SASL.AWS.SessionName = testRoleARN, "ferry-msk"
		}, func(sts *fakeSTS) aws.Credentials {
			c := sts.Calls()[0]
			return aws.Credentials{AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey, SessionToken: c.Token}
		}},
	}
	sts := &fakeSTS{}
	srv := httptest.NewServer(http.HandlerFunc(sts.handle))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mskConfig(host + ":9098")
			tc.setup(&c)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			opts, err := KafkaClientOpts(t.Context(), c, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, payload, err := mechanismOf(t, opts).Authenticate(t.Context(), host+":9098")
			if err != nil {
				t.Fatal(err)
			}
			checkPayload(t, payload, host, "eu-west-1", tc.creds(sts))
		})
	}
}

// A refused AssumeRole for MSK fails KafkaClientOpts, with the STS error.
func TestMSKIAMRefusedRoleFailsFast(t *testing.T) {
	sts := &fakeSTS{externalID: testExternalID}
	srv := httptest.NewServer(http.HandlerFunc(sts.handle))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	c := mskConfig("b-1.ferry.abc123.c2.kafka.eu-west-1.amazonaws.com:9098")
	c.Kinesis.AccessKeyID, c.Kinesis.SecretAccessKey = "AKIAFERRYUSER", "user-secret"
	c.Kinesis.RoleARN, c.Kinesis.ExternalID = testRoleARN, "wrong"
	_, err := KafkaClientOpts(t.Context(), c, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "kafka_msk_iam credentials: assume role "+testRoleARN+": AccessDenied: ") {
		t.Fatalf("error = %v, want the refusal named", err)
	}
}

// saslAuth is one SaslAuthenticate the fake broker accepted.
type saslAuth struct {
	at      time.Time
	key     string
	session string // the role session the key was issued to
}

// The protocol, on kfake with the SASL requests answered by control
// functions: sessions that live 3 s make franz-go re-authenticate every
// connection about every 2 s, and assumed-role credentials that live 6 s are
// refreshed (a quarter of their lifetime early) about every 4.5 s. Over 10 s
// of produce, fetch and metadata traffic: many re-authentications, each with
// a valid signature and unexpired keys, one AssumeRole per expiry (not per
// authentication), and the same role session name throughout.
func TestMSKIAMReauthenticatesWithCachedStableCredentials(t *testing.T) {
	sts := &fakeSTS{lifetime: 6 * time.Second}
	srv := httptest.NewServer(http.HandlerFunc(sts.handle))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1") // the broker is 127.0.0.1: no region in its name
	t.Setenv("AWS_DEFAULT_REGION", "")

	serverTLS, caFile := selfSignedTLS(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"), kfake.TLS(serverTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	var (
		mu         sync.Mutex
		handshakes int
		auths      []saslAuth
	)
	cluster.ControlKey(int16(kmsg.SASLHandshake), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := kreq.(*kmsg.SASLHandshakeRequest)
		resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = []string{"AWS_MSK_IAM"}
		if req.Mechanism != "AWS_MSK_IAM" {
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		}
		mu.Lock()
		handshakes++
		mu.Unlock()
		return resp, nil, true
	})
	cluster.ControlKey(int16(kmsg.SASLAuthenticate), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := kreq.(*kmsg.SASLAuthenticateRequest)
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		var p map[string]string
		_ = json.Unmarshal(req.SASLAuthBytes, &p)
		key, _, _ := strings.Cut(p["x-amz-credential"], "/")
		call, ok := sts.byKey(key)
		if !ok {
			t.Errorf("authenticated with key %q, which STS never issued", key)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			return resp, nil, true
		}
		now := time.Now()
		if !now.Before(call.Expires) {
			t.Errorf("authenticated at %s with key %s that expired at %s", now.Format(time.StampMilli), key, call.Expires.Format(time.StampMilli))
		}
		checkPayload(softT{t}, req.SASLAuthBytes, "127.0.0.1", "us-east-1",
			aws.Credentials{AccessKeyID: call.AccessKey, SecretAccessKey: call.SecretKey, SessionToken: call.Token})
		mu.Lock()
		auths = append(auths, saslAuth{at: now, key: key, session: call.SessionName})
		mu.Unlock()
		resp.SessionLifetimeMillis = 3000
		resp.SASLAuthBytes = []byte(`{"version":"2020_10_22","request-id":"fake"}`)
		return resp, nil, true
	})

	c := mskConfig(cluster.ListenAddrs()...)
	c.Kafka.TLS.CAFile = caFile
	c.Kinesis.AccessKeyID, c.Kinesis.SecretAccessKey = "AKIAFERRYUSER", "user-secret"
	c.Kafka.SASL.AWS.RoleARN, c.Kafka.SASL.AWS.SessionName = testRoleARN, "ferry-msk"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	opts, err := KafkaClientOpts(t.Context(), c, m)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics("orders"), kgo.DefaultProduceTopic("orders"),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.RetryTimeout(5*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	start := time.Now()
	const run = 10 * time.Second
	consumed := 0
	for i := 0; time.Since(start) < run; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("produce after %s: %v", time.Since(start), err)
		}
		cancel()
		ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
		f := cl.PollFetches(ctx)
		cancel()
		consumed += f.NumRecords()
		if err := cl.Ping(t.Context()); err != nil {
			t.Fatalf("ping after %s: %v", time.Since(start), err)
		}
		select { // pace the traffic: requests on every connection, without spinning
		case <-t.Context().Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	calls := sts.Calls()
	keys := map[string]bool{}
	for _, a := range auths {
		keys[a.key] = true
		if a.session != "ferry-msk" {
			t.Errorf("authenticated as role session %q, want the configured ferry-msk", a.session)
		}
	}
	t.Logf("%s: %d handshakes, %d authentications with %d keys, %d AssumeRole calls, %d records consumed",
		elapsed.Round(time.Millisecond), handshakes, len(auths), len(keys), len(calls), consumed)
	if consumed == 0 {
		t.Error("nothing consumed over authenticated connections")
	}
	// Three connections (seed, produce, fetch) re-authenticating about
	// every 2 s for 10 s: far more authentications than AssumeRoles.
	if len(auths) < 8 {
		t.Errorf("%d authentications in %s: the connections did not re-authenticate", len(auths), elapsed)
	}
	if maxCalls := 2 + int(elapsed/(4500*time.Millisecond)); len(calls) > maxCalls || len(calls) < 2 {
		t.Errorf("%d AssumeRole calls in %s, want 2 to %d: one per expiry", len(calls), elapsed, maxCalls)
	}
	if len(keys) < 2 {
		t.Errorf("every authentication used one key: the credentials were not refreshed during the run")
	}
	for _, call := range calls {
		if call.SessionName != "ferry-msk" || call.RoleARN != testRoleARN {
			t.Errorf("AssumeRole %+v, want role %s session ferry-msk", call, testRoleARN)
		}
	}
	if r, e := credCounts(t, m, CredentialsMSKIAM); int(r) != len(calls) || e != 0 {
		t.Errorf("ferry_credential_refreshes_total = %v, errors %v; want %d, 0", r, e, len(calls))
	}
}

// selfSignedTLS returns a server TLS config for 127.0.0.1 and the path of
// its certificate as a CA file.
func selfSignedTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, caFile
}
