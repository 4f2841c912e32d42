package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferrylabs/ferry/kinesiscodec"
)

// sdkErr wraps err the way the SDK does for a failed HTTP exchange.
func sdkErr(status int, err error) error {
	return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err},
	}}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	api := func(code string, status int) error {
		return sdkErr(status, &smithy.GenericAPIError{Code: code, Message: "m"})
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want class
		code string
	}{
		{name: "request throttled", err: api("ProvisionedThroughputExceededException", 400), want: classRetry, code: "ProvisionedThroughputExceededException"},
		{name: "limit exceeded", err: api("LimitExceededException", 400), want: classRetry, code: "LimitExceededException"},
		{name: "kms throttled", err: api("KMSThrottlingException", 400), want: classRetry, code: "KMSThrottlingException"},
		{name: "internal failure 500", err: api("InternalFailure", 500), want: classAmbiguous, code: "InternalFailure"},
		{name: "service unavailable 503", err: api("ServiceUnavailable", 503), want: classAmbiguous, code: "ServiceUnavailable"},
		{name: "stream not found", err: api("ResourceNotFoundException", 400), want: classFatal, code: "ResourceNotFoundException"},
		{name: "access denied", err: api("AccessDeniedException", 400), want: classFatal, code: "AccessDeniedException"},
		{name: "bad credentials", err: api("UnrecognizedClientException", 400), want: classFatal, code: "UnrecognizedClientException"},
		{name: "validation", err: api("ValidationException", 400), want: classFatal, code: "ValidationException"},
		{name: "kms disabled", err: api("KMSDisabledException", 400), want: classFatal, code: "KMSDisabledException"},
		{name: "expired token refreshes", err: api("ExpiredTokenException", 400), want: classRetry, code: "ExpiredTokenException"},
		{name: "retry quota", err: fmt.Errorf("x: %w", ratelimit.QuotaExceededError{}), want: classRetry, code: "retry_quota"},
		{name: "connection refused", err: sdkErr(0, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), want: classRetry, code: "dial"},
		{name: "reset after sending", err: sdkErr(0, &net.OpError{Op: "read", Err: syscall.ECONNRESET}), want: classAmbiguous, code: "connection"},
		{name: "closed while reading a 200", err: sdkErr(200, net.ErrClosed), want: classAmbiguous, code: "response_read"},
		{name: "request timeout", err: sdkErr(0, context.DeadlineExceeded), want: classAmbiguous, code: "timeout"},
		{name: "plain 502", err: sdkErr(502, errors.New("bad gateway")), want: classAmbiguous, code: "http_502"},
		{name: "plain 403", err: sdkErr(403, errors.New("forbidden")), want: classFatal, code: "http_403"},
		{name: "plain 413", err: sdkErr(413, errors.New("request entity too large")), want: classFatal, code: "http_413"},
		{name: "plain 418", err: sdkErr(418, errors.New("teapot")), want: classFatal, code: "http_418"},
		{name: "plain 429", err: sdkErr(429, errors.New("too many")), want: classRetry, code: "http_429"},
		{name: "plain 408", err: sdkErr(408, errors.New("timeout")), want: classRetry, code: "http_408"},
		{name: "unknown 4xx code", err: api("RequestEntityTooLargeException", 413), want: classFatal, code: "RequestEntityTooLargeException"},
		{name: "resharding", err: api("ResourceInUseException", 400), want: classRetry, code: "ResourceInUseException"},
		{name: "throttled 429 with a code", err: api("TooManyRequestsException", 429), want: classRetry, code: "TooManyRequestsException"},
		{name: "sdk parameter check (nothing sent)", err: &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords",
			Err: func() error {
				var e smithy.InvalidParamsError
				e.Context = "PutRecordsInput"
				e.Add(smithy.NewErrParamRequired("Records[0].Data"))
				return e
			}()}, want: classFatal, code: "invalid_request"},
		{name: "serialization (nothing sent)", err: &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords",
			Err: &smithy.SerializationError{Err: errors.New("bad")}}, want: classFatal, code: "serialization"},
		{name: "malformed 200", err: sdkErr(200, &smithy.DeserializationError{Err: fmt.Errorf("x: %w", kinesiscodec.ErrMalformedResponse)}),
			want: classFatal, code: "malformed_response"},
		{name: "our context ended", ctx: canceled, err: sdkErr(0, context.Canceled), want: classCanceled, code: "canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got, code := classify(ctx, tc.err)
			if got != tc.want || code != tc.code {
				t.Fatalf("classify = %s %q, want %s %q", got, code, tc.want, tc.code)
			}
		})
	}
}

func TestEntryRetryable(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]bool{
		"ProvisionedThroughputExceededException": true,
		"InternalFailure":                        true,
		"KMSThrottlingException":                 true,
		"InvalidArgumentException":               false, // kinesis-mock's answer to an oversized record
		"SomethingNew":                           false,
	} {
		if got := entryRetryable(code); got != want {
			t.Errorf("entryRetryable(%q) = %v, want %v", code, got, want)
		}
	}
}
