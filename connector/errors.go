package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferrylabs/ferry/kinesiscodec"
)

// ErrFatal marks an error that stops the pipeline: retrying cannot fix it
// (a missing stream, denied access, a record policy of fail).
var ErrFatal = errors.New("fatal")

// fatalf wraps an error as fatal.
func fatalf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFatal}, args...)...)
}

// class is what the delivery loop does with an error.
type class int

const (
	// classRetry: the request was not applied (throttled, refused, never
	// sent); resend it after a backoff.
	classRetry class = iota
	// classAmbiguous: the request may have been applied (a 5xx, a timeout or
	// a connection lost while the reply was read); resending it is still
	// required for at-least-once but can write duplicates.
	classAmbiguous
	// classFatal: stop the pipeline without committing past the batch.
	classFatal
	// classCanceled: our own context ended; abandon quietly.
	classCanceled
)

func (c class) String() string {
	switch c {
	case classRetry:
		return "retry"
	case classAmbiguous:
		return "ambiguous"
	case classFatal:
		return "fatal"
	default:
		return "canceled"
	}
}

// fatalCodes are request-level error codes that no retry can fix.
var fatalCodes = map[string]bool{
	"ResourceNotFoundException":   true,
	"AccessDeniedException":       true,
	"UnrecognizedClientException": true,
	"InvalidSignatureException":   true,
	"IncompleteSignature":         true,
	"MissingAuthenticationToken":  true,
	"InvalidClientTokenId":        true,
	"KMSAccessDeniedException":    true,
	"KMSDisabledException":        true,
	"KMSInvalidStateException":    true,
	"KMSNotFoundException":        true,
	"KMSOptInRequired":            true,
	"ValidationException":         true,
	"InvalidArgumentException":    true,
	"SerializationException":      true,
	"UnknownOperationException":   true,
}

// retryCodes are the 4xx error codes a later attempt can succeed after:
// throttling, and credentials or signatures that expired (the next attempt
// signs with refreshed ones). Any other 4xx code is fatal.
var retryCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"LimitExceededException":                 true,
	"ThrottlingException":                    true,
	"Throttling":                             true,
	"TooManyRequestsException":               true,
	"KMSThrottlingException":                 true,
	"ResourceInUseException":                 true, // the stream is resharding
	"ExpiredTokenException":                  true,
	"ExpiredToken":                           true,
	"RequestExpired":                         true,
	"RequestTimeout":                         true,
	"RequestTimeoutException":                true,
	"IDPCommunicationError":                  true,
	"InternalFailure":                        true,
	"ServiceUnavailable":                     true,
}

// classify decides what to do with a PutRecords error. Context errors from
// the caller's context are classCanceled; everything the server refused
// outright is classRetry or classFatal by code; a request that never left
// (dial errors) is classRetry; anything that might have reached the server
// and been applied (5xx, timeouts, a connection lost after sending, a 200
// whose body could not be read) is classAmbiguous.
func classify(ctx context.Context, err error) (class, string) {
	if ctx.Err() != nil {
		return classCanceled, "canceled"
	}
	if errors.Is(err, kinesiscodec.ErrMalformedResponse) {
		// A 200 whose entries cannot be read as deliveries: acknowledging
		// nothing and stopping is the only answer that loses nothing.
		return classFatal, "malformed_response"
	}
	// Raised before the request left the process (the SDK's parameter
	// checks, serialization): nothing was sent, and sending the same request
	// again fails the same way. Records are checked at dispatch, so this is
	// a request ferry built wrong; stop and name it.
	var params smithy.InvalidParamsError
	if errors.As(err, &params) {
		return classFatal, "invalid_request"
	}
	var ser *smithy.SerializationError
	if errors.As(err, &ser) {
		return classFatal, "serialization"
	}
	var quota ratelimit.QuotaExceededError
	if errors.As(err, &quota) {
		return classRetry, "retry_quota"
	}
	// The SDK could not get credentials to sign with, so nothing was sent.
	// Checked before the API error below, which would be STS's: its
	// AccessDenied (an untrusted role, a wrong external id) is no code of
	// Kinesis' and must stop the pipeline, naming the STS error.
	var creds *CredentialsError
	if errors.As(err, &creds) {
		if credentialsRetryable(creds.Err) {
			return classRetry, "credentials"
		}
		return classFatal, "credentials"
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		if fatalCodes[code] {
			return classFatal, code
		}
		var resp *smithyhttp.ResponseError
		if errors.As(err, &resp) {
			switch status := resp.HTTPStatusCode(); {
			case status >= 500:
				return classAmbiguous, code
			case status >= 400 && !retryCodes[code] && status != 408 && status != 429:
				// A refusal no retry changes (413, an unknown 4xx code):
				// looping on it would stall the pipeline silently.
				return classFatal, code
			}
		}
		return classRetry, code
	}
	if notSent(err) {
		return classRetry, "dial"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return classAmbiguous, "timeout"
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) {
		status := resp.HTTPStatusCode()
		switch {
		case status == 0:
			// No response at all: the connection broke after the request
			// was (at least partly) written.
			return classAmbiguous, "connection"
		case status >= 500:
			return classAmbiguous, fmt.Sprintf("http_%d", status)
		case status == 200:
			// The server answered 200 but the body could not be read: the
			// batch was most likely stored (aws-sdk-go-v2 #1825, #2737).
			return classAmbiguous, "response_read"
		case status == 408 || status == 429:
			return classRetry, fmt.Sprintf("http_%d", status)
		case status >= 400 && status < 500:
			// 413 (request too large) and every other refusal that no
			// retry changes.
			return classFatal, fmt.Sprintf("http_%d", status)
		}
		return classRetry, fmt.Sprintf("http_%d", status)
	}
	return classAmbiguous, "network"
}

// notSent reports errors that happen before a request is written: it cannot
// have been applied.
func notSent(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// entryRetryable reports whether a per-entry ErrorCode from a 200 response
// is one to resend. AWS documents only the first two; KMSThrottling is
// sometimes reported per entry too. Any other code stops the pipeline rather
// than loop forever.
func entryRetryable(code string) bool {
	switch code {
	case "ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException":
		return true
	}
	return false
}
