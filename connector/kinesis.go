package connector

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/ferrylabs/ferry/config"
)

// KinesisAPI is the part of the Kinesis client the connector uses.
type KinesisAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// NewKinesisClient builds the Kinesis client from configuration: the default
// AWS credential chain (or static keys), an optional endpoint override and an
// optional role to assume.
//
// The client gets a retryer of its own that never retries (MaxAttempts 1) and
// has no retry quota. Ferry's delivery loop does every retry itself, because
// (a) per-entry failures inside a 200 are invisible to the SDK, (b) the SDK's
// token bucket is shared by all goroutines and, once drained by throttling,
// fails calls with QuotaExceededError (aws-sdk-go-v2 #1665, #3413), and (c)
// an SDK resend after a connection lost while reading a 200 writes the whole
// batch twice (#1825, #2737; retryable since PR #2949) without ferry knowing:
// ferry classifies that case as ambiguous and counts it instead.
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
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 1
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			cfg.AccessKeyID, cfg.SecretAccessKey.Reveal(), cfg.SessionToken.Reveal())))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.RoleARN != "" {
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), cfg.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "ferry"
		})
		awsCfg.Credentials = aws.NewCredentialsCache(provider)
	}
	return kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
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
