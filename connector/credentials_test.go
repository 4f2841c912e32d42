package connector

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferrylabs/ferry/config"
)

const (
	testRoleARN    = "arn:aws:iam::123456789012:role/ferry-writer"
	testExternalID = "ferry-ext-42"
)

// assumeCall is one AssumeRole that fakeSTS answered.
type assumeCall struct {
	RoleARN, SessionName, ExternalID string
	Duration                         int
	AccessKey, SecretKey, Token      string
	Expires                          time.Time
}

// fakeSTS answers AssumeRole in the STS query protocol. It refuses a wrong
// external id as STS does (AccessDenied, 403), and issues credentials that
// live lifetime (default: the requested duration) so tests can make them
// expire quickly.
type fakeSTS struct {
	lifetime   time.Duration
	externalID string // required when not empty
	failFirst  int    // answer this many calls with a 503 first

	mu     sync.Mutex
	calls  []assumeCall
	failed int
}

func (f *fakeSTS) handle(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRole" {
		http.Error(w, "not AssumeRole", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	if f.failed < f.failFirst {
		f.failed++
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>try later</Message></Error><RequestId>req-503</RequestId></ErrorResponse>`)
		return
	}
	if f.externalID != "" && r.Form.Get("ExternalId") != f.externalID {
		w.Header().Set("X-Amzn-Requestid", "req-denied")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/ferry is not authorized to perform: sts:AssumeRole on resource: %s</Message></Error><RequestId>req-denied</RequestId></ErrorResponse>`, r.Form.Get("RoleArn"))
		return
	}
	dur, _ := strconv.Atoi(r.Form.Get("DurationSeconds"))
	life := f.lifetime
	if life == 0 {
		life = time.Duration(dur) * time.Second
	}
	n := len(f.calls) + 1
	c := assumeCall{
		RoleARN: r.Form.Get("RoleArn"), SessionName: r.Form.Get("RoleSessionName"), ExternalID: r.Form.Get("ExternalId"),
		Duration: dur, AccessKey: fmt.Sprintf("ASIAFAKE%08d", n), SecretKey: fmt.Sprintf("secret-%d", n),
		Token: fmt.Sprintf("token-%d", n), Expires: time.Now().Add(life).UTC().Truncate(time.Second),
	}
	f.calls = append(f.calls, c)
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><AssumedRoleId>AROAFAKE:%s</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/ferry-writer/%s</Arn></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>req-%d</RequestId></ResponseMetadata></AssumeRoleResponse>`,
		c.AccessKey, c.SecretKey, c.Token, c.Expires.Format(time.RFC3339), c.SessionName, c.SessionName, n)
}

func (f *fakeSTS) Calls() []assumeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]assumeCall(nil), f.calls...)
}

// byKey returns the call that issued access key akid.
func (f *fakeSTS) byKey(akid string) (assumeCall, bool) {
	for _, c := range f.Calls() {
		if c.AccessKey == akid {
			return c, true
		}
	}
	return assumeCall{}, false
}

// handlerClient serves SDK requests from h in process: no sockets, so the
// tests can run inside a synctest bubble.
type handlerClient struct{ h http.Handler }

func (c handlerClient) Do(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// stsConfig is an SDK configuration whose STS is f, with static base keys.
func stsConfig(f *fakeSTS) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKIAFERRYUSER", "user-secret", "")),
		HTTPClient:   handlerClient{http.HandlerFunc(f.handle)},
		BaseEndpoint: aws.String("https://sts.fake.test"),
	}
}

func roleIdentity() config.AWSIdentity {
	return config.AWSIdentity{Region: "us-east-1", RoleARN: testRoleARN, ExternalID: testExternalID,
		SessionName: "ferry", RoleDuration: time.Hour}
}

func credCounts(t *testing.T, m *Metrics, source string) (refreshes, errs float64) {
	t.Helper()
	return testutil.ToFloat64(m.credRefreshes.WithLabelValues(source)), testutil.ToFloat64(m.credErrors.WithLabelValues(source))
}

// One AssumeRole serves every request until the credentials near their
// expiry, with the configured external id, session name and duration.
func TestAssumeRoleIsCachedWithItsSettings(t *testing.T) {
	t.Parallel()
	sts := &fakeSTS{externalID: testExternalID}
	m := NewMetrics(prometheus.NewRegistry())
	id := roleIdentity()
	id.RoleDuration = 15 * time.Minute
	creds := newCredentials(stsConfig(sts), id, CredentialsKinesis, m)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := creds.Retrieve(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	calls := sts.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d AssumeRole calls for 50 retrievals, want 1", len(calls))
	}
	want := assumeCall{RoleARN: testRoleARN, SessionName: "ferry", ExternalID: testExternalID, Duration: 900}
	got := calls[0]
	if got.RoleARN != want.RoleARN || got.SessionName != want.SessionName || got.ExternalID != want.ExternalID || got.Duration != want.Duration {
		t.Errorf("AssumeRole sent %+v, want role, session, external id and duration of %+v", got, want)
	}
	if r, e := credCounts(t, m, CredentialsKinesis); r != 1 || e != 0 {
		t.Errorf("refreshes %v, errors %v; want 1, 0", r, e)
	}
}

// Credentials are refreshed a window before they expire: five minutes, or a
// quarter of their lifetime when they live less than 20 minutes, so short
// credentials are neither used to their last second nor fetched per request.
func TestRoleCredentialsRefreshBeforeExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lifetime time.Duration
		refresh  time.Duration // when the second AssumeRole must happen
	}{
		{"one hour, five minutes early", time.Hour, 55 * time.Minute},
		{"fifteen minutes, a quarter early", 15 * time.Minute, 15 * time.Minute * 3 / 4},
		{"forty seconds, ten early", 40 * time.Second, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				sts := &fakeSTS{lifetime: tc.lifetime}
				m := NewMetrics(prometheus.NewRegistry())
				creds := newCredentials(stsConfig(sts), roleIdentity(), CredentialsKinesis, m)
				start := time.Now()
				retrieveAt := func(at time.Duration) aws.Credentials {
					time.Sleep(time.Until(start.Add(at)))
					c, err := creds.Retrieve(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					return c
				}
				first := retrieveAt(0)
				if c := retrieveAt(tc.refresh - time.Second); c.AccessKeyID != first.AccessKeyID || len(sts.Calls()) != 1 {
					t.Fatalf("refreshed before %s: %d calls", tc.refresh, len(sts.Calls()))
				}
				second := retrieveAt(tc.refresh + time.Second)
				if second.AccessKeyID == first.AccessKeyID || len(sts.Calls()) != 2 {
					t.Fatalf("not refreshed at %s: %d calls", tc.refresh, len(sts.Calls()))
				}
				if !sts.Calls()[0].Expires.After(start.Add(tc.refresh)) {
					t.Fatalf("refreshed after the first credentials expired")
				}
				if r, _ := credCounts(t, m, CredentialsKinesis); r != 2 {
					t.Errorf("ferry_credential_refreshes_total = %v, want 2", r)
				}
			})
		})
	}
}

func TestEarlyRefreshWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e := earlyRefresh{now: func() time.Time { return now }}
	tests := []struct {
		name    string
		creds   aws.Credentials
		wantExp time.Time
	}{
		{"long lived", aws.Credentials{CanExpire: true, Expires: now.Add(12 * time.Hour)}, now.Add(12*time.Hour - 5*time.Minute)},
		{"twenty minutes", aws.Credentials{CanExpire: true, Expires: now.Add(20 * time.Minute)}, now.Add(15 * time.Minute)},
		{"eight seconds", aws.Credentials{CanExpire: true, Expires: now.Add(8 * time.Second)}, now.Add(6 * time.Second)},
		{"already expired", aws.Credentials{CanExpire: true, Expires: now.Add(-time.Second)}, now.Add(-time.Second)},
		{"never expire", aws.Credentials{}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := e.AdjustExpiresBy(tc.creds, -maxRefreshWindow)
			if err != nil || !got.Expires.Equal(tc.wantExp) {
				t.Errorf("Expires = %v, %v; want %v", got.Expires, err, tc.wantExp)
			}
		})
	}
}

// A wrong external id fails at once, with the STS error named, and is not
// retried: a refusal does not pass.
func TestRefusedAssumeRoleFailsFastNamed(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sts := &fakeSTS{externalID: "the-right-one"}
		m := NewMetrics(prometheus.NewRegistry())
		creds := newCredentials(stsConfig(sts), roleIdentity(), CredentialsKinesis, m)
		start := time.Now()
		err := fetchCredentials(t.Context(), creds, CredentialsKinesis)
		want := "kinesis credentials: assume role " + testRoleARN + ": AccessDenied: User: arn:aws:iam::123456789012:user/ferry " +
			"is not authorized to perform: sts:AssumeRole on resource: " + testRoleARN + " (request id req-denied)"
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("took %s, want no retry wait", d)
		}
		if r, e := credCounts(t, m, CredentialsKinesis); r != 0 || e != 1 {
			t.Errorf("refreshes %v, errors %v; want 0, 1", r, e)
		}
	})
}

// STS failing on its side is retried, by the SDK and then by
// fetchCredentials.
func TestUnavailableSTSIsRetried(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sts := &fakeSTS{failFirst: 4}
		cfg := stsConfig(sts)
		cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
		creds := newCredentials(cfg, roleIdentity(), CredentialsKinesis, nil)
		if err := fetchCredentials(t.Context(), creds, CredentialsKinesis); err != nil {
			t.Fatal(err)
		}
		if len(sts.Calls()) != 1 || sts.failed != 4 {
			t.Errorf("%d calls after %d failures", len(sts.Calls()), sts.failed)
		}
	})
}

// A Kinesis request that cannot get credentials is not sent, so it is never
// ambiguous: fatal when STS refused, retried when STS could not be reached.
func TestClassifyCredentialFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sts      http.HandlerFunc
		want     class
		wantText string
	}{
		{"untrusted role", (&fakeSTS{externalID: "x"}).handle, classFatal, "AccessDenied: User: arn:aws:iam::123456789012:user/ferry is not authorized"},
		{"sts unavailable", (&fakeSTS{failFirst: 100}).handle, classRetry, "ServiceUnavailable"},
		{"sts unreachable", nil, classRetry, "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := aws.Config{
				Region:      "us-east-1",
				Credentials: credentials.NewStaticCredentialsProvider("AKIAFERRYUSER", "user-secret", ""),
				Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
			}
			if tc.sts != nil {
				cfg.HTTPClient, cfg.BaseEndpoint = handlerClient{tc.sts}, aws.String("https://sts.fake.test")
			} else {
				cfg.HTTPClient = refusingClient{}
				cfg.BaseEndpoint = aws.String("http://127.0.0.1:1")
			}
			cfg.Credentials = newCredentials(cfg, roleIdentity(), CredentialsKinesis, nil)
			kin := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
				o.HTTPClient = handlerClient{http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					t.Error("a request without credentials reached Kinesis")
				})}
			})
			_, err := kin.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "assume role "+testRoleARN+": ") || !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not name the role and %q", err, tc.wantText)
			}
			if got, code := classify(t.Context(), err); got != tc.want || code != "credentials" {
				t.Errorf("classify = %v %s, want %v credentials", got, code, tc.want)
			}
		})
	}
}

type refusingClient struct{}

func (refusingClient) Do(*http.Request) (*http.Response, error) {
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
}

// NewKinesisClient honours AWS_ENDPOINT_URL_STS and fails with the STS
// error named when the role refuses; with the right external id it returns
// a client whose credentials are already fetched.
func TestNewKinesisClientAssumesRoleAtStart(t *testing.T) {
	sts := &fakeSTS{externalID: testExternalID}
	srv := httptest.NewServer(http.HandlerFunc(sts.handle))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	cfg := config.Kinesis{Region: "us-east-1", Endpoint: "http://127.0.0.1:1", RoleARN: testRoleARN,
		SessionName: "ferry", RoleDuration: time.Hour, AccessKeyID: "AKIAFERRYUSER", SecretAccessKey: "user-secret"}

	bad := cfg
	bad.ExternalID = "wrong"
	start := time.Now()
	_, err := NewKinesisClient(t.Context(), bad, 1, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "kinesis credentials: assume role "+testRoleARN+": AccessDenied: ") {
		t.Fatalf("error = %v, want the AssumeRole refusal named", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusal took %s", d)
	}

	good := cfg
	good.ExternalID = testExternalID
	m := NewMetrics(prometheus.NewRegistry())
	kin, err := NewKinesisClient(t.Context(), good, 1, m)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := credCounts(t, m, CredentialsKinesis); r != 1 {
		t.Errorf("refreshes = %v after start, want 1", r)
	}
	c, err := kin.Options().Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if call, ok := sts.byKey(c.AccessKeyID); !ok || call.ExternalID != testExternalID || call.SessionName != "ferry" || call.Duration != 3600 {
		t.Errorf("client signs with %s from %+v", c.AccessKeyID, call)
	}
}

// Static keys are fetched once and never refreshed.
func TestStaticCredentialsFetchedOnce(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	kin, err := NewKinesisClient(t.Context(), config.Kinesis{Region: "us-east-1", Endpoint: "http://127.0.0.1:1",
		AccessKeyID: "AKIDSTATIC", SecretAccessKey: "s"}, 1, m)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := kin.Options().Credentials.Retrieve(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if r, e := credCounts(t, m, CredentialsKinesis); r != 1 || e != 0 {
		t.Errorf("refreshes %v, errors %v; want 1, 0", r, e)
	}
}
