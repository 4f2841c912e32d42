package fastsink

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/ferrylabs/ferry/connector"
)

func startSink(t testing.TB, opts ...Option) *Sink {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// client is the SDK's own client (its own protocol, one attempt), with
// ferry's guard against the duplicate-on-success race: without it a fast
// answer sometimes fails the call after the sink stored the batch, and
// these tests count exactly.
func client(url string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint:     aws.String(url),
		RetryMaxAttempts: 1,
		HTTPClient:       connector.EarlyAnswerSafe(awshttp.NewBuildableClient()),
	})
}

var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

// wantShard computes a hash key's shard among n even ranges independently of the sink.
func wantShard(h *big.Int, n int) string {
	for i := n - 1; i >= 0; i-- {
		start := new(big.Int).Mul(big.NewInt(int64(i)), two128)
		start.Div(start, big.NewInt(int64(n)))
		if h.Cmp(start) >= 0 {
			return fmt.Sprintf("shardId-%012d", i)
		}
	}
	panic("unreachable")
}

func md5Key(key string) *big.Int {
	sum := md5.Sum([]byte(key))
	return new(big.Int).SetBytes(sum[:])
}

// trickyKeys need JSON escapes or are not ASCII.
var trickyKeys = []string{
	"plain",
	"ключ-é-日本-😀",
	"ctl\x01\x1f\n\t\r\b\f",
	`q"b\s/`,
	"<>&",
	"sep\u2028\u2029",
	"del\x7f",
	strings.Repeat("é", 250),
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestPutRecordsRoundTrip(t *testing.T) {
	s := startSink(t, WithShards(4))
	c := client(s.URL())
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []types.PutRecordsRequestEntry
	var ids []string
	var wantBytes int64
	for i := range 500 {
		id := fmt.Sprintf("topic|%d|", i)
		data := []byte(id)
		for range rng.IntN(300) {
			data = append(data, byte(rng.IntN(256))) // binary, including '|' and 0
		}
		key := trickyKeys[i%len(trickyKeys)] + strconv.Itoa(i)
		recs = append(recs, types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(key)})
		ids = append(ids, id)
		wantBytes += int64(len(data) + len(key))
	}
	put := func() *kinesis.PutRecordsOutput {
		out, err := c.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.FailedRecordCount) != 0 || len(out.Records) != len(recs) {
			t.Fatalf("failed %d, %d result entries", aws.ToInt32(out.FailedRecordCount), len(out.Records))
		}
		return out
	}
	out := put()
	last := map[string]*big.Int{}
	for i, r := range out.Records {
		key := aws.ToString(recs[i].PartitionKey)
		if want := wantShard(md5Key(key), 4); aws.ToString(r.ShardId) != want {
			t.Errorf("record %d key %q: shard %s, want %s", i, key, aws.ToString(r.ShardId), want)
		}
		seq, ok := new(big.Int).SetString(aws.ToString(r.SequenceNumber), 10)
		if !ok {
			t.Fatalf("sequence number %q", aws.ToString(r.SequenceNumber))
		}
		if prev := last[aws.ToString(r.ShardId)]; prev != nil && seq.Cmp(prev) <= 0 {
			t.Errorf("record %d: sequence number %v not above %v", i, seq, prev)
		}
		last[aws.ToString(r.ShardId)] = seq
	}
	if len(last) != 4 {
		t.Errorf("records went to %d shards, want 4", len(last))
	}
	for _, id := range ids {
		if n := s.Count(id); n != 1 {
			t.Fatalf("Count(%q) = %d, want 1", id, n)
		}
	}
	want := Stats{Requests: 1, PutRecordsRequests: 1, Records: 500, Bytes: wantBytes, Distinct: 500}
	if st := s.Stats(); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}

	put()
	want = Stats{Requests: 2, PutRecordsRequests: 2, Records: 1000, Bytes: 2 * wantBytes, Distinct: 500, Duplicates: 500}
	if st := s.Stats(); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	counts := s.Counts()
	if len(counts) != 500 {
		t.Fatalf("%d ids, want 500", len(counts))
	}
	for _, id := range ids {
		if counts[id] != 2 {
			t.Fatalf("Counts()[%q] = %d, want 2", id, counts[id])
		}
	}

	s.Reset()
	if st := s.Stats(); st != (Stats{}) || len(s.Counts()) != 0 || s.Count(ids[0]) != 0 {
		t.Fatalf("after Reset: %+v, %d ids", st, len(s.Counts()))
	}
	put()
	if st := s.Stats(); st.Distinct != 500 || st.Duplicates != 0 {
		t.Fatalf("after Reset and a put: %+v", st)
	}
}

