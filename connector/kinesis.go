package connector

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/kinesiscodec"
)

// KinesisAPI is the part of the Kinesis client the connector uses.
type KinesisAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// NewKinesisClient builds the Kinesis client from configuration: the default
// AWS credential chain (or static keys), an optional endpoint override and an
// optional role to assume (newCredentials). It fetches the credentials once
// before returning, so that a refused AssumeRole or unknown keys fail here
// with the AWS error named (fetchCredentials); m counts the fetches.
//
// The client gets a retryer of its own that never retries (MaxAttempts 1) and
// has no retry quota. Ferry's delivery loop does every retry itself, because
// (a) per-entry failures inside a 200 are invisible to the SDK, (b) the SDK's
// token bucket is shared by all goroutines and, once drained by throttling,
// fails calls with QuotaExceededError (aws-sdk-go-v2 #1665, #3413), and (c)
// an SDK resend after a connection lost while reading a 200 writes the whole
// batch twice (#1825, #2737; retryable since PR #2949) without ferry knowing:
// ferry classifies that case as ambiguous and counts it instead. STS and the
// credential endpoints keep the SDK's standard retryer.
// maxConns sizes the connection pool to the request concurrency, so requests
// do not queue for, or churn, connections.
func NewKinesisClient(ctx context.Context, cfg config.Kinesis, maxConns int, m *Metrics) (*kinesis.Client, error) {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = maxConns * 2
		t.MaxIdleConnsPerHost = maxConns * 2
		// Close idle connections well before servers do (AWS front ends
		// drop idle connections after about a minute), so a request is
		// not written into a connection the server is closing.
		t.IdleConnTimeout = 20 * time.Second
	})
	id := cfg.Identity()
	awsCfg, err := loadAWSConfig(ctx, id, awsconfig.WithHTTPClient(httpClient))
	if err != nil {
		return nil, err
	}
	awsCfg.Credentials = newCredentials(awsCfg, id, CredentialsKinesis, m)
	if err := fetchCredentials(ctx, awsCfg.Credentials, CredentialsKinesis); err != nil {
		return nil, err
	}
	return kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		// Wrapped here rather than in LoadDefaultConfig, which must still see
		// the buildable client (it adds a custom CA bundle to it).
		o.HTTPClient = bodyWithoutWriterTo{awsCfg.HTTPClient}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 1
			so.RateLimiter = ratelimit.None
		})
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		// PutRecords bodies are encoded and decoded by ferry's codec (about
		// 1.5 times faster than the SDK's protocol, half the bytes); the SDK
		// still signs, sends, and decodes errors and every other operation.
		o.Protocol = kinesiscodec.New(o.Protocol)
		if m != nil {
			o.APIOptions = append(o.APIOptions, countAttempts(m))
		}
	}), nil
}

// countAttempts counts HTTP attempts of PutRecords. An initialize-step
// middleware puts a counter in the operation's context; a finalize-step
// middleware after the SDK's retry middleware runs once per attempt, so any
// attempt beyond the first is a resend made by the SDK, not by ferry.
func countAttempts(m *Metrics) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		err := s.Initialize.Add(middleware.InitializeMiddlewareFunc("FerryAttemptInit",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				return next.HandleInitialize(context.WithValue(ctx, attemptsKey{}, new(int)), in)
			}), middleware.Before)
		if err != nil {
			return err
		}
		return s.Finalize.Insert(middleware.FinalizeMiddlewareFunc("FerryAttemptCounter",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if middleware.GetOperationName(ctx) == "PutRecords" {
					m.sdkAttempts.Inc()
					if n, ok := ctx.Value(attemptsKey{}).(*int); ok {
						*n++
						if *n > 1 {
							m.sdkResends.Inc()
						}
					}
				}
				return next.HandleFinalize(ctx, in)
			}), "Retry", middleware.After)
	}
}

type attemptsKey struct{}

// bodyWithoutWriterTo prevents the duplicate-on-success race behind
// aws-sdk-go-v2 #1825/#2737, found and measured with the fast sink:
//
//  1. net/http's writeLoop sends the Content-Length bytes of the body, then
//     probes the body for extra bytes with io.Copy(io.Discard, body), which
//     uses the body's WriteTo.
//  2. If the server already answered (a fast server, a busy client), the SDK
//     has the response and smithy-go closes the request body (its
//     safeReadCloser) while the probe runs.
//  3. smithy-go's safeWriteToReadCloser.WriteTo then returns io.EOF, which
//     io.Copy passes on as an error; the transport takes it for a failed
//     request write and closes the connection under the response the SDK is
//     reading: "deserialization failed ... use of closed network connection"
//     with status 200. The batch was stored; a retry would store it again.
//
// Hiding WriteTo makes the probe use Read, whose io.EOF after Close is a
// normal end of body. Under load the race hit 27 of 60 probe runs of 200
// requests with the SDK's own client, and none of 12,000 requests with this.
type bodyWithoutWriterTo struct{ next aws.HTTPClient }

// EarlyAnswerSafe wraps an SDK HTTP client the way ferry's own is wrapped
// against the duplicate-on-success race (see bodyWithoutWriterTo), for the
// test tools whose clients keep the SDK's own protocol.
func EarlyAnswerSafe(next aws.HTTPClient) aws.HTTPClient { return bodyWithoutWriterTo{next} }

type readCloser struct{ io.ReadCloser }

func (c bodyWithoutWriterTo) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = readCloser{r.Body}
	}
	return c.next.Do(r)
}
