package faultproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// fakeKinesis answers PutRecords with SequenceNumber "seq-<key>" per entry (or an upstream
// InternalFailure for keys listed in fail) and echoes other actions.
type fakeKinesis struct {
	mu       sync.Mutex
	received [][]string // partition keys per PutRecords request
	requests int
	fail     map[string]bool
}

func (f *fakeKinesis) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	w.Header().Set("Content-Type", contentTypeJSON11)
	if r.Header.Get("X-Amz-Target") != putRecordsTarget {
		fmt.Fprintf(w, `{"echo":%q}`, r.Header.Get("X-Amz-Target"))
		return
	}
	var req struct {
		StreamName string
		Records    []struct {
			Data         []byte
			PartitionKey string
		}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var keys []string
	type rec struct {
		SequenceNumber string `json:",omitempty"`
		ShardID        string `json:"ShardId,omitempty"`
		ErrorCode      string `json:",omitempty"`
		ErrorMessage   string `json:",omitempty"`
	}
	resp := struct {
		FailedRecordCount int
		Records           []rec
		EncryptionType    string
	}{EncryptionType: "NONE"}
	for _, e := range req.Records {
		keys = append(keys, e.PartitionKey)
		if f.fail[e.PartitionKey] {
			resp.FailedRecordCount++
			resp.Records = append(resp.Records, rec{ErrorCode: codeInternalFailure, ErrorMessage: "upstream"})
			continue
		}
		resp.Records = append(resp.Records, rec{SequenceNumber: "seq-" + e.PartitionKey, ShardID: "shardId-000000000000"})
	}
	f.received = append(f.received, keys)
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *fakeKinesis) snapshot() (int, [][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, append([][]string(nil), f.received...)
}

func setup(t *testing.T) (*Proxy, *fakeKinesis) {
	t.Helper()
	fk := &fakeKinesis{fail: map[string]bool{}}
	up := httptest.NewServer(fk)
	t.Cleanup(up.Close)
	p, err := New(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, fk
}

type putRecord struct {
	Data         []byte
	PartitionKey string
}

func entries(n int, size int) []putRecord {
	out := make([]putRecord, n)
	for i := range out {
		out[i] = putRecord{Data: bytes.Repeat([]byte{'x'}, size), PartitionKey: fmt.Sprintf("k%d", i)}
	}
	return out
}

type putResult struct {
	FailedRecordCount int
	Records           []struct{ SequenceNumber, ShardID, ErrorCode, ErrorMessage string }
	Type              string `json:"__type"`
}

// post sends a raw awsJson1_1 request and decodes the answer.
func post(t *testing.T, url, target string, body any) (int, putResult) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/", bytes.NewReader(b))
	req.Header.Set("Content-Type", contentTypeJSON11)
	req.Header.Set("X-Amz-Target", target)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out putResult
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
	}
	return resp.StatusCode, out
}

func putBody(recs []putRecord) map[string]any {
	return map[string]any{"StreamName": "s", "Records": recs}
}

