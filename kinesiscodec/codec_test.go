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
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
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
	bodies := [][]byte{[]byte(`{}`), []byte(`{"Records":[],"FailedRecordCount":0}`), []byte(`{"Records":null,"FailedRecordCount":null}`)}
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

// The fuzz test's reference is encoding/json into generic values, which
// keeps member names' case as the codec (and the SDK) does.
func FuzzDecodePutRecordsOutput(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 10 {
		f.Add(randomResponse(r, r.IntN(5)))
	}
	f.Add([]byte(`{"Records":[{"ShardId":"a\u00e9\ud83d\ude80"}]}`))
	f.Add([]byte(`{"Records":[{}],"x":[[[[]]]]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var out kinesis.PutRecordsOutput
		if DecodePutRecordsOutput(body, &out) != nil {
			return // rejecting is fine: the SDK rejects junk too
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return
		}
		var ref map[string]any
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", body, err)
		}
		recs, _ := ref["Records"].([]any)
		if len(recs) != len(out.Records) {
			t.Fatalf("%d records, encoding/json %d, for %q", len(out.Records), len(recs), body)
		}
		for i, rv := range recs {
			m, _ := rv.(map[string]any)
			e := out.Records[i]
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
