package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrylabs/ferry/config"
)

// Sources of AWS credentials: the source label of
// ferry_credential_refreshes_total and ferry_credential_errors_total.
const (
	CredentialsKinesis = "kinesis"
	CredentialsMSKIAM  = "kafka_msk_iam"
)

// maxRefreshWindow is how long before they expire cached credentials are
// refreshed, at most: the SDK's own window for container credentials, and
// room for a request signed just before the refresh to reach AWS in time.
// Assumed-role credentials that live less than four windows are refreshed
// when a quarter of their lifetime is left instead (earlyRefresh).
const maxRefreshWindow = 5 * time.Minute

// loadAWSConfig loads the SDK configuration of one identity: its region and
// its base credentials, static keys or else the SDK's default chain (the
// environment, a profile, web identity (IRSA), the container endpoint (EKS
// Pod Identity, ECS), the instance role). The SDK's standard retryer stays
// in place: it retries STS and the container endpoint; the Kinesis client
// sets its own.
func loadAWSConfig(ctx context.Context, id config.AWSIdentity, opts ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	opts = append([]func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(id.Region),
		// The SDK caches each source of the default chain. Refresh them all
		// early, as it already does container credentials: web identity
		// credentials would otherwise be used up to their last second.
		awsconfig.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) {
			o.ExpiryWindow = maxRefreshWindow
		}),
		// Without AWS_ROLE_SESSION_NAME the SDK names each web identity
		// session by the time of the call: a new principal at every refresh,
		// which an MSK re-authentication refuses. Use the configured name.
		awsconfig.WithWebIdentityRoleCredentialOptions(func(o *stscreds.WebIdentityRoleOptions) {
			if o.RoleSessionName == "" {
				o.RoleSessionName = sessionName(id)
			}
		}),
	}, opts...)
	if id.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			id.AccessKeyID, id.SecretAccessKey.Reveal(), id.SessionToken.Reveal())))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	return cfg, nil
}

// newCredentials returns the cached credentials of one identity on top of
// cfg's base credentials, counted under source (nil m: not counted).
//
// Without a role, the SDK's own cache of the base credentials sits under
// this one. Both hold the same, already shortened, expiry, so this cache
// calls through once per refresh of the SDK's, and each call is a fetch.
//
// With a role, the base credentials sign AssumeRole and this cache holds the
// role's credentials: one AssumeRole per expiry, whatever the number of
// requests, connections or SASL re-authentications. The session name is
// the configured, stable one; an empty one would let the SDK make up a new
// name per call (aws-go-sdk-<time>), a new principal each time.
func newCredentials(cfg aws.Config, id config.AWSIdentity, source string, m *Metrics) *aws.CredentialsCache {
	src := &observedCredentials{next: cfg.Credentials, what: baseName(id)}
	if m != nil {
		src.refreshes = m.credRefreshes.WithLabelValues(source)
		src.failures = m.credErrors.WithLabelValues(source)
	}
	if id.RoleARN == "" {
		return aws.NewCredentialsCache(src)
	}
	session := sessionName(id)
	duration := id.RoleDuration
	if duration <= 0 {
		duration = time.Hour
	}
	src.next = stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), id.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = session
		o.Duration = duration
		if id.ExternalID != "" {
			o.ExternalID = aws.String(id.ExternalID)
		}
	})
	src.what = "assume role " + id.RoleARN
	return aws.NewCredentialsCache(earlyRefresh{src, time.Now}, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = maxRefreshWindow
	})
}

// sessionName is the identity's role session name, "ferry" if unset.
func sessionName(id config.AWSIdentity) string {
	if id.SessionName == "" {
		return "ferry"
	}
	return id.SessionName
}

func baseName(id config.AWSIdentity) string {
	if id.AccessKeyID != "" {
		return "static credentials " + id.AccessKeyID
	}
	return "the default credential chain"
}

