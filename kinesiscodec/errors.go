package kinesiscodec

import (
	"errors"
	"fmt"
)

// ErrMalformedResponse is wrapped by every error DecodePutRecordsOutput
// returns: a 2xx PutRecords body that was read in full but does not say,
// for each record, whether it was stored. That covers JSON the codec cannot
// parse, a missing or null Records array, and an entry that is not an object
// or has neither a SequenceNumber nor an ErrorCode (null, {}, or only empty
// strings). Such a body is not a delivery report, and decoding an entry
// without either as a success would acknowledge a record nobody stored.
//
// Through a kinesis.Client the error arrives wrapped in the SDK's
// *smithy.OperationError, *awshttp.ResponseError (status 200) and
// *smithy.DeserializationError, all of which unwrap, so callers match it
// with errors.Is(err, kinesiscodec.ErrMalformedResponse). Match it before
// any check on the HTTP status: a read failure of a 200 body (the connection
// broke) is also a ResponseError with status 200, but does not wrap this.
var ErrMalformedResponse = errors.New("kinesiscodec: malformed PutRecords response")

// errTooDeep stops skip's recursion on pathological nesting.
var errTooDeep = fmt.Errorf("%w: JSON nested too deeply", ErrMalformedResponse)
