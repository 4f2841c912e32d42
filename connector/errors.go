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
	var quota ratelimit.QuotaExceededError
	if errors.As(err, &quota) {
		return classRetry, "retry_quota"
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		if fatalCodes[code] {
			return classFatal, code
		}
		var resp *smithyhttp.ResponseError
		if errors.As(err, &resp) && resp.HTTPStatusCode() >= 500 {
			return classAmbiguous, code
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
		case status == 403 || status == 401 || status == 404:
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