func TestPassThroughOtherActions(t *testing.T) {
	p, fk := setup(t)
	p.SetFatal("AccessDeniedException")
	p.SetThrottle(1)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL()+"/", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", contentTypeJSON11)
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListShards")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "ListShards") {
		t.Fatalf("got %d %s", resp.StatusCode, b)
	}
	if n, _ := fk.snapshot(); n != 1 {
		t.Fatalf("upstream requests = %d, want 1", n)
	}
	if st := p.Stats(); st.Requests != 1 || st.PutRecordsRequests != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPartialFailureRebuildsInRequestOrder(t *testing.T) {
	p, fk := setup(t)
	fk.fail["k3"] = true // the emulator itself fails one forwarded entry
	p.SetEntryFailer(func(e Entry) (string, bool) {
		switch {
		case e.Index%3 == 0:
			return codeInternalFailure, true
		case e.Index%3 == 1:
			return "", false
		}
		return "", e.PartitionKey == "k5" // default code
	})
	status, res := post(t, p.URL(), putRecordsTarget, putBody(entries(8, 10)))
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	// 0,3,6 → InternalFailure (synthetic); 5 → PTE (synthetic); 1,2,4,7 forwarded.
	// k3 would be failed upstream but is never forwarded.
	wantFail := map[int]string{0: codeInternalFailure, 3: codeInternalFailure, 6: codeInternalFailure, 5: codeThroughput}
	if res.FailedRecordCount != 4 || len(res.Records) != 8 {
		t.Fatalf("FailedRecordCount %d, %d records", res.FailedRecordCount, len(res.Records))
	}
	for i, r := range res.Records {
		if code, ok := wantFail[i]; ok {
			if r.ErrorCode != code || r.ErrorMessage == "" || r.SequenceNumber != "" {
				t.Errorf("record %d: %+v, want %s", i, r, code)
			}
			continue
		}
		if r.SequenceNumber != fmt.Sprintf("seq-k%d", i) || r.ErrorCode != "" {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	_, got := fk.snapshot()
	if want := [][]string{{"k1", "k2", "k4", "k7"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("upstream got %v, want %v", got, want)
	}
	st := p.Stats()
	if st.EntriesSeen != 8 || st.EntriesForwarded != 4 || st.EntriesFailed != 4 || st.PutRecordsRequests != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPartialFailureMergesUpstreamFailures(t *testing.T) {
	p, fk := setup(t)
	fk.fail["k2"] = true
	p.SetEntryFailer(func(e Entry) (string, bool) { return "", e.Index == 0 })
	_, res := post(t, p.URL(), putRecordsTarget, putBody(entries(4, 1)))
	if res.FailedRecordCount != 2 {
		t.Fatalf("FailedRecordCount %d, want 2: %+v", res.FailedRecordCount, res)
	}
	codes := []string{res.Records[0].ErrorCode, res.Records[1].ErrorCode, res.Records[2].ErrorCode, res.Records[3].ErrorCode}
	if want := []string{codeThroughput, "", codeInternalFailure, ""}; fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("codes %q, want %q", codes, want)
	}
}

func TestPartialFailureFraction(t *testing.T) {
	p, fk := setup(t)
	p.SetSeed(1)
	p.SetPartialFailure(0.3, codeInternalFailure)
	_, res := post(t, p.URL(), putRecordsTarget, putBody(entries(500, 1)))
	failed := 0
	for _, r := range res.Records {
		if r.ErrorCode != "" {
			failed++
			if r.ErrorCode != codeInternalFailure {
				t.Fatalf("code %q", r.ErrorCode)
			}
		}
	}
	if failed != res.FailedRecordCount || failed < 100 || failed > 200 {
		t.Fatalf("failed %d, FailedRecordCount %d; want ≈150", failed, res.FailedRecordCount)
	}
	_, got := fk.snapshot()
	if len(got[0]) != 500-failed {
		t.Fatalf("forwarded %d, want %d", len(got[0]), 500-failed)
	}
	// All entries failed: nothing is forwarded.
	p.SetPartialFailure(1, "")
	_, res = post(t, p.URL(), putRecordsTarget, putBody(entries(3, 1)))
	if res.FailedRecordCount != 3 {
		t.Fatalf("FailedRecordCount %d", res.FailedRecordCount)
	}
	if n, _ := fk.snapshot(); n != 1 {
		t.Fatalf("upstream requests %d, want 1", n)
	}
}

func TestLimits(t *testing.T) {
	long := strings.Repeat("é", 257) // 257 characters, 514 bytes
	tests := []struct {
		name string
		recs []putRecord
		ok   bool
	}{
		{"500 records", entries(500, 1), true},
		{"501 records", entries(501, 1), false},
		{"no records", nil, false},
		{"empty key", []putRecord{{Data: []byte("x"), PartitionKey: ""}}, false},
		{"256-char key", []putRecord{{Data: []byte("x"), PartitionKey: long[:512]}}, true},
		{"257-char key", []putRecord{{Data: []byte("x"), PartitionKey: long}}, false},
		{"1 MiB data+key", []putRecord{{Data: make([]byte, MaxRecordBytes-2), PartitionKey: "ab"}}, true},
		{"1 MiB+1 data+key", []putRecord{{Data: make([]byte, MaxRecordBytes-1), PartitionKey: "ab"}}, false},
		{"5 MiB request", entries(5, MaxRecordBytes-2), true},
		{"5 MiB+ request", append(entries(5, MaxRecordBytes-2), putRecord{Data: []byte("x"), PartitionKey: "k"}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, fk := setup(t)
			status, res := post(t, p.URL(), putRecordsTarget, putBody(tc.recs))
			n, _ := fk.snapshot()
			if tc.ok {
				if status != 200 || n != 1 || p.Stats().LimitViolations != 0 {
					t.Fatalf("status %d, upstream %d, stats %+v", status, n, p.Stats())
				}
				return
			}
			if status != 400 || res.Type != "ValidationException" || n != 0 || p.Stats().LimitViolations != 1 {
				t.Fatalf("status %d type %q upstream %d stats %+v", status, res.Type, n, p.Stats())
			}
		})
	}
}

func TestLimitsOff(t *testing.T) {
	p, fk := setup(t)
	p.SetEnforceLimits(false)
	if status, _ := post(t, p.URL(), putRecordsTarget, putBody(entries(501, 1))); status != 200 {
		t.Fatalf("status %d", status)
	}
	if n, _ := fk.snapshot(); n != 1 || p.Stats().LimitViolations != 0 {
		t.Fatalf("upstream %d, stats %+v", n, p.Stats())
	}
}

func TestRequestLevelFaults(t *testing.T) {
	tests := []struct {
		name       string
		set        func(p *Proxy)
		status     int
		code       string
		forwarded  bool
		statsCheck func(st Stats) bool
	}{
		{"throttle", func(p *Proxy) { p.SetThrottle(1) }, 400, codeThroughput, false,
			func(st Stats) bool { return st.Throttled == 1 }},
		{"503", func(p *Proxy) { p.SetServerErrors(1, 503) }, 503, "ServiceUnavailable", false,
			func(st Stats) bool { return st.ServerErrors == 1 }},
		{"500", func(p *Proxy) { p.SetServerErrors(1, 0) }, 500, codeInternalFailure, false,
			func(st Stats) bool { return st.ServerErrors == 1 }},
		{"fatal", func(p *Proxy) { p.SetFatal("ResourceNotFoundException") }, 400, "ResourceNotFoundException", false,
			func(st Stats) bool { return st.Fatal == 1 }},
		{"ambiguous 500", func(p *Proxy) { p.SetAmbiguous(1, Ambiguous500) }, 500, codeInternalFailure, true,
			func(st Stats) bool { return st.Ambiguous == 1 && st.EntriesForwarded == 3 }},
		{"reset then pass", func(p *Proxy) { p.SetThrottle(1); p.Reset() }, 200, "", true,
			func(st Stats) bool { return st.Throttled == 0 && st.EntriesForwarded == 3 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, fk := setup(t)
			tc.set(p)
			status, res := post(t, p.URL(), putRecordsTarget, putBody(entries(3, 1)))
			n, _ := fk.snapshot()
			if status != tc.status || res.Type != tc.code || (n == 1) != tc.forwarded || !tc.statsCheck(p.Stats()) {
				t.Fatalf("status %d type %q upstream %d stats %+v", status, res.Type, n, p.Stats())
			}
		})
	}
}

func TestAmbiguousReset(t *testing.T) {
	p, fk := setup(t)
	p.SetAmbiguous(1, AmbiguousReset)
	b, _ := json.Marshal(putBody(entries(2, 1)))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL()+"/", bytes.NewReader(b))
	req.Header.Set("Content-Type", contentTypeJSON11)
	req.Header.Set("X-Amz-Target", putRecordsTarget)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a connection error", resp.StatusCode)
	}
	if n, _ := fk.snapshot(); n != 1 || p.Stats().Ambiguous != 1 {
		t.Fatalf("upstream %d, stats %+v", n, p.Stats())
	}
}

func TestDelays(t *testing.T) {
	p, _ := setup(t)
	p.SetDelay(60 * time.Millisecond)
	p.SetResponseDelay(60 * time.Millisecond)
	start := time.Now()
	if status, _ := post(t, p.URL(), putRecordsTarget, putBody(entries(1, 1))); status != 200 {
		t.Fatalf("status %d", status)
	}
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Fatalf("took %v, want ≥ 120ms", d)
	}
}