// observedCredentials counts each fetch of credentials and names their
// source in errors. A cache calls it only to refresh.
type observedCredentials struct {
	next      aws.CredentialsProvider
	what      string
	refreshes prometheus.Counter // nil: not counted
	failures  prometheus.Counter
}

func (o *observedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := o.next.Retrieve(ctx)
	if err != nil {
		if o.failures != nil && ctx.Err() == nil {
			o.failures.Inc()
		}
		return aws.Credentials{}, &CredentialsError{What: o.what, Err: err}
	}
	if o.refreshes != nil {
		o.refreshes.Inc()
	}
	return c, nil
}

// earlyRefresh is the assumed-role provider as its cache sees it. The cache
// moves each expiry earlier by its window through AdjustExpiresBy; this one
// moves it by the window or a quarter of the credentials' lifetime,
// whichever is less. A fixed five minutes would refresh credentials that
// live under five minutes (an STS that grants less than asked, a test) on
// every request.
type earlyRefresh struct {
	aws.CredentialsProvider
	now func() time.Time
}

// AdjustExpiresBy implements aws.AdjustExpiresByCredentialsCacheStrategy; by
// is minus the cache's window.
func (e earlyRefresh) AdjustExpiresBy(c aws.Credentials, by time.Duration) (aws.Credentials, error) {
	if !c.CanExpire {
		return c, nil
	}
	window := -by
	if quarter := c.Expires.Sub(e.now()) / 4; quarter < window {
		window = max(quarter, 0)
	}
	c.Expires = c.Expires.Add(-window)
	return c, nil
}

// CredentialsError is a failure to get AWS credentials, named by where they
// come from: "assume role arn:aws:iam::123456789012:role/ferry: AccessDenied:
// User: ... is not authorized to perform: sts:AssumeRole".
type CredentialsError struct {
	// What is the source: "assume role ARN", "the default credential chain"
	// or "static credentials AKID".
	What string
	Err  error
}

func (e *CredentialsError) Error() string {
	var api smithy.APIError
	if errors.As(e.Err, &api) {
		msg := fmt.Sprintf("%s: %s: %s", e.What, api.ErrorCode(), api.ErrorMessage())
		var resp *awshttp.ResponseError
		if errors.As(e.Err, &resp) && resp.ServiceRequestID() != "" {
			msg += " (request id " + resp.ServiceRequestID() + ")"
		}
		return msg
	}
	return e.What + ": " + e.Err.Error()
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// credentialsRetryable reports whether a later fetch of credentials can
// succeed where this one failed: STS throttled or failed on its side, or the
// source (STS, the container endpoint, the instance metadata) could not be
// reached. A refusal (a wrong external id, an untrusted role, unknown keys)
// or a broken setup (no token file) is not.
func credentialsRetryable(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		if retryCodes[api.ErrorCode()] {
			return true
		}
		var resp *awshttp.ResponseError
		if errors.As(err, &resp) {
			status := resp.HTTPStatusCode()
			return status >= 500 || status == 429
		}
		return false
	}
	if notSent(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		status := resp.HTTPStatusCode()
		return status == 0 || status >= 500 || status == 429
	}
	return false
}

// fetchCredentials gets the credentials once before anything uses them, so
// that a wrong role, external id or key fails at start with the AWS error
// named, instead of inside the first request that needs them. Failures that
// can pass are tried again for about 15 seconds: a container endpoint or a
// network path that is not up yet when the pod starts.
func fetchCredentials(ctx context.Context, creds aws.CredentialsProvider, source string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	for attempt := range 6 {
		if _, err = creds.Retrieve(ctx); err == nil {
			return nil
		}
		if !credentialsRetryable(err) || attempt == 5 || !sleepCtx(ctx, time.Duration(attempt+1)*time.Second) {
			break
		}
	}
	var ce *CredentialsError
	if errors.As(err, &ce) {
		err = ce
	}
	return fmt.Errorf("%s credentials: %w", source, err)
}
