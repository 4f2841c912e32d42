//go:build integration

// AWS credentials against moto, a third emulator that speaks STS, IAM and
// Kinesis and checks signatures: ferry assumes roles (with external ids),
// takes web identity (IRSA) and container (EKS Pod Identity) credentials from
// the SDK's default chain, refreshes them before they expire, and fails at
// start, naming the STS error, when a role refuses it. A guard in front of
// moto records what ferry asks STS, and rejects Kinesis requests signed with
// expired keys the way AWS does, which moto does not.
package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// stsCall is one STS request the guard passed to moto.
type stsCall struct {
	Action, RoleARN, Session, ExternalID, Token string
	Duration                                    int
	Status                                      int
	Key                                         string // the access key issued, on success
}

// awsGuard is a reverse proxy in front of moto for STS and Kinesis.
//   - It records every STS call and the keys it issued, and when lifetime is
//     set it shortens their Expiration to now+lifetime (an STS that grants
//     short sessions), then holds Kinesis to that expiry: a request signed
//     with an expired key gets ExpiredTokenException, as from AWS.
//   - It signs AssumeRoleWithWebIdentity (which the SDK sends unsigned) with
//     the moto user's keys, because moto 5.2.5 answers any unsigned request
//     with a 500 once its signature checks are on. The parameters, the token
//     included, are ferry's own.
type awsGuard struct {
	moto     *harness.Moto
	target   string
	lifetime time.Duration
	srv      *httptest.Server

	mu          sync.Mutex
	sts         []stsCall
	expires     map[string]time.Time // issued key -> expiry the guard enforces
	kinesisKeys map[string]int       // key -> Kinesis requests signed with it
	rejected    int                  // Kinesis requests refused for an expired key
}