func TestExplicitHashKey(t *testing.T) {
	s := startSink(t, WithShards(3))
	c := client(s.URL())
	max := new(big.Int).Sub(two128, big.NewInt(1))
	third := new(big.Int).Div(two128, big.NewInt(3))
	keys := []*big.Int{big.NewInt(0), new(big.Int).Sub(third, big.NewInt(1)), third,
		new(big.Int).Mul(third, big.NewInt(2)), max}
	var recs []types.PutRecordsRequestEntry
	for i, k := range keys {
		recs = append(recs, types.PutRecordsRequestEntry{Data: fmt.Appendf(nil, "t|%d|", i),
			PartitionKey: aws.String("k"), ExplicitHashKey: aws.String(k.String())})
	}
	out, err := c.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []string{"shardId-000000000000", "shardId-000000000000", "shardId-000000000001",
		"shardId-000000000002", "shardId-000000000002"}
	for i, r := range out.Records {
		if got := aws.ToString(r.ShardId); got != wantIDs[i] || got != wantShard(keys[i], 3) {
			t.Errorf("hash key %v: shard %s, want %s", keys[i], got, wantIDs[i])
		}
	}
}

func TestLimits(t *testing.T) {
	s := startSink(t)
	c := client(s.URL())
	entries := func(n, size int, key string) []types.PutRecordsRequestEntry {
		var out []types.PutRecordsRequestEntry
		for i := range n {
			d := make([]byte, size)
			copy(d, fmt.Sprintf("t|%d|", i))
			out = append(out, types.PutRecordsRequestEntry{Data: d, PartitionKey: aws.String(key)})
		}
		return out
	}
	ok := []struct {
		name string
		recs []types.PutRecordsRequestEntry
	}{
		{"500 records", entries(500, 10, "k")},
		{"record of exactly 1 MiB", entries(1, MaxRecordBytes-1, "k")},
		{"request of exactly 5 MiB", entries(5, MaxRecordBytes-1, "k")},
		{"key of 256 characters", entries(1, 10, strings.Repeat("é", 256))},
		{"empty data", []types.PutRecordsRequestEntry{{Data: []byte{}, PartitionKey: aws.String("k")}}},
	}
	bad := []struct {
		name string
		recs []types.PutRecordsRequestEntry
	}{
		{"501 records", entries(501, 10, "k")},
		{"no records", []types.PutRecordsRequestEntry{}},
		{"record over 1 MiB", entries(1, MaxRecordBytes, "k")},
		{"request over 5 MiB", entries(6, 900<<10, "k")},
		{"empty key", entries(1, 10, "")},
		{"key of 257 characters", entries(1, 10, strings.Repeat("é", 257))},
		{"no key", []types.PutRecordsRequestEntry{{Data: []byte("x")}}},
		{"hash key 2^128", []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k"),
			ExplicitHashKey: aws.String(two128.String())}}},
		{"hash key with leading zero", []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k"),
			ExplicitHashKey: aws.String("01")}}},
	}
	for _, tc := range ok {
		s.Reset()
		if _, err := c.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: tc.recs}); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if st := s.Stats(); st.Records != int64(len(tc.recs)) || st.LimitViolations != 0 {
			t.Errorf("%s: stats %+v", tc.name, st)
		}
	}
	s.Reset()
	for i, tc := range bad {
		_, err := c.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: tc.recs})
		if code := apiCode(err); code != "ValidationException" {
			t.Errorf("%s: error %v (code %q), want ValidationException", tc.name, err, code)
		}
		if st := s.Stats(); st.Records != 0 || st.Distinct != 0 || st.LimitViolations != int64(i+1) {
			t.Errorf("%s: stats %+v", tc.name, st)
		}
	}
	// PutRecord has the same per-record limits.
	_, err := c.PutRecord(t.Context(), &kinesis.PutRecordInput{StreamName: aws.String("s"), Data: []byte("x"),
		PartitionKey: aws.String(strings.Repeat("k", 257))})
	if code := apiCode(err); code != "ValidationException" {
		t.Errorf("PutRecord with a long key: %v", err)
	}
}

