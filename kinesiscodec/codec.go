// Package kinesiscodec encodes PutRecords requests and decodes their
// responses faster than aws-sdk-go-v2's generic AWS JSON 1.1 protocol, and
// plugs in as the client's protocol (kinesis.Options.Protocol). Everything
// else stays the SDK's: endpoint resolution, credentials, SigV4 signing,
// error responses, and every other operation.
//
// Why: at hundreds of thousands of records a second the SDK's schema-driven
// serializer and, more so, its token-by-token response decoder cost about as
// much CPU as all of ferry's own work. This codec writes the request body in
// one pass into one buffer, and decodes a response with one allocation for
// all its strings and one for all its entries.
//
// It handles only what ferry sends (StreamName, and per record Data,
// PartitionKey and ExplicitHashKey, all valid UTF-8); any other input goes to
// the SDK's protocol unchanged, as do all non-2xx responses. A 2xx response
// is checked more strictly than the SDK does: one that does not report a
// sequence number or an error code for every entry is an error wrapping
// ErrMalformedResponse, never a success.
package kinesiscodec

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Target is the X-Amz-Target header of PutRecords.
const Target = "Kinesis_20131202.PutRecords"

// contentType is AWS JSON 1.1's.
const contentType = "application/x-amz-json-1.1"

// Protocol is the SDK's protocol with PutRecords encoded and decoded here.
type Protocol struct {
	smithyhttp.ClientProtocol
}

// New wraps the SDK's protocol (kinesis.Options.Protocol after the client's
// defaults are set).
func New(sdk smithyhttp.ClientProtocol) *Protocol { return &Protocol{ClientProtocol: sdk} }

// SerializeRequest encodes a PutRecords input, or lets the SDK do it.
func (p *Protocol) SerializeRequest(ctx context.Context, schema *smithy.OperationSchema, in smithy.Serializable, req *smithyhttp.Request) error {
	pr, ok := in.(*kinesis.PutRecordsInput)
	if !ok {
		return p.ClientProtocol.SerializeRequest(ctx, schema, in, req)
	}
	body, ok := AppendPutRecordsInput(nil, pr)
	if !ok {
		return p.ClientProtocol.SerializeRequest(ctx, schema, in, req)
	}
	req.Method = http.MethodPost
	if len(req.URL.Path) == 0 {
		req.URL.Path = "/"
	}
	req.Header.Set("X-Amz-Target", Target)
	req.Header.Set("Content-Type", contentType)
	sreq, err := req.SetStream(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("set stream: %w", err)
	}
	*req = *sreq
	return nil
}

// DeserializeResponse decodes a successful PutRecords response, or lets the
// SDK do it (errors, other operations). A body that cannot be read is a
// *smithy.DeserializationError; one read but malformed is a
// *smithy.DeserializationError wrapping ErrMalformedResponse.
func (p *Protocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, types *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable) error {
	po, ok := out.(*kinesis.PutRecordsOutput)
	if !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return p.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
	}
	body, err := readBody(resp)
	if err != nil {
		return &smithy.DeserializationError{Err: err}
	}
	if err := DecodePutRecordsOutput(body, po); err != nil {
		return &smithy.DeserializationError{Err: err, Snapshot: snapshot(body)}
	}
	return nil
}

// readBody reads the whole body, in one allocation when its length is known.
func readBody(resp *smithyhttp.Response) ([]byte, error) {
	if resp.ContentLength <= 0 || resp.ContentLength > 64<<20 {
		return io.ReadAll(resp.Body)
	}
	body := make([]byte, resp.ContentLength)
	if _, err := io.ReadFull(resp.Body, body); err != nil {
		return nil, err
	}
	return body, nil
}

func snapshot(b []byte) []byte {
	if len(b) > 1024 {
		b = b[:1024]
	}
	return bytes.Clone(b)
}

// AppendPutRecordsInput appends the JSON body of in to dst. It reports false
// (and dst unchanged) for input it does not handle: a StreamARN, StreamId or
// DryRun, or a string that is not valid UTF-8 (the SDK replaces invalid
// bytes; the caller lets it).
func AppendPutRecordsInput(dst []byte, in *kinesis.PutRecordsInput) ([]byte, bool) {
	if in.StreamARN != nil || in.StreamId != nil || in.DryRun != nil || in.StreamName == nil || !utf8.ValidString(*in.StreamName) {
		return dst, false
	}
	size := 32 + len(*in.StreamName)
	for i := range in.Records {
		r := &in.Records[i]
		if r.PartitionKey == nil || !utf8.ValidString(*r.PartitionKey) || (r.ExplicitHashKey != nil && !utf8.ValidString(*r.ExplicitHashKey)) {
			return dst, false
		}
		size += 64 + base64.StdEncoding.EncodedLen(len(r.Data)) + 2*len(*r.PartitionKey)
		if r.ExplicitHashKey != nil {
			size += 24 + len(*r.ExplicitHashKey)
		}
	}
	if dst == nil {
		dst = make([]byte, 0, size)
	}
	dst = append(dst, `{"Records":[`...)
	for i := range in.Records {
		r := &in.Records[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"Data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, r.Data)
		dst = append(dst, `","PartitionKey":`...)
		dst = appendString(dst, *r.PartitionKey)
		if r.ExplicitHashKey != nil {
			dst = append(dst, `,"ExplicitHashKey":`...)
			dst = appendString(dst, *r.ExplicitHashKey)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `],"StreamName":`...)
	dst = appendString(dst, *in.StreamName)
	dst = append(dst, '}')
	return dst, true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. s is valid UTF-8; only the quote,
// the backslash and control characters need escaping.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
