package harness

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ferrylabs/ferry/aggregation"
	"github.com/ferrylabs/ferry/shardmap"
)

// kclShards is what kinesis-mock's ListShards returns after UpdateShardCount 2 -> 4 with uniform
// scaling: the two closed parents, then their children.
func kclShards(t *testing.T) []shardmap.Shard {
	t.Helper()
	shard := func(id, start, end string, open bool) shardmap.Shard {
		s, err := shardmap.ParseHash(start)
		if err != nil {
			t.Fatal(err)
		}
		e, err := shardmap.ParseHash(end)
		if err != nil {
			t.Fatal(err)
		}
		return shardmap.Shard{ID: id, Start: s, End: e, Open: open}
	}
	return []shardmap.Shard{
		shard("shardId-000000000000", "0", "170141183460469231731687303715884105726", false),
		shard("shardId-000000000001", "170141183460469231731687303715884105727", "340282366920938463463374607431768211455", false),
		shard("shardId-000000000002", "0", "85070591730234615865843651857942052862", true),
		shard("shardId-000000000003", "85070591730234615865843651857942052863", "170141183460469231731687303715884105726", true),
		shard("shardId-000000000004", "170141183460469231731687303715884105727", "255211775190703847597530955573826158590", true),
		shard("shardId-000000000005", "255211775190703847597530955573826158591", "340282366920938463463374607431768211455", true),
	}
}

// keysIn returns n partition keys that hash into s.
func keysIn(s shardmap.Shard, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if k := fmt.Sprintf("key-%d", i); s.Contains(shardmap.HashKey(k)) {
			keys = append(keys, k)
		}
	}
	return keys
}

// aggregate packs records into one aggregated Kinesis record read from shard.
func aggregate(t *testing.T, shard string, recs ...aggregation.Record) StreamRecord {
	t.Helper()
	a := aggregation.NewAggregator(1 << 20)
	for _, r := range recs {
		if !a.Add(r) {
			t.Fatal("aggregate full")
		}
	}
	data, pk, _ := a.Encode(nil)
	return StreamRecord{ShardID: shard, SequenceNumber: "1", PartitionKey: pk, Data: data}
}

func users(keys ...string) []aggregation.Record {
	out := make([]aggregation.Record, len(keys))
	for i, k := range keys {
		out[i] = aggregation.Record{PartitionKey: k, Data: []byte("v-" + k)}
	}
	return out
}

func TestDeaggregateKCL(t *testing.T) {
	shards := kclShards(t)
	parent0, child2, child3 := shards[0], shards[2], shards[3]
	in2, in3 := keysIn(child2, 3), keysIn(child3, 3)
	const (
		end2   = "85070591730234615865843651857942052862"
		start3 = "85070591730234615865843651857942052863"
	)
	ehk := func(pk, h string) aggregation.Record {
		return aggregation.Record{PartitionKey: pk, ExplicitHashKey: h, Data: []byte("v")}
	}
	corrupt := aggregate(t, child2.ID, users(in2[0])...)
	corrupt.Data[len(corrupt.Data)-1] ^= 0xff

	tests := []struct {
		name        string
		recs        []StreamRecord
		wantKeys    []string // partition keys delivered, in order
		wantAggs    int
		wantDropped []int
		wantLost    int // user records in dropped aggregates
		wantErr     bool
	}{
		{
			name:     "plain records pass unchecked",
			recs:     []StreamRecord{{ShardID: child2.ID, SequenceNumber: "1", PartitionKey: in3[0], Data: []byte("x")}},
			wantKeys: []string{in3[0]},
		},
		{
			name:     "aggregate within its shard",
			recs:     []StreamRecord{aggregate(t, child2.ID, users(in2...)...)},
			wantKeys: in2, wantAggs: 1,
		},
		{
			// The old defect: cut with the pre-reshard map (one shard for in2 and in3), stored on
			// child 3 by its first key; the KCL reading child 3 drops all of it.
			name:     "aggregate from the pre-reshard map on a child shard",
			recs:     []StreamRecord{aggregate(t, child3.ID, users(in3[0], in2[0], in3[1])...)},
			wantAggs: 1, wantDropped: []int{0}, wantLost: 3,
		},
		{
			name:     "same aggregate on the parent it was written to before the split",
			recs:     []StreamRecord{aggregate(t, parent0.ID, users(in3[0], in2[0], in3[1])...)},
			wantKeys: []string{in3[0], in2[0], in3[1]}, wantAggs: 1,
		},
		{
			name:     "the records before the stray one are dropped too",
			recs:     []StreamRecord{aggregate(t, child2.ID, users(in2[0], in2[1], in2[2], in3[0])...)},
			wantAggs: 1, wantDropped: []int{0}, wantLost: 4,
		},
		{
			name: "only the stray aggregate is dropped",
			recs: []StreamRecord{
				aggregate(t, child2.ID, users(in2[0])...),
				aggregate(t, child2.ID, users(in2[1], in3[0])...),
				{ShardID: child2.ID, SequenceNumber: "3", PartitionKey: in2[2], Data: []byte("x")},
			},
			wantKeys: []string{in2[0], in2[2]}, wantAggs: 2, wantDropped: []int{1}, wantLost: 2,
		},
		{
			name:     "explicit hash key wins over the partition key",
			recs:     []StreamRecord{aggregate(t, child2.ID, ehk(in3[0], "0"), ehk(in3[1], end2))},
			wantKeys: []string{in3[0], in3[1]}, wantAggs: 1,
		},
		{
			name:     "explicit hash key one past the range end",
			recs:     []StreamRecord{aggregate(t, child2.ID, ehk(in2[0], "0"), ehk(in2[1], start3))},
			wantAggs: 1, wantDropped: []int{0}, wantLost: 2,
		},
		{
			name:     "explicit hash key one before the range start",
			recs:     []StreamRecord{aggregate(t, child3.ID, ehk(in3[0], start3), ehk(in3[1], end2))},
			wantAggs: 1, wantDropped: []int{0}, wantLost: 2,
		},
		{
			name:    "unknown shard",
			recs:    []StreamRecord{aggregate(t, "shardId-000000000009", users(in2[0])...)},
			wantErr: true,
		},
		{
			name:    "corrupt aggregate",
			recs:    []StreamRecord{corrupt},
			wantErr: true,
		},
		{
			name:    "unparsable explicit hash key",
			recs:    []StreamRecord{aggregate(t, child2.ID, ehk(in2[0], "-1"))},
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DeaggregateKCL(tc.recs, shards)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; read %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, r := range got.Records {
				keys = append(keys, r.PartitionKey)
			}
			if !slices.Equal(keys, tc.wantKeys) {
				t.Errorf("delivered keys %q, want %q", keys, tc.wantKeys)
			}
			if got.Aggregates() != tc.wantAggs {
				t.Errorf("%d aggregates, want %d", got.Aggregates(), tc.wantAggs)
			}
			if !slices.Equal(got.Dropped, tc.wantDropped) {
				t.Errorf("dropped %v, want %v", got.Dropped, tc.wantDropped)
			}
			if got.DroppedUserRecords() != tc.wantLost {
				t.Errorf("%d user records dropped, want %d", got.DroppedUserRecords(), tc.wantLost)
			}
			if len(got.Examples) != len(tc.wantDropped) {
				t.Errorf("%d examples for %d drops", len(got.Examples), len(tc.wantDropped))
			}
			t.Log(got.Summary())
		})
	}
}