func TestPutRecord(t *testing.T) {
	s := startSink(t, WithShards(2))
	c := client(s.URL())
	key := "ключ\x01"
	out, err := c.PutRecord(t.Context(), &kinesis.PutRecordInput{StreamName: aws.String("s"),
		Data: []byte("t|7|payload"), PartitionKey: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(out.ShardId), wantShard(md5Key(key), 2); got != want {
		t.Errorf("shard %s, want %s", got, want)
	}
	if got := aws.ToString(out.SequenceNumber); got != strconv.FormatUint(FirstSequenceNumber, 10) {
		t.Errorf("first sequence number %s", got)
	}
	if s.Count("t|7|") != 1 || s.Stats().Records != 1 || s.Stats().Bytes != int64(len("t|7|payload")+len(key)) {
		t.Errorf("stats %+v", s.Stats())
	}
}

func TestDescribeAndListShards(t *testing.T) {
	s := startSink(t, WithShards(4))
	c := client(s.URL())
	ctx := t.Context()
	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	d := sum.StreamDescriptionSummary
	if d.StreamStatus != types.StreamStatusActive || aws.ToInt32(d.OpenShardCount) != 4 ||
		aws.ToInt32(d.MaxRecordSizeInKiB) != 1024 || aws.ToString(d.StreamName) != "orders" ||
		aws.ToString(d.StreamARN) != "arn:aws:kinesis:us-east-1:000000000000:stream/orders" || d.StreamCreationTimestamp == nil {
		t.Errorf("summary %+v", d)
	}
	sum, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{
		StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/byarn")})
	if err != nil || aws.ToString(sum.StreamDescriptionSummary.StreamName) != "byarn" {
		t.Errorf("by ARN: %v %+v", err, sum)
	}

	checkShards := func(shards []types.Shard) {
		t.Helper()
		if len(shards) != 4 {
			t.Fatalf("%d shards", len(shards))
		}
		next := big.NewInt(0)
		for i, sh := range shards {
			if aws.ToString(sh.ShardId) != fmt.Sprintf("shardId-%012d", i) {
				t.Errorf("shard %d id %s", i, aws.ToString(sh.ShardId))
			}
			start, ok1 := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
			end, ok2 := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
			if !ok1 || !ok2 || start.Cmp(next) != 0 || end.Cmp(start) <= 0 {
				t.Errorf("shard %d range %v..%v, want start %v", i, start, end, next)
			}
			if want := new(big.Int).Lsh(big.NewInt(int64(i)), 126); start.Cmp(want) != 0 {
				t.Errorf("shard %d starts at %v, want %v", i, start, want)
			}
			next = new(big.Int).Add(end, big.NewInt(1))
		}
		if next.Cmp(two128) != 0 {
			t.Errorf("ranges end at %v, want 2^128-1", new(big.Int).Sub(next, big.NewInt(1)))
		}
	}
	ls, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	checkShards(ls.Shards)
	ds, err := c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	if ds.StreamDescription.StreamStatus != types.StreamStatusActive || aws.ToBool(ds.StreamDescription.HasMoreShards) {
		t.Errorf("describe %+v", ds.StreamDescription)
	}
	checkShards(ds.StreamDescription.Shards)

	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("x"), ShardCount: aws.Int32(1)}); err != nil {
		t.Error(err)
	}
	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("x")}); err != nil {
		t.Error(err)
	}
	if st := s.Stats(); st.Requests != 6 || st.PutRecordsRequests != 0 {
		t.Errorf("stats %+v", st)
	}
}

func rawPost(t *testing.T, url, target, body string) (int, string, map[string]string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]string
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), m
}

