//go:build integration

package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/integration/internal/history"
)

// With delivery.aggregation on, ferry writes KPL aggregated records. An
// independent implementation (the npm aws-kinesis-agg package, as Node
// consumers use it) de-aggregates what was stored in kinesalite: every user
// record comes back exactly once with its partition key and data. The
// aggregates a Java KCL consumer would drop (harness.DeaggregateKCL: a user
// record outside the hash range of the shard the aggregate sits on) are left
// out, so their records count as lost; and as the stream is never resharded
// and ferry's shard map is right from the start, there must be none.
func TestAggregationInterop(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 2, 3, 4)
	rec := e.record()
	produced := e.produce(scale(5000), 300, 200)
	p := e.startMember(e.config(""), "ferry", "delivery.aggregation.enabled=true")
	e.waitCommitted(-1, 2*time.Minute, p)
	_, metrics := httpGet(t, p, "/metrics")
	e.stop(p)

	raw, err := harness.ReadAll(t.Context(), e.kc, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	shards, err := harness.ListShardRanges(t.Context(), e.kc, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	kcl, err := harness.DeaggregateKCL(raw, shards)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(kcl.Summary())
	aggregates := kcl.Aggregates()
	t.Logf("%d user records in %d Kinesis records (%d aggregated); ratio metric %v/%v", len(produced), len(raw), aggregates,
		metric(metrics, "ferry_aggregated_user_records_total"), metric(metrics, "ferry_kinesis_records_total"))
	if aggregates == 0 || len(raw) >= len(produced) {
		t.Fatalf("%d Kinesis records for %d user records: nothing was aggregated", len(raw), len(produced))
	}

	var in bytes.Buffer
	for _, r := range raw {
		line, _ := json.Marshal(map[string]string{"partitionKey": r.PartitionKey, "data": base64.StdEncoding.EncodeToString(r.Data)})
		in.Write(append(line, '\n'))
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		harness.Require(t, harness.ErrUnavailable)
	}
	cmd := exec.CommandContext(t.Context(), node, filepath.Join(root, "scripts", "kpl-deaggregate.js"))
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("aws-kinesis-agg: %v", err)
	}
	type user struct {
		Aggregate    int    `json:"aggregate"`
		PartitionKey string `json:"partitionKey"`
		Data         string `json:"data"`
	}
	var read []harness.StreamRecord
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var u user
		if err := dec.Decode(&u); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(kcl.Dropped, u.Aggregate) {
			continue // the KCL drops the whole aggregate
		}
		data, _ := base64.StdEncoding.DecodeString(u.Data)
		agg := raw[u.Aggregate]
		read = append(read, harness.StreamRecord{ShardID: agg.ShardID, SequenceNumber: agg.SequenceNumber, PartitionKey: u.PartitionKey, Data: data})
	}
	samples := rec.sampler.Stop()
	ends, err := history.EndOffsets(t.Context(), e.brokers, e.topics...)
	if err != nil {
		t.Fatal(err)
	}
	rep := history.Check(history.History{Produced: produced, Read: read, Samples: samples, Members: rec.members,
		Ends: ends, Ordering: "key"}, history.Options{})
	t.Logf("history (de-aggregated by aws-kinesis-agg):\n%s", rep.Summary())
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Duplicated != 0 {
		t.Fatalf("%d duplicates", rep.Duplicated)
	}
	if len(kcl.Dropped) > 0 {
		t.Fatalf("%d aggregates sit on a shard whose hash range lacks some of their user records, on a stream never resharded",
			len(kcl.Dropped))
	}
}
