package kinesiscodec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// capture records the request it is sent and answers with a canned response.
type capture struct {
	status int
	body   []byte
	req    *http.Request
	sent   []byte
}

func (c *capture) Do(r *http.Request) (*http.Response, error) {
	c.req = r
	c.sent, _ = io.ReadAll(r.Body)
	return &http.Response{StatusCode: c.status, Header: http.Header{"Content-Type": {contentType}},
		Body: io.NopCloser(bytes.NewReader(c.body)), ContentLength: int64(len(c.body)), Request: r}, nil
}

// clients returns a client with the SDK's protocol and one with this
// package's, both talking to their own capture.
func clients(status int, body []byte) (sdk, fast *kinesis.Client, sdkCap, fastCap *capture) {
	sdkCap = &capture{status: status, body: body}
	fastCap = &capture{status: status, body: body}
	base := kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1"),
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1}
	sdk = kinesis.New(base, func(o *kinesis.Options) { o.HTTPClient = sdkCap })
	fast = kinesis.New(base, func(o *kinesis.Options) { o.HTTPClient = fastCap; o.Protocol = New(o.Protocol) })
	return sdk, fast, sdkCap, fastCap
}

// tricky are partition keys and stream names that need escaping, or not.
var tricky = []string{"k", `quote"d`, `back\slash`, "tab\tnew\nline\r", "\x00\x01\x1f", "ünïcödé ✓ 🚀", "</script>", "\u2028\u2029", strings.Repeat("x", 256)}

func randomInput(r *rand.Rand, n int) *kinesis.PutRecordsInput {
	in := &kinesis.PutRecordsInput{StreamName: aws.String(tricky[r.IntN(len(tricky))])}
	for i := range n {
		data := make([]byte, r.IntN(300))
		for j := range data {
			data[j] = byte(r.IntN(256))
		}
		e := types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(tricky[r.IntN(len(tricky))] + fmt.Sprint(i))}
		if r.IntN(4) == 0 {
			e.ExplicitHashKey = aws.String(fmt.Sprint(r.Uint64()))
		}
		in.Records = append(in.Records, e)
	}
	return in
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	return v
}

// The request body is the SDK's, member for member, and so are the headers
// that matter (the signature covers them).
func TestRequestMatchesTheSDK(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		in := randomInput(r, 1+r.IntN(20))
		sdk, fast, sdkCap, fastCap := clients(200, []byte(`{"FailedRecordCount":0,"Records":[]}`))
		if _, err := sdk.PutRecords(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		if _, err := fast.PutRecords(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		if got, want := decodeJSON(t, fastCap.sent), decodeJSON(t, sdkCap.sent); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: body\n%s\nwant (SDK)\n%s", round, fastCap.sent, sdkCap.sent)
		}
		for _, h := range []string{"X-Amz-Target", "Content-Type", "Content-Length"} {
			if got, want := fastCap.req.Header.Get(h), sdkCap.req.Header.Get(h); got != want {
				t.Fatalf("header %s = %q, want %q (SDK)", h, got, want)
			}
		}
		if fastCap.req.ContentLength != int64(len(fastCap.sent)) || fastCap.req.Method != http.MethodPost || fastCap.req.URL.Path != "/" {
			t.Fatalf("request %s %s with length %d for %d bytes", fastCap.req.Method, fastCap.req.URL.Path, fastCap.req.ContentLength, len(fastCap.sent))
		}
	}
}

// Input the codec does not handle goes to the SDK unchanged.
func TestUnhandledInputFallsBackToTheSDK(t *testing.T) {
	for name, in := range map[string]*kinesis.PutRecordsInput{
		"stream ARN":     {StreamARN: aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}},
		"invalid UTF-8":  {StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k\xff")}}},
		"no stream name": {Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}},
	} {
		if _, ok := AppendPutRecordsInput(nil, in); ok {
			t.Errorf("%s: encoded, want a fallback", name)
		}
		sdk, fast, sdkCap, fastCap := clients(200, []byte(`{"FailedRecordCount":0,"Records":[]}`))
		_, errS := sdk.PutRecords(context.Background(), in)
		_, errF := fast.PutRecords(context.Background(), in)
		if (errS == nil) != (errF == nil) || !bytes.Equal(sdkCap.sent, fastCap.sent) {
			t.Errorf("%s: fast (%v, %q) differs from the SDK (%v, %q)", name, errF, fastCap.sent, errS, sdkCap.sent)
		}
	}
}