func TestErrors(t *testing.T) {
	s := startSink(t)
	for _, tc := range []struct{ target, body, code string }{
		{"Kinesis_20131202.GetRecords", `{}`, "UnknownOperationException"},
		{"", `{}`, "UnknownOperationException"},
		{"Other_1.PutRecords", `{}`, "UnknownOperationException"},
		{"Kinesis_20131202.PutRecords", `{"Records":[{"Data":"eA==","PartitionKey":"k"}`, "SerializationException"},
		{"Kinesis_20131202.PutRecords", `{"Records":[{"Data":"e!==","PartitionKey":"k"}]}`, "SerializationException"},
		{"Kinesis_20131202.PutRecords", `{"Records":[{"Data":"eA=","PartitionKey":"k"}]}`, "SerializationException"},
		{"Kinesis_20131202.PutRecords", `{"Records":[{"Data":"eA==","PartitionKey":"k\q"}]}`, "SerializationException"},
		{"Kinesis_20131202.PutRecords", `{"Records":[{"PartitionKey":"k"}]}`, "ValidationException"},
		{"Kinesis_20131202.PutRecords", `{"Records":null}`, "ValidationException"},
		{"Kinesis_20131202.PutRecords", `{}`, "ValidationException"},
	} {
		status, hdr, m := rawPost(t, s.URL(), tc.target, tc.body)
		if status != http.StatusBadRequest || hdr != tc.code || m["__type"] != tc.code || m["message"] == "" {
			t.Errorf("%s %s: %d %q %v, want 400 %s", tc.target, tc.body, status, hdr, m, tc.code)
		}
	}
	if st := s.Stats(); st.Records != 0 || st.Distinct != 0 || st.LimitViolations != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestWithID(t *testing.T) {
	s := startSink(t, WithID(func(d []byte) string { return string(d[len(d)-3:]) }))
	status, _, _ := rawPost(t, s.URL(), "Kinesis_20131202.PutRecords",
		`{"Records":[{"Data":"`+base64.StdEncoding.EncodeToString([]byte("a|b|xyz"))+`","PartitionKey":"k"},`+
			`{"Data":"`+base64.RawStdEncoding.EncodeToString([]byte("c|d|xyz"))+`","PartitionKey":"k"}]}`)
	if status != http.StatusOK || s.Count("xyz") != 2 || s.Stats().Duplicates != 1 || s.Stats().Bytes != 16 {
		t.Errorf("status %d, counts %v, stats %+v", status, s.Counts(), s.Stats())
	}
}

func TestDefaultID(t *testing.T) {
	for _, tc := range []struct{ data, id string }{
		{"topic|123|rest|more", "topic|123|"},
		{"||", "||"},
		{"a|b", "a|b"},
		{"", ""},
		{strings.Repeat("x", 1000) + "|" + strings.Repeat("y", 300) + "|z", strings.Repeat("x", 1000) + "|" + strings.Repeat("y", 300) + "|"},
		{strings.Repeat("x", 5000), strings.Repeat("x", 5000)},
	} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
			got, err := defaultIDPrefix(nil, []byte(enc.EncodeToString([]byte(tc.data))))
			if err != nil || string(got) != tc.id {
				t.Errorf("id of %.20q = %.20q, %v; want %.20q", tc.data, got, err, tc.id)
			}
		}
	}
}