// TestSDKClient checks that aws-sdk-go-v2 parses the rebuilt response.
func TestSDKClient(t *testing.T) {
	p, _ := setup(t)
	p.SetEntryFailer(func(e Entry) (string, bool) { return "", e.PartitionKey == "b" })
	c := kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint:     aws.String(p.URL()),
		RetryMaxAttempts: 1,
	})
	out, err := c.PutRecords(t.Context(), &kinesis.PutRecordsInput{
		StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{
			{Data: []byte("1"), PartitionKey: aws.String("a")},
			{Data: []byte("2"), PartitionKey: aws.String("b")},
			{Data: []byte("3"), PartitionKey: aws.String("c")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 1 || aws.ToString(out.Records[1].ErrorCode) != codeThroughput ||
		aws.ToString(out.Records[0].SequenceNumber) != "seq-a" || aws.ToString(out.Records[2].SequenceNumber) != "seq-c" {
		t.Fatalf("unexpected output %+v", out.Records)
	}
	p.SetEntryFailer(nil)
	p.SetThrottle(1)
	_, err = c.PutRecords(t.Context(), &kinesis.PutRecordsInput{
		StreamName: aws.String("s"),
		Records:    []types.PutRecordsRequestEntry{{Data: []byte("1"), PartitionKey: aws.String("a")}},
	})
	var pte *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pte) {
		t.Fatalf("err %v, want ProvisionedThroughputExceededException", err)
	}
}