func randomResponse(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	ws := func() {
		if r.IntN(3) == 0 {
			b.WriteString([]string{" ", "\n", "\t ", "\r\n"}[r.IntN(4)])
		}
	}
	str := func(s string) {
		q, _ := json.Marshal(s)
		b.Write(q)
	}
	b.WriteString("{")
	ws()
	failed := 0
	b.WriteString(`"Records":`)
	ws()
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
			ws()
		}
		b.WriteString("{")
		if r.IntN(5) == 0 {
			failed++
			b.WriteString(`"ErrorCode":`)
			str([]string{"ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException"}[r.IntN(3)])
			b.WriteString(`,"ErrorMessage":`)
			str(tricky[r.IntN(len(tricky))] + " for shard shardId-000000000001")
		} else {
			b.WriteString(`"SequenceNumber":`)
			str(fmt.Sprintf("49%054d", r.Uint64()))
			b.WriteString(`,`)
			ws()
			b.WriteString(`"ShardId":`)
			str(fmt.Sprintf("shardId-%012d", r.IntN(100)))
		}
		if r.IntN(10) == 0 {
			b.WriteString(`,"Unknown":{"a":[1,2.5e3,true,null,{"b":"c\"d"}]}`)
		}
		b.WriteString("}")
	}
	b.WriteString("]")
	ws()
	fmt.Fprintf(&b, `,"FailedRecordCount":%d`, failed)
	if r.IntN(2) == 0 {
		b.WriteString(`,"EncryptionType":"KMS"`)
	}
	if r.IntN(4) == 0 {
		b.WriteString(`,"Extra":null`)
	}
	ws()
	b.WriteString("}")
	return b.Bytes()
}

// Responses decode as the SDK decodes them, whitespace, escapes and unknown
// members included.
func TestResponseMatchesTheSDK(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	// Bodies without a Records array, which the SDK decodes as no entries,
	// are errors here (TestMalformedResponses).
	bodies := [][]byte{
		[]byte(`{"Records":[],"FailedRecordCount":0}`),
		[]byte(`{"Records":[{"SequenceNumber":"1","ShardId":"s"}],"FailedRecordCount":null}`),
		[]byte(`{"Records":[{"ErrorCode":"InternalFailure","SequenceNumber":"1","ShardId":"s"}],"FailedRecordCount":1}`),
		[]byte(`{"Records":[{"SequenceNumber":"1","SequenceNumber":null,"ErrorCode":"InternalFailure"}]}`),
	}
	for range 50 {
		bodies = append(bodies, randomResponse(r, r.IntN(30)))
	}
	for _, body := range bodies {
		sdk, fast, _, _ := clients(200, body)
		want, err := sdk.PutRecords(context.Background(), in)
		if err != nil {
			t.Fatalf("SDK: %v for %s", err, body)
		}
		got, err := fast.PutRecords(context.Background(), in)
		if err != nil {
			t.Fatalf("fast: %v for %s", err, body)
		}
		if !reflect.DeepEqual(got.Records, want.Records) && (len(got.Records) != 0 || len(want.Records) != 0) {
			t.Fatalf("records differ for %s:\n%s\nwant\n%s", body, dump(got.Records), dump(want.Records))
		}
		if !reflect.DeepEqual(got.FailedRecordCount, want.FailedRecordCount) || got.EncryptionType != want.EncryptionType {
			t.Fatalf("for %s: failed %v %q, want %v %q", body, aws.ToInt32(got.FailedRecordCount), got.EncryptionType,
				aws.ToInt32(want.FailedRecordCount), want.EncryptionType)
		}
	}
}

func dump(recs []types.PutRecordsResultEntry) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%q %q %q %q\n", aws.ToString(r.SequenceNumber), aws.ToString(r.ShardId), aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
	}
	return b.String()
}

