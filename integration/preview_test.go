//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/connector"
	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/shardmap"
)

// ferry preview on a real broker and kinesis-mock: each record's verdict
// (sent, filtered, missing key, too large, tombstone skipped), stream,
// partition key and predicted shard; nothing is written to the stream and
// nothing committed for the group.
func TestPreviewShowsWhatFerryWouldSend(t *testing.T) {
	e := newEnv(t, harness.KindMock, 1, 1, 2)
	topic := e.topics[0]
	tenant := func(v string) []kgo.RecordHeader { return headers("tenant", v) }
	recs := []*kgo.Record{
		{Topic: topic, Key: []byte("a"), Value: []byte("v0"), Headers: tenant("acme")},
		{Topic: topic, Key: []byte("b"), Value: []byte("v1"), Headers: append(tenant("acme"), kgo.RecordHeader{Key: "type", Value: []byte("heartbeat")})},
		{Topic: topic, Key: []byte("c"), Value: []byte("v2")},
		{Topic: topic, Key: []byte("d"), Value: bytes.Repeat([]byte("x"), 3000), Headers: tenant("globex")},
		{Topic: topic, Key: []byte("e"), Headers: tenant("initech")},
		{Topic: topic, Key: []byte("f"), Value: []byte("v5"), Headers: tenant("globex")},
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := harness.Produce(ctx, e.brokers, recs); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("  max_record_bytes: 2KiB\n  aggregation: {max_bytes: 1KiB}\n  tombstones: skip\n")
	e.withRoutes(cfg, e.route(`    partition_key: "header:tenant"
    on_missing: [skip]
    filters: [{header: {name: type, equals: heartbeat}, reason: heartbeat}]
`))
	cmd := exec.CommandContext(ctx, e.bin, "preview", "--config", cfg, "--limit", "10", "--json")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("ferry preview: %v\n%s", err, errOut.String())
	}
	var got []connector.PreviewRecord
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r connector.PreviewRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, r)
	}
	want := []string{connector.VerdictSent, connector.VerdictFiltered, connector.VerdictMissingKey, connector.VerdictTooLarge,
		connector.VerdictSkipped, connector.VerdictSent}
	if len(got) != len(want) {
		t.Fatalf("preview printed %d records, want %d:\n%s", len(got), len(want), out.String())
	}
	shards, err := harness.ListShardRanges(ctx, e.kc, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := shardmap.New(shards)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r.Offset != int64(i) || r.Verdict != want[i] {
			t.Errorf("record %d: %+v, want verdict %q", i, r, want[i])
		}
		if r.Verdict == connector.VerdictSent {
			if _, shard := m.Lookup(shardmap.HashKey(r.PartitionKey)); r.Stream != e.stream || r.Shard != shard {
				t.Errorf("record %d goes to %s/%s, want %s/%s", i, r.Stream, r.Shard, e.stream, shard)
			}
		}
	}
	if got[0].PartitionKey != "acme" || got[5].PartitionKey != "globex" || got[1].Reason != "heartbeat" {
		t.Errorf("keys %q %q, filter reason %q", got[0].PartitionKey, got[5].PartitionKey, got[1].Reason)
	}
	read, err := harness.ReadAll(ctx, e.kc, e.stream)
	if err != nil || len(read) != 0 {
		t.Fatalf("the stream holds %d records after a preview (%v)", len(read), err)
	}
	if c := e.committed(); total(c) != 0 {
		t.Fatalf("preview committed %v", c)
	}
	table := exec.CommandContext(ctx, e.bin, "preview", "--config", cfg)
	tout, err := table.Output()
	if err != nil || !strings.Contains(string(tout), "VERDICT") || !strings.Contains(string(tout), "too large") {
		t.Fatalf("ferry preview (table): %v\n%s", err, tout)
	}
	t.Logf("ferry preview:\n%s", tout)
}