func newAWSGuard(t *testing.T, moto *harness.Moto, lifetime time.Duration) *awsGuard {
	t.Helper()
	g := &awsGuard{moto: moto, target: moto.Endpoint(), lifetime: lifetime,
		expires: map[string]time.Time{}, kinesisKeys: map[string]int{}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *awsGuard) URL() string { return g.srv.URL }

var credentialKey = regexp.MustCompile(`Credential=([^/,\s]+)/`)

func (g *awsGuard) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := ""
	if m := credentialKey.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		key = m[1]
	}
	var form url.Values
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, _ = url.ParseQuery(string(body))
	}
	action := form.Get("Action")
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "Kinesis_20131202.") {
		g.mu.Lock()
		exp, issued := g.expires[key]
		expired := issued && !time.Now().Before(exp)
		if expired {
			g.rejected++
		} else {
			g.kinesisKeys[key]++
		}
		g.mu.Unlock()
		if expired {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}`)
			return
		}
	}

	out, err := http.NewRequestWithContext(r.Context(), r.Method, g.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host // the signature covers the host ferry sent to
	if action == "AssumeRoleWithWebIdentity" && key == "" {
		if err := harness.MotoSign(r.Context(), out, g.moto.UserCredentials(), "sts"); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)

	if action == "AssumeRole" || action == "AssumeRoleWithWebIdentity" {
		call := stsCall{Action: action, RoleARN: form.Get("RoleArn"), Session: form.Get("RoleSessionName"),
			ExternalID: form.Get("ExternalId"), Token: form.Get("WebIdentityToken"), Status: resp.StatusCode}
		call.Duration, _ = strconv.Atoi(form.Get("DurationSeconds"))
		if resp.StatusCode == http.StatusOK {
			respBody, call.Key = g.issued(respBody)
		}
		g.mu.Lock()
		g.sts = append(g.sts, call)
		g.mu.Unlock()
	}
	for k, v := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

var (
	accessKeyTag  = regexp.MustCompile(`<AccessKeyId>([^<]*)</AccessKeyId>`)
	expirationTag = regexp.MustCompile(`<Expiration>([^<]*)</Expiration>`)
)

// issued records the key of an STS answer and, with a lifetime, shortens its
// expiry.
func (g *awsGuard) issued(body []byte) ([]byte, string) {
	key, expiration := accessKeyTag.FindSubmatch(body), expirationTag.FindSubmatch(body)
	if key == nil || expiration == nil {
		return body, ""
	}
	exp, _ := time.Parse(time.RFC3339, string(expiration[1]))
	if g.lifetime > 0 {
		exp = time.Now().Add(g.lifetime).UTC().Truncate(time.Second)
		body = expirationTag.ReplaceAll(body, []byte("<Expiration>"+exp.Format(time.RFC3339)+"</Expiration>"))
	}
	g.mu.Lock()
	g.expires[string(key[1])] = exp
	g.mu.Unlock()
	return body, string(key[1])
}

func (g *awsGuard) stsCalls() []stsCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]stsCall(nil), g.sts...)
}

// kinesisSigners returns the keys Kinesis requests were signed with, and how
// many were rejected as expired.
func (g *awsGuard) kinesisSigners() (map[string]int, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	keys := make(map[string]int, len(g.kinesisKeys))
	for k, n := range g.kinesisKeys {
		keys[k] = n
	}
	return keys, g.rejected
}

// credEnv is one credentials test: the shared broker, moto, a guard, a
// topic and a stream.
type credEnv struct {
	*env
	moto  *harness.Moto
	guard *awsGuard
}

func newCredEnv(t *testing.T, lifetime time.Duration) *credEnv {
	t.Helper()
	k, err := harness.SharedKafka(t.Context())
	harness.Require(t, err)
	moto, err := harness.SharedMoto(t.Context())
	harness.Require(t, err)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + strconv.Itoa(rand.IntN(1e6))
	e := &env{t: t, kafka: k, brokers: k.Brokers(), kc: moto.KinesisClient(), bin: harness.BuildBinary(t, "./cmd/ferry"),
		name: name, stream: name, group: "ferry-" + name, topics: []string{name + ".t0"}}
	if err := harness.CreateTopic(t.Context(), e.brokers, e.topics[0], 2); err != nil {
		t.Fatal(err)
	}
	if err := harness.CreateStream(t.Context(), e.kc, e.stream, 2); err != nil {
		t.Fatal(err)
	}
	return &credEnv{env: e, moto: moto, guard: newAWSGuard(t, moto, lifetime)}
}

// config writes a ferry configuration whose kinesis block is kinesisYAML
// (region and endpoint are added), pointed at the guard.
func (c *credEnv) config(kinesisYAML string) string {
	c.t.Helper()
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  group: %s
  topics: [%q]
  session_timeout: 6s
  rebalance_timeout: 20s
kinesis:
  region: us-east-1
  endpoint: %s
%sroutes:
  - topics: [%q]
    stream: %s
delivery:
  batch: {linger: 20ms}
  retry: {initial: 50ms, max: 1s}
  drain_timeout: 10s
  request_timeout: 10s
  rate_limit: {enabled: false}
commit:
  interval: 200ms
observability:
  listen: "127.0.0.1:0"
  log_level: debug
  log_format: json
`, c.brokers[0], c.group, c.topics[0], c.guard.URL(), kinesisYAML, c.topics[0], c.stream)
	path := filepath.Join(c.t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// userKeys is the kinesis YAML for the moto user's static keys.
func (c *credEnv) userKeys() string {
	return fmt.Sprintf("  access_key_id: %s\n  secret_access_key: %q\n", c.moto.AccessKey, c.moto.SecretKey)
}

// awsEnv isolates ferry from this machine's AWS settings and points STS at
// the guard; extra entries come last and win.
func (c *credEnv) awsEnv(extra ...string) []string {
	dir := c.t.TempDir()
	return append([]string{
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_REGION=",
		"AWS_DEFAULT_REGION=", "AWS_ROLE_ARN=", "AWS_WEB_IDENTITY_TOKEN_FILE=", "AWS_ROLE_SESSION_NAME=",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN=", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_KINESIS=",
		"AWS_ENDPOINT_URL_STS=" + c.guard.URL(),
	}, extra...)
}

// exec runs a ferry command to its end and returns the exit code, the output
// and how long it took.
func (c *credEnv) exec(cmd, cfg string, env []string) (int, string, time.Duration) {
	c.t.Helper()
	logPath := filepath.Join(c.t.TempDir(), cmd+".log")
	start := time.Now()
	p, err := harness.Start(c.t.Context(), c.bin, []string{cmd, "--config", cfg}, env, logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	defer p.Close()
	code, err := p.Wait(time.Minute)
	if err != nil {
		c.t.Fatalf("ferry %s: %v\n%s", cmd, err, p.Tail())
	}
	return code, readFile(c.t, logPath), time.Since(start)
}

// deliver produces n records, runs ferry until all are committed, stops it,
// reads the stream back from moto and checks nothing was lost. It returns
// the last /metrics scrape before the stop.
func (c *credEnv) deliver(cfg string, env []string, n int) string {
	c.t.Helper()
	produced := c.produce(n, 17, 64)
	p := c.startWithEnv(cfg, "ferry", env)
	c.waitCommitted(int64(n), 90*time.Second, p)
	_, metrics := httpGet(c.t.(*testing.T), p, "/metrics")
	c.stop(p)
	r := c.readBack(produced)
	assertNoLoss(c.t.(*testing.T), r)
	return metrics
}

func (c *credEnv) startWithEnv(cfg, name string, env []string) *harness.Process {
	c.t.Helper()
	return startFerry(c.t, c.bin, []string{"run", "--config", cfg}, env, name)
}

// signersFrom checks that every Kinesis request was signed with a key from
// an STS call of action (for role, with session), and returns those keys.
func (c *credEnv) signersFrom(action, role, session string) map[string]bool {
	c.t.Helper()
	issued := map[string]bool{}
	for _, call := range c.guard.stsCalls() {
		if call.Action == action && call.RoleARN == role && call.Session == session && call.Key != "" {
			issued[call.Key] = true
		}
	}
	keys, rejected := c.guard.kinesisSigners()
	if len(keys) == 0 {
		c.t.Fatal("no Kinesis request went through the guard")
	}
	for k, n := range keys {
		if !issued[k] {
			c.t.Errorf("%d Kinesis requests signed with %s, not a key %s issued for %s session %s", n, k, action, role, session)
		}
	}
	if rejected > 0 {
		c.t.Errorf("%d Kinesis requests signed with expired keys", rejected)
	}
	return issued
}

// (a) The moto user assumes the role with the right external id; records
// reach moto's Kinesis signed with the role's keys, from one AssumeRole
// with the configured session name and duration.
func TestAssumeRoleWithExternalIDDelivers(t *testing.T) {
	c := newCredEnv(t, 0)
	cfg := c.config(c.userKeys() + fmt.Sprintf("  role_arn: %s\n  external_id: %s\n  session_name: ferry-it\n  role_duration: 20m\n",
		c.moto.RoleARN, c.moto.ExternalID))
	env := c.awsEnv()
	if code, out, _ := c.exec("check", cfg, env); code != 0 || !strings.Contains(out, "all checks passed") {
		t.Fatalf("ferry check: exit %d\n%s", code, out)
	}
	metrics := c.deliver(cfg, env, 300)

	c.signersFrom("AssumeRole", c.moto.RoleARN, "ferry-it")
	var runCalls []stsCall
	for _, call := range c.guard.stsCalls() {
		if call.ExternalID != c.moto.ExternalID || call.Duration != 1200 || call.Status != http.StatusOK {
			t.Errorf("AssumeRole %+v, want external id %s, 1200 s, 200", call, c.moto.ExternalID)
		}
		runCalls = append(runCalls, call)
	}
	// One for ferry check, one for ferry run: the run's credentials were
	// fetched at start and reused by every request.
	if len(runCalls) != 2 {
		t.Errorf("%d AssumeRole calls for check and run, want 2", len(runCalls))
	}
	if got := metric(metrics, "ferry_credential_refreshes_total", `source="kinesis"`); got != 1 {
		t.Errorf("ferry_credential_refreshes_total{source=kinesis} = %v, want 1", got)
	}
	// The source's series exists from its first fetch, so a 0 here is a
	// count, not a metric that was never wired.
	if !strings.Contains(metrics, `ferry_credential_errors_total{source="kinesis"} 0`) {
		t.Errorf("want ferry_credential_errors_total{source=\"kinesis\"} 0 in:\n%s", metricLines(metrics, "ferry_credential_errors_total"))
	}
}

// (b, c) A wrong external id or a role that does not trust the user stops
// ferry run and fails ferry check at once, naming the STS error, without
// retrying in a loop.
func TestRefusedRoleFailsFast(t *testing.T) {
	c := newCredEnv(t, 0)
	tests := []struct {
		name, role, externalID string
	}{
		{"wrong external id", c.moto.RoleARN, "not-" + c.moto.ExternalID},
		{"untrusted role", c.moto.UntrustedRoleARN, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kin := c.userKeys() + "  role_arn: " + tc.role + "\n"
			if tc.externalID != "" {
				kin += "  external_id: " + tc.externalID + "\n"
			}
			cfg := c.config(kin)
			cause := "assume role " + tc.role + ": AccessDenied: User: " + c.moto.UserARN +
				" is not authorized to perform: sts:AssumeRole"
			before := len(c.guard.stsCalls())

			code, out, took := c.exec("check", cfg, c.awsEnv())
			t.Logf("ferry check: exit %d in %s", code, took.Round(time.Millisecond))
			if code != 1 || !strings.Contains(out, "[FAIL] kinesis client: kinesis credentials: "+cause) {
				t.Errorf("ferry check: exit %d, want 1 and %q:\n%s", code, cause, out)
			}
			code, out, took = c.exec("run", cfg, c.awsEnv())
			t.Logf("ferry run: exit %d in %s", code, took.Round(time.Millisecond))
			if code != 1 || !strings.Contains(out, "kinesis credentials: "+cause) {
				t.Errorf("ferry run: exit %d, want 1 and %q:\n%s", code, cause, out)
			}
			if took > 5*time.Second {
				t.Errorf("ferry run took %s to give up", took)
			}
			// One refused AssumeRole each: a refusal is not retried.
			if n := len(c.guard.stsCalls()) - before; n != 2 {
				t.Errorf("%d AssumeRole calls for check and run, want 2", n)
			}
		})
	}
}

// (d) Credentials that expire during the run are refreshed before they do,
// and no request fails. The guard makes STS grant 20-second sessions and
// rejects Kinesis requests signed with expired keys; ferry refreshes a
// quarter of the lifetime early, so about every 15 s.
func TestExpiringCredentialsAreRefreshed(t *testing.T) {
	const lifetime = 20 * time.Second
	c := newCredEnv(t, lifetime)
	cfg := c.config(c.userKeys() + fmt.Sprintf("  role_arn: %s\n  external_id: %s\n  role_duration: 15m\n", c.moto.RoleARN, c.moto.ExternalID))
	p := c.startWithEnv(cfg, "ferry", c.awsEnv())

	start := time.Now()
	const run = 35 * time.Second
	var produced []harness.Produced
	total := 0
	for time.Since(start) < run {
		produced = append(produced, c.produceFrom(total, total+20, 7, 64)...)
		total += 20
		if p.Exited() {
			t.Fatalf("ferry exited:\n%s", p.Tail())
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.waitCommitted(int64(total), time.Minute, p)
	_, metrics := httpGet(t, p, "/metrics")
	c.stop(p)
	elapsed := time.Since(start)
	assertNoLoss(t, c.readBack(produced))

	issued := c.signersFrom("AssumeRole", c.moto.RoleARN, "ferry")
	keys, _ := c.guard.kinesisSigners()
	refreshes := metric(metrics, "ferry_credential_refreshes_total", `source="kinesis"`)
	t.Logf("%s: %d records, %d AssumeRole calls, Kinesis signed with %d keys, refreshes %v",
		elapsed.Round(time.Second), total, len(issued), len(keys), refreshes)
	// At 0 s, then about every 15 s (a quarter of 20 s early).
	if minCalls, maxCalls := int(elapsed/(15*time.Second)), 2+int(elapsed/(14*time.Second)); len(issued) < minCalls || len(issued) > maxCalls {
		t.Errorf("%d AssumeRole calls in %s, want %d to %d", len(issued), elapsed, minCalls, maxCalls)
	}
	if len(keys) < 3 {
		t.Errorf("Kinesis requests were signed with %d keys: the credentials were not refreshed", len(keys))
	}
	if int(refreshes) != len(issued) {
		t.Errorf("ferry_credential_refreshes_total = %v, want the %d AssumeRole calls", refreshes, len(issued))
	}
	if n := metric(metrics, "ferry_delivery_errors_total"); n != 0 {
		t.Errorf("ferry_delivery_errors_total = %v, want 0: a request failed", n)
	}
	if !strings.Contains(metrics, `ferry_credential_errors_total{source="kinesis"} 0`) {
		t.Errorf("want ferry_credential_errors_total{source=\"kinesis\"} 0 in:\n%s", metricLines(metrics, "ferry_credential_errors_total"))
	}

	// The guard does reject an expired key: sign with the first one.
	first := c.guard.stsCalls()[0]
	c.guard.mu.Lock()
	exp := c.guard.expires[first.Key]
	c.guard.mu.Unlock()
	if time.Now().Before(exp) {
		t.Fatalf("the first key has not expired yet")
	}
	creds, err := c.moto.AssumeRole(t.Context(), c.moto.RoleARN, "probe", c.moto.ExternalID, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c.guard.mu.Lock()
	c.guard.expires[creds.AccessKeyID] = time.Now().Add(-time.Second)
	c.guard.mu.Unlock()
	probe := kinesis.New(kinesis.Options{Region: harness.TestRegion, BaseEndpoint: aws.String(c.guard.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)})
	_, err = probe.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(c.stream)})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "ExpiredTokenException" {
		t.Errorf("a request signed with an expired key: %v, want ExpiredTokenException", err)
	}
}

// (e) Web identity (IRSA): AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN and
// AWS_ROLE_SESSION_NAME, with no keys anywhere; the SDK's default chain
// calls AssumeRoleWithWebIdentity with the token file's contents.
func TestWebIdentityDelivers(t *testing.T) {
	c := newCredEnv(t, 0)
	token := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZlcnJ5In0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZmVycnk6ZmVycnkifQ.c2lnbmF0dXJl"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := c.config("")
	env := c.awsEnv("AWS_WEB_IDENTITY_TOKEN_FILE="+tokenFile, "AWS_ROLE_ARN="+c.moto.WebIdentityRoleARN,
		"AWS_ROLE_SESSION_NAME=ferry-irsa")
	if code, out, _ := c.exec("check", cfg, env); code != 0 || !strings.Contains(out, "all checks passed") {
		t.Fatalf("ferry check: exit %d\n%s", code, out)
	}
	metrics := c.deliver(cfg, env, 200)
	c.signersFrom("AssumeRoleWithWebIdentity", c.moto.WebIdentityRoleARN, "ferry-irsa")
	for _, call := range c.guard.stsCalls() {
		if call.Action != "AssumeRoleWithWebIdentity" || call.Token != token || call.Status != http.StatusOK {
			t.Errorf("STS call %+v, want AssumeRoleWithWebIdentity with the token file's token", call)
		}
	}
	if got := metric(metrics, "ferry_credential_refreshes_total", `source="kinesis"`); got != 1 {
		t.Errorf("ferry_credential_refreshes_total = %v, want 1", got)
	}

	// Without AWS_ROLE_SESSION_NAME the session is named by
	// kinesis.session_name, not by the time of each call.
	before := len(c.guard.stsCalls())
	if code, out, _ := c.exec("check", cfg, append(env, "AWS_ROLE_SESSION_NAME=")); code != 0 {
		t.Fatalf("ferry check without AWS_ROLE_SESSION_NAME: exit %d\n%s", code, out)
	}
	if calls := c.guard.stsCalls()[before:]; len(calls) != 1 || calls[0].Session != "ferry" {
		t.Errorf("STS calls %+v, want one with the session name ferry", calls)
	}
}

// podIdentityAgent is an EKS Pod Identity agent on 127.0.0.1: it checks the
// Authorization header against the token file and serves credentials it
// gets from moto by assuming the role, with an Expiration that the SDK's
// five-minute window reaches after a few seconds.
type podIdentityAgent struct {
	moto   *harness.Moto
	token  string
	within time.Duration // the credentials expire this long after the SDK's window

	mu      sync.Mutex
	served  []string // access keys served, in order
	badAuth int
}

func (a *podIdentityAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != a.token {
		a.mu.Lock()
		a.badAuth++
		a.mu.Unlock()
		http.Error(w, `{"message":"bad token"}`, http.StatusUnauthorized)
		return
	}
	creds, err := a.moto.AssumeRole(r.Context(), a.moto.RoleARN, "pod-identity", a.moto.ExternalID, 15*time.Minute)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	a.served = append(a.served, creds.AccessKeyID)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"AccessKeyId": creds.AccessKeyID, "SecretAccessKey": creds.SecretAccessKey, "Token": creds.SessionToken,
		"AccountId": harness.MotoAccount, "Expiration": time.Now().Add(5*time.Minute + a.within).UTC().Format(time.RFC3339),
	})
}