// Error responses are the SDK's to decode: ferry classifies them by the
// SDK's error types.
func TestErrorResponsesAreTheSDKs(t *testing.T) {
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	for _, tc := range []struct {
		status int
		body   string
		code   string
	}{
		{400, `{"__type":"ResourceNotFoundException","message":"Stream s not found"}`, "ResourceNotFoundException"},
		{400, `{"__type":"com.amazonaws.kinesis#ProvisionedThroughputExceededException","message":"Rate exceeded"}`, "ProvisionedThroughputExceededException"},
		{500, `{"__type":"InternalFailure"}`, "InternalFailure"},
	} {
		_, fast, _, _ := clients(tc.status, []byte(tc.body))
		_, err := fast.PutRecords(context.Background(), in)
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != tc.code {
			t.Errorf("status %d %s: error %v, want API error %s", tc.status, tc.body, err, tc.code)
		}
	}
	// A body the codec cannot read is a deserialization error, as the SDK's.
	_, fast, _, _ := clients(200, []byte(`{"Records":[{"ShardId":5}]}`))
	_, err := fast.PutRecords(context.Background(), in)
	var de *smithy.DeserializationError
	if !errors.As(err, &de) {
		t.Fatalf("malformed body: error %v, want a DeserializationError", err)
	}
}

// A 2xx body that does not report an outcome for every entry is an error
// wrapping ErrMalformedResponse, from the decoder and through the client;
// before it, null and {} entries decoded as successes without a sequence
// number, and a body without Records as "nothing failed".
func TestMalformedResponses(t *testing.T) {
	t.Parallel()
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	for _, tc := range []struct {
		name, body string
		want       string // in the error message
	}{
		{"null entry", `{"Records":[null]}`, "Records[0] at byte 12: want an object, not null"},
		{"empty entry", `{"Records":[{}]}`, "Records[0] at byte 12: neither a SequenceNumber nor an ErrorCode"},
		{"empty entry after a good one", `{"Records":[{"SequenceNumber":"1","ShardId":"s"}, {}]}`, "Records[1] at byte 50: neither"},
		{"null entry after a failed one", `{"Records":[{"ErrorCode":"InternalFailure"},null]}`, "Records[1] at byte 44: want an object, not null"},
		{"shard id only", `{"Records":[{"ShardId":"shardId-000000000001"}]}`, "Records[0] at byte 12: neither"},
		{"empty sequence number", `{"Records":[{"SequenceNumber":"","ShardId":"s"}]}`, "Records[0] at byte 12: neither"},
		{"null sequence number", `{"Records":[{"SequenceNumber":null,"ShardId":"s"}]}`, "Records[0] at byte 12: neither"},
		{"empty error code", `{"Records":[{"ErrorCode":"","ErrorMessage":"m"}]}`, "Records[0] at byte 12: neither"},
		{"error message only", `{"Records":[{"ErrorMessage":"m"}]}`, "Records[0] at byte 12: neither"},
		{"unknown members only", `{"Records":[{"Other":"1"}]}`, "Records[0] at byte 12: neither"},
		{"number entry", `{"Records":[1]}`, "Records[0] at byte 12: want an object, not a number"},
		{"string entry", `{"Records":["49590338271490256608559692538361571095921575989136588898"]}`, "Records[0] at byte 12: want an object, not a string"},
		{"array entry", `{"Records":[[{"SequenceNumber":"1"}]]}`, "Records[0] at byte 12: want an object, not an array"},
		{"boolean entry", `{"Records":[ true]}`, "Records[0] at byte 13: want an object, not a boolean"},
		{"null records", `{"Records":null,"FailedRecordCount":0}`, "at byte 11: Records: want an array"},
		{"records an object", `{"Records":{"SequenceNumber":"1"}}`, "at byte 11: Records: want an array"},
		{"missing records", `{"FailedRecordCount":0}`, "no Records array"},
		{"empty object", `{}`, "no Records array"},
		{"null body", `null`, "at byte 0: want an object"},
		{"empty body", ``, "at byte 0: want an object"},
		{"blank body", " \n", "at byte 2: want an object"},
		{"syntax error", `{"Records":[{"ShardId":5}]}`, "at byte 23: want '\"'"},
		{"trailing data", `{"Records":[]} {}`, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out kinesis.PutRecordsOutput
			err := DecodePutRecordsOutput([]byte(tc.body), &out)
			if !errors.Is(err, ErrMalformedResponse) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode %s: error %v, want ErrMalformedResponse with %q", tc.body, err, tc.want)
			}
			_, fast, _, _ := clients(200, []byte(tc.body))
			got, err := fast.PutRecords(t.Context(), in)
			var de *smithy.DeserializationError
			if got != nil || !errors.Is(err, ErrMalformedResponse) || !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("client, %s: (%v, %v), want a DeserializationError wrapping ErrMalformedResponse with %q", tc.body, got, err, tc.want)
			}
		})
	}
}

