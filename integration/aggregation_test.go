//go:build integration

package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/ferrylabs/ferry/aggregation"
	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/integration/internal/history"
	"github.com/ferrylabs/ferry/shardmap"
)

// With delivery.aggregation on, ferry writes KPL aggregated records. An
// independent implementation (the npm aws-kinesis-agg package, as Node
// consumers use it) de-aggregates what was stored in kinesalite: every user
// record comes back exactly once with its partition key and data, and every
// user record sits on the shard its own key maps to.
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
	aggregates := 0
	var in bytes.Buffer
	for _, r := range raw {
		if aggregation.IsAggregated(r.Data) {
			aggregates++
		}
		line, _ := json.Marshal(map[string]string{"partitionKey": r.PartitionKey, "data": base64.StdEncoding.EncodeToString(r.Data)})
		in.Write(append(line, '\n'))
	}
	t.Logf("%d user records in %d Kinesis records (%d aggregated); ratio metric %v/%v", len(produced), len(raw), aggregates,
		metric(metrics, "ferry_aggregated_user_records_total"), metric(metrics, "ferry_kinesis_records_total"))
	if aggregates == 0 || len(raw) >= len(produced) {
		t.Fatalf("%d Kinesis records for %d user records: nothing was aggregated", len(raw), len(produced))
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
	shards, err := e.kc.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String(e.stream)})
	if err != nil {
		t.Fatal(err)
	}
	var ss []shardmap.Shard
	for _, s := range shards.Shards {
		start, _ := shardmap.ParseHash(aws.ToString(s.HashKeyRange.StartingHashKey))
		end, _ := shardmap.ParseHash(aws.ToString(s.HashKeyRange.EndingHashKey))
		ss = append(ss, shardmap.Shard{ID: aws.ToString(s.ShardId), Start: start, End: end, Open: true})
	}
	m, err := shardmap.New(ss)
	if err != nil {
		t.Fatal(err)
	}
	var read []harness.StreamRecord
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var u user
		if err := dec.Decode(&u); err != nil {
			t.Fatal(err)
		}
		data, _ := base64.StdEncoding.DecodeString(u.Data)
		agg := raw[u.Aggregate]
		if _, id := m.Lookup(shardmap.HashKey(u.PartitionKey)); id != agg.ShardID {
			t.Fatalf("user record with key %q is on %s, but its key maps to %s", u.PartitionKey, agg.ShardID, id)
		}
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
}