// (f) EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI and
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE. Credentials come from the agent
// with the token, are cached, and are fetched again when they near expiry.
func TestPodIdentityDelivers(t *testing.T) {
	c := newCredEnv(t, 0)
	agent := &podIdentityAgent{moto: c.moto, token: "pod-identity-token-" + strconv.Itoa(rand.IntN(1e6)), within: 8 * time.Second}
	srv := httptest.NewServer(agent)
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "eks-pod-identity-token")
	if err := os.WriteFile(tokenFile, []byte(agent.token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := c.config("")
	env := c.awsEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI="+srv.URL+"/v1/credentials",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="+tokenFile)
	produced := c.produce(100, 17, 64)
	p := c.startWithEnv(cfg, "ferry", env)
	c.waitCommitted(100, 90*time.Second, p)
	// Keep records flowing past one expiry of the agent's credentials.
	time.Sleep(agent.within + 2*time.Second)
	produced = append(produced, c.produceFrom(100, 200, 17, 64)...)
	c.waitCommitted(200, 90*time.Second, p)
	_, metrics := httpGet(t, p, "/metrics")
	c.stop(p)
	assertNoLoss(t, c.readBack(produced))

	agent.mu.Lock()
	served, bad := append([]string(nil), agent.served...), agent.badAuth
	agent.mu.Unlock()
	if bad > 0 {
		t.Errorf("%d credential requests without the token file's token", bad)
	}
	if len(served) < 2 {
		t.Errorf("the agent served credentials %d times, want a refresh after %s", len(served), agent.within)
	}
	keys, rejected := c.guard.kinesisSigners()
	for k, n := range keys {
		if !slices.Contains(served, k) {
			t.Errorf("%d Kinesis requests signed with %s, which the agent did not serve", n, k)
		}
	}
	if rejected > 0 || len(keys) < 2 {
		t.Errorf("Kinesis signed with %d keys (%d rejected), want the refreshed ones", len(keys), rejected)
	}
	if got := metric(metrics, "ferry_credential_refreshes_total", `source="kinesis"`); int(got) != len(served) {
		t.Errorf("ferry_credential_refreshes_total = %v, want the %d fetches", got, len(served))
	}
	if n := metric(metrics, "ferry_delivery_errors_total"); n != 0 {
		t.Errorf("ferry_delivery_errors_total = %v, want 0", n)
	}
}