// Bodies that look odd but say what happened to each entry decode without
// error. ErrorCode marks a failure even when a sequence number comes with
// it, so the caller resends rather than acknowledges.
func TestOddButWellFormedResponses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       []types.PutRecordsResultEntry
	}{
		{"no entries", `{"Records":[],"FailedRecordCount":0}`, []types.PutRecordsResultEntry{}},
		{"error code and sequence number", `{"Records":[{"SequenceNumber":"1","ShardId":"s","ErrorCode":"InternalFailure","ErrorMessage":"m"}]}`,
			[]types.PutRecordsResultEntry{{SequenceNumber: aws.String("1"), ShardId: aws.String("s"), ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("m")}}},
		{"error code, empty sequence number", `{"Records":[{"SequenceNumber":"","ErrorCode":"InternalFailure"}]}`,
			[]types.PutRecordsResultEntry{{SequenceNumber: aws.String(""), ErrorCode: aws.String("InternalFailure")}}},
		{"empty error code, sequence number", `{"Records":[{"SequenceNumber":"1","ErrorCode":""}]}`,
			[]types.PutRecordsResultEntry{{SequenceNumber: aws.String("1"), ErrorCode: aws.String("")}}},
		{"sequence number without shard id", `{"Records":[{"SequenceNumber":"1"}]}`,
			[]types.PutRecordsResultEntry{{SequenceNumber: aws.String("1")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out kinesis.PutRecordsOutput
			if err := DecodePutRecordsOutput([]byte(tc.body), &out); err != nil {
				t.Fatalf("decode %s: %v", tc.body, err)
			}
			if !reflect.DeepEqual(out.Records, tc.want) {
				t.Fatalf("decode %s:\n%s\nwant\n%s", tc.body, dump(out.Records), dump(tc.want))
			}
		})
	}
}

// Through a real HTTP server and the SDK's default retryer, a malformed 200
// is returned at once (the SDK does not resend it) and still matches
// ErrMalformedResponse; a 200 body that breaks off does not match it, so
// callers can keep treating that as an ambiguous read failure.
func TestMalformedResponseThroughHTTP(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", contentType)
		if r.URL.Path == "/truncated" {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, `{"Records":[{"SequenceNumber":"1"`)
			return // the server closes the connection short of 100 bytes
		}
		_, _ = io.WriteString(w, `{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"s"},{}]}`)
	}))
	t.Cleanup(srv.Close)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{Data: []byte("x"), PartitionKey: aws.String("k")}, {Data: []byte("y"), PartitionKey: aws.String("k")}}}
	cl := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: aws.AnonymousCredentials{}},
		func(o *kinesis.Options) { o.Protocol = New(o.Protocol) })

	_, err := cl.PutRecords(t.Context(), in)
	if !errors.Is(err, ErrMalformedResponse) || !strings.Contains(err.Error(), "Records[1]") {
		t.Fatalf("error %v, want ErrMalformedResponse naming Records[1]", err)
	}
	var opErr *smithy.OperationError
	var resp *smithyhttp.ResponseError
	if !errors.As(err, &opErr) || !errors.As(err, &resp) || resp.HTTPStatusCode() != 200 {
		t.Fatalf("error %v (%T), want an OperationError around a status-200 ResponseError", err, err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d requests, want 1 (no SDK retry)", n)
	}

	_, err = cl.PutRecords(t.Context(), in, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(srv.URL + "/truncated")
		o.RetryMaxAttempts = 1
	})
	var de *smithy.DeserializationError
	if err == nil || errors.Is(err, ErrMalformedResponse) || !errors.As(err, &de) {
		t.Fatalf("truncated body: error %v, want a DeserializationError not wrapping ErrMalformedResponse", err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: error %v, want io.ErrUnexpectedEOF (a read failure)", err)
	}
}

