//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// decodeEnvelopes is what an AWS consumer written in JavaScript does with
// ferry's envelope: a Lambda gets each Kinesis record's data base64-encoded,
// decodes it, parses the JSON and rebuilds the Kafka record's bytes. It
// prints each record canonically, bytes as hex.
const decodeEnvelopes = `
const fs = require('fs');
const bytes = (s, b64) => b64 !== undefined ? Buffer.from(b64, 'base64') : (s === null || s === undefined ? null : Buffer.from(s, 'utf8'));
const hexOf = (b) => b === null ? null : b.toString('hex');
for (const line of fs.readFileSync(process.argv[2], 'utf8').split('\n')) {
  if (!line) continue;
  const env = JSON.parse(Buffer.from(line, 'base64').toString('utf8'));
  let value = null;
  if (env.valueBase64 !== undefined) value = Buffer.from(env.valueBase64, 'base64');
  else if (env.value !== null && env.value !== undefined) value = Buffer.from(typeof env.value === 'string' ? env.value : JSON.stringify(env.value), 'utf8');
  console.log(JSON.stringify({
    topic: env.topic, partition: env.partition, offset: env.offset,
    key: hexOf(bytes(env.key, env.keyBase64)), value: hexOf(value), tombstone: env.tombstone === true,
    headers: (env.headers || []).map(h => [hexOf(bytes(h.key, h.keyBase64)), hexOf(bytes(h.value, h.valueBase64))]),
  }));
}
`

type decodedRecord struct {
	Topic     string      `json:"topic"`
	Partition int32       `json:"partition"`
	Offset    int64       `json:"offset"`
	Key       *string     `json:"key"`
	Value     *string     `json:"value"`
	Tombstone bool        `json:"tombstone"`
	Headers   [][2]string `json:"headers"`
}

// format: envelope on a real broker into kinesis-mock, read back and decoded
// by a Node.js consumer: binary keys and values, JSON and text values,
// headers (binary, repeated) and tombstones come back exactly.
func TestEnvelopeRoundTripsToANodeConsumer(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		// Skipped on a developer's machine without it; a failure in CI.
		harness.Require(t, fmt.Errorf("node: %w: %w", err, harness.ErrUnavailable))
	}
	e := newEnv(t, harness.KindMock, 1, 2, 2)
	topic := e.topics[0]
	var recs []*kgo.Record
	for i := range 40 {
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "key-%d", i%7)}
		switch i % 5 {
		case 0:
			r.Value = fmt.Appendf(nil, `{"i":%d,"s":"caf\u00e9"}`, i)
		case 1:
			r.Value = []byte{0xff, 0xfe, byte(i), 0x00}
			r.Key = []byte{0x80, byte(i)}
		case 2:
			r.Value = fmt.Appendf(nil, "plain text %d", i)
			r.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}, {Key: "bin", Value: []byte{0xc3, 0x28}}, {Key: "trace", Value: []byte("def")}}
		case 3: // tombstone
		case 4:
			r.Value = []byte{}
		}
		recs = append(recs, r)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	acked, err := harness.Produce(ctx, e.brokers, recs)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.withRoutes(e.config(""), e.route("    format: envelope\n"))
	p := e.start(cfg, "ferry")
	e.waitCommitted(-1, time.Minute, p)
	e.stop(p)

	read, err := harness.ReadAll(ctx, e.kc, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	lines := filepath.Join(t.TempDir(), "data.b64")
	var sb strings.Builder
	for _, r := range read {
		sb.WriteString(base64.StdEncoding.EncodeToString(r.Data) + "\n")
	}
	if err := os.WriteFile(lines, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "decode.js")
	if err := os.WriteFile(script, []byte(decodeEnvelopes), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, node, script, lines).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	got := map[string]decodedRecord{} // by topic/partition/offset, as a consumer de-duplicates
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var d decodedRecord
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("decoded line %q: %v", sc.Text(), err)
		}
		got[fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.Offset)] = d
	}
	if len(got) != len(acked) {
		t.Fatalf("the consumer decoded %d distinct records, want %d", len(got), len(acked))
	}
	hexp := func(b []byte) *string {
		if b == nil {
			return nil
		}
		s := hex.EncodeToString(b)
		return &s
	}
	for i, a := range acked {
		d := got[fmt.Sprintf("%s/%d/%d", a.Topic, a.Partition, a.Offset)]
		want := decodedRecord{Topic: a.Topic, Partition: a.Partition, Offset: a.Offset, Key: hexp(a.Key), Value: hexp(a.Value),
			Tombstone: a.Value == nil, Headers: [][2]string{}}
		if i%5 == 0 {
			// auto embeds a JSON value as JSON: the consumer gets the same
			// document, re-serialised.
			var v any
			if err := json.Unmarshal(a.Value, &v); err != nil {
				t.Fatal(err)
			}
			re, _ := json.Marshal(v)
			want.Value = hexp(re)
		}
		for _, h := range recs[i].Headers {
			want.Headers = append(want.Headers, [2]string{hex.EncodeToString([]byte(h.Key)), hex.EncodeToString(h.Value)})
		}
		if d.Headers == nil {
			d.Headers = [][2]string{}
		}
		if show(d) != show(want) {
			t.Errorf("record %d:\n got %s\nwant %s", i, show(d), show(want))
		}
	}
}

func show(d decodedRecord) string {
	b, _ := json.Marshal(d)
	return string(b)
}