func TestConcurrent(t *testing.T) {
	s := startSink(t, WithShards(3))
	const workers, requests, perRequest, distinct = 8, 20, 100, 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := client(s.URL())
			for r := range requests {
				var recs []types.PutRecordsRequestEntry
				for i := range perRequest {
					n := (w*requests*perRequest + r*perRequest + i) % distinct
					recs = append(recs, types.PutRecordsRequestEntry{Data: fmt.Appendf(nil, "t|%d|x", n),
						PartitionKey: aws.String(strconv.Itoa(n))})
				}
				if _, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	const total = workers * requests * perRequest
	st := s.Stats()
	if st.Records != total || st.Distinct != distinct || st.Duplicates != total-distinct {
		t.Fatalf("stats %+v", st)
	}
	for id, n := range s.Counts() {
		if n != total/distinct {
			t.Fatalf("%s delivered %d times, want %d", id, n, total/distinct)
		}
	}
}

// TestParserAgainstEncodingJSON checks the scanner's unescaping and structure handling against
// encoding/json on hand-written and random bodies.
func TestParserAgainstEncodingJSON(t *testing.T) {
	bodies := []string{
		` { "StreamName" : "s\u00e9" , "Extra": {"a":[1,-2.5e+3,true,false,null,{"x":"\"}]"}],"b":{}},"Records" : [ ` +
			`{"PartitionKey":"\u00e9\ud83d\ude00\n\"\\\/<\u003c\u0026\u2028","ExplicitHashKey":null,"Data":"YWJj\/w=="} ,` +
			`{ "Data" : "" , "Unknown":[[]], "PartitionKey" : "lone\ud800x\ud800\u0041\udc00" , "ExplicitHashKey":"42"}` +
			` ] , "StreamARN":"arn" }` + "\n",
		`{"Records":[{"Data":"AA==","PartitionKey":"\t\b\f\r\u0000"}]}`,
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		var sb strings.Builder
		sb.WriteString(`{"Records":[`)
		for j := range 1 + rng.IntN(5) {
			if j > 0 {
				sb.WriteString(",")
			}
			var key []rune
			for range rng.IntN(12) {
				switch rng.IntN(4) {
				case 0:
					key = append(key, rune(rng.IntN(0x80)))
				case 1:
					key = append(key, rune(0x80+rng.IntN(0xD800-0x80)))
				case 2:
					key = append(key, rune(0x10000+rng.IntN(0x10FFFF-0x10000)))
				default:
					key = append(key, []rune(`"\/<>&`)[rng.IntN(6)])
				}
			}
			var k string
			if rng.IntN(2) == 0 {
				b, _ := json.Marshal(string(key))
				k = string(b)
			} else { // every rune as \u escapes, surrogate pairs above the BMP
				k = `"`
				for _, r := range key {
					if r >= 0x10000 {
						r -= 0x10000
						k += fmt.Sprintf(`\u%04X\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
					} else {
						k += fmt.Sprintf(`\u%04x`, r)
					}
				}
				k += `"`
			}
			data := make([]byte, rng.IntN(40))
			for i := range data {
				data[i] = byte(rng.IntN(256))
			}
			fmt.Fprintf(&sb, `{"PartitionKey":%s,"Data":"%s"}`, k, base64.StdEncoding.EncodeToString(data))
		}
		sb.WriteString(`]}`)
		bodies = append(bodies, sb.String())
	}
	for _, body := range bodies {
		var want struct {
			Records []struct {
				Data            []byte
				PartitionKey    string
				ExplicitHashKey *string
			}
		}
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		buf := []byte(body)
		p := parser{b: buf}
		got, err := p.putRecords(nil)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if len(got) != len(want.Records) {
			t.Fatalf("%s: %d records, want %d", body, len(got), len(want.Records))
		}
		for i, e := range got {
			w := want.Records[i]
			data, err := decodeAll(nil, buf[e.data.s:e.data.e])
			if err != nil || string(data) != string(w.Data) || e.dataLen != len(w.Data) {
				t.Errorf("%s: record %d data %q (len %d), want %q", body, i, data, e.dataLen, w.Data)
			}
			if k := string(buf[e.key.s:e.key.e]); k != w.PartitionKey {
				t.Errorf("%s: record %d key %q, want %q", body, i, k, w.PartitionKey)
			}
			if e.ehk.ok() != (w.ExplicitHashKey != nil) || (e.ehk.ok() && string(buf[e.ehk.s:e.ehk.e]) != *w.ExplicitHashKey) {
				t.Errorf("%s: record %d explicit hash key mismatch", body, i)
			}
		}
	}
}

func TestParseHashKey(t *testing.T) {
	max := new(big.Int).Sub(two128, big.NewInt(1))
	for _, s := range []string{"0", "1", "18446744073709551615", "18446744073709551616", max.String(), "123456789012345678901234567890"} {
		v, ok := parseHashKey([]byte(s))
		want, _ := new(big.Int).SetString(s, 10)
		if !ok || from128(v) != want.String() {
			t.Errorf("parseHashKey(%s) = %v %v", s, from128(v), ok)
		}
	}
	for _, s := range []string{"", "-1", "01", "1a", two128.String(), "999999999999999999999999999999999999999", "1000000000000000000000000000000000000000"} {
		if _, ok := parseHashKey([]byte(s)); ok {
			t.Errorf("parseHashKey(%q) accepted", s)
		}
	}
}

func TestBadShardCount(t *testing.T) {
	if _, err := New(WithShards(0)); err == nil {
		t.Error("WithShards(0) accepted")
	}
}

func TestIDHashCollisions(t *testing.T) {
	sh := idShard{idx: map[uint64]idRec{}}
	ids := []string{"a", "b", "", strings.Repeat("L", chunkSize), "c", strings.Repeat("m", chunkSize/4)}
	for round := 1; round <= 2; round++ {
		for _, id := range ids {
			if first := sh.inc(7, []byte(id)); first != (round == 1) { // every id has the same hash
				t.Fatalf("round %d: %.10q first=%v", round, id, first)
			}
		}
	}
	for _, id := range ids {
		if n := sh.count(7, []byte(id)); n != 2 {
			t.Errorf("%.10q: count %d", id, n)
		}
	}
	if sh.count(7, []byte("d")) != 0 || sh.count(8, []byte("a")) != 0 {
		t.Error("found an id never added")
	}
	seen := map[string]int{}
	sh.each(func(id []byte, n int) { seen[string(id)] = n })
	if len(seen) != len(ids) || seen[ids[3]] != 2 || len(sh.more) != len(ids)-1 {
		t.Errorf("each: %d ids, %d chained", len(seen), len(sh.more))
	}
}

func TestManyIDs(t *testing.T) {
	// Enough ids to fill several arena chunks per shard; Counts must return every id intact.
	s, err := newSink()
	if err != nil {
		t.Fatal(err)
	}
	const n = 200_000
	for i := range n {
		s.store(fmt.Appendf(nil, "topic|%d|", i))
	}
	s.store([]byte("topic|5|"))
	counts := s.Counts()
	if len(counts) != n || counts["topic|5|"] != 2 || counts["topic|199999|"] != 1 || s.Count("topic|77777|") != 1 {
		t.Fatalf("%d ids", len(counts))
	}
}