// The fuzz test's reference is encoding/json into generic values, which
// keeps member names' case as the codec (and the SDK) does. Beyond agreeing
// with it, an accepted body must be a delivery report: a Records array whose
// every entry is an object with a non-empty ErrorCode or SequenceNumber, so
// that no entry reads as a success without a sequence number.
func FuzzDecodePutRecordsOutput(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 10 {
		f.Add(randomResponse(r, r.IntN(5)))
	}
	f.Add([]byte(`{"Records":[{"ShardId":"a\u00e9\ud83d\ude80","SequenceNumber":"1"}]}`))
	f.Add([]byte(`{"Records":[{"SequenceNumber":"1"}],"x":[[[[]]]]}`))
	f.Add([]byte("{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"\xe2\"}]}"))
	f.Add([]byte(`{"Records":[{"ErrorCode":"InternalFailure","SequenceNumber":""}]}`))
	f.Add([]byte(`{"Records":[{}],"x":[[[[]]]]}`))
	f.Add([]byte(`{"Records":[null]}`))
	f.Add([]byte(`{"Records":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var out kinesis.PutRecordsOutput
		if err := DecodePutRecordsOutput(body, &out); err != nil {
			// Rejecting is fine (the SDK rejects junk too), but always as
			// a malformed response, which callers match.
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("error %v for %q does not wrap ErrMalformedResponse", err, body)
			}
			return
		}
		var ref map[string]any
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", body, err)
		}
		recs, isArray := ref["Records"].([]any)
		if !isArray || out.Records == nil {
			t.Fatalf("accepted %q without a Records array (encoding/json: %v)", body, ref["Records"])
		}
		if len(recs) != len(out.Records) {
			t.Fatalf("%d records, encoding/json %d, for %q", len(out.Records), len(recs), body)
		}
		for i, rv := range recs {
			m, isObject := rv.(map[string]any)
			if !isObject {
				t.Fatalf("accepted record %d = %v, not an object, for %q", i, rv, body)
			}
			e := out.Records[i]
			if aws.ToString(e.ErrorCode) == "" && aws.ToString(e.SequenceNumber) == "" {
				t.Fatalf("record %d is a success without a sequence number, for %q", i, body)
			}
			for name, got := range map[string]*string{"SequenceNumber": e.SequenceNumber, "ShardId": e.ShardId, "ErrorCode": e.ErrorCode, "ErrorMessage": e.ErrorMessage} {
				want, ok := m[name].(string)
				if ok != (got != nil) || ok && *got != want {
					t.Fatalf("record %d %s = %v, encoding/json %q, for %q", i, name, got, m[name], body)
				}
			}
		}
	})
}

// BenchmarkCodec compares one PutRecords of 500 x 256-byte records through
// the SDK's protocol and through this codec (request encoding, signing,
// response decoding; no network).
func BenchmarkCodec(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	in := &kinesis.PutRecordsInput{StreamName: aws.String("stream")}
	for i := range 500 {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{Data: make([]byte, 256), PartitionKey: aws.String(fmt.Sprintf("user-%d", i))})
	}
	var resp bytes.Buffer
	resp.WriteString(`{"FailedRecordCount":0,"Records":[`)
	for i := range 500 {
		if i > 0 {
			resp.WriteByte(',')
		}
		fmt.Fprintf(&resp, `{"SequenceNumber":"49%054d","ShardId":"shardId-%012d"}`, r.Uint64(), i%4)
	}
	resp.WriteString(`]}`)
	for _, name := range []string{"sdk", "ferry"} {
		b.Run(name, func(b *testing.B) {
			// Signed, as in production.
			cl := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1"), RetryMaxAttempts: 1,
				Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
					return aws.Credentials{AccessKeyID: "a", SecretAccessKey: "b"}, nil
				})}, func(o *kinesis.Options) {
				o.HTTPClient = &capture{status: 200, body: resp.Bytes()}
				if name == "ferry" {
					o.Protocol = New(o.Protocol)
				}
			})
			b.ReportAllocs()
			b.SetBytes(500 * 256)
			for b.Loop() {
				if _, err := cl.PutRecords(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
