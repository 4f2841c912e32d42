package connector

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferrylabs/ferry/aggregation"
	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/shardmap"
)

// splitKinesis is a stream of two shards that were each split in two before
// ferry started, but whose ListShards answers show the two parents as open
// for the first staleLists calls (a listing that lags the reshard). PutRecords
// stores by the real, split ranges, and reads back as a KCL application
// does: an aggregate with a record outside the range of the shard that
// stored it is dropped whole (AggregatorUtil.deaggregate with the shard's
// hash range).
type splitKinesis struct {
	*fakeKinesis
	staleLists int32
	lists      atomic.Int32
	real       *shardmap.Map
	parents    []shardmap.Shard
	children   []shardmap.Shard

	kclMu   sync.Mutex
	kclSeen map[string]int      // data -> times a KCL consumer sees it
	kclKeys map[string][]string // partition key -> data, in stored order
	dropped int                 // user records in aggregates a KCL consumer drops
}

func newSplitKinesis(t *testing.T, staleLists int32) *splitKinesis {
	t.Helper()
	parents := shardmap.EvenShards(2)
	var children []shardmap.Shard
	for i, s := range shardmap.EvenShards(4) {
		s.ID = fmt.Sprintf("shardId-%012d", 2+i)
		children = append(children, s)
	}
	closed := make([]shardmap.Shard, 0, 6)
	for _, p := range parents {
		p.Open = false
		closed = append(closed, p)
	}
	real, err := shardmap.New(append(closed, children...))
	if err != nil {
		t.Fatal(err)
	}
	return &splitKinesis{fakeKinesis: newFakeKinesis(), staleLists: staleLists, real: real,
		parents: parents, children: children, kclSeen: map[string]int{}, kclKeys: map[string][]string{}}
}

func (f *splitKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	shards := f.children
	if f.lists.Add(1) <= f.staleLists {
		shards = f.parents
	} else {
		for _, p := range f.parents {
			shards = append([]shardmap.Shard{{ID: p.ID, Start: p.Start, End: p.End}}, shards...)
		}
	}
	out := &kinesis.ListShardsOutput{}
	for _, s := range shards {
		sh := types.Shard{ShardId: aws.String(s.ID), HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String(s.Start.String()), EndingHashKey: aws.String(s.End.String())}}
		if !s.Open {
			sh.SequenceNumberRange = &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1"), EndingSequenceNumber: aws.String("2")}
		}
		out.Shards = append(out.Shards, sh)
	}
	return out, nil
}

func (f *splitKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.kclMu.Lock()
	defer f.kclMu.Unlock()
	out := &kinesis.PutRecordsOutput{}
	for _, r := range in.Records {
		idx, id, err := f.real.Predict(aws.ToString(r.PartitionKey), aws.ToString(r.ExplicitHashKey))
		if err != nil {
			return nil, err
		}
		shard := f.real.Shards()[idx]
		users, err := aggregation.Deaggregate(r.Data, aws.ToString(r.PartitionKey))
		if err != nil {
			return nil, err
		}
		inRange := true
		for _, u := range users {
			h := shardmap.HashKey(u.PartitionKey)
			if u.ExplicitHashKey != "" {
				if h, err = shardmap.ParseHash(u.ExplicitHashKey); err != nil {
					return nil, err
				}
			}
			inRange = inRange && shard.Contains(h)
		}
		if !inRange {
			f.dropped += len(users)
		} else {
			for _, u := range users {
				f.kclSeen[string(u.Data)]++
				f.kclKeys[u.PartitionKey] = append(f.kclKeys[u.PartitionKey], string(u.Data))
			}
		}
		out.Records = append(out.Records, types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String(id)})
	}
	return out, nil
}

// An aggregate is acknowledged only when every record in it lies in the
// range of the shard that stored it; otherwise its records are re-sent,
// re-packed by a refreshed shard map, in per-key order. With the shard map
// still stale at the first refreshes, and at once.
func TestAggregateOnTheWrongShardIsResent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		staleLists int32
		ordering   string
	}{
		{name: "map stale at start", staleLists: 1, ordering: "key"},
		{name: "map stale for three listings", staleLists: 3, ordering: "key"},
		{name: "ordering none", staleLists: 2, ordering: "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := fmt.Sprintf("wrong-shard-%d-%s", tc.staleLists, tc.ordering)
			brokers := startCluster(t, topic, 3)
			const n = 3000
			ends := produce(t, brokers, topic, n, 200, 64)
			kin := newSplitKinesis(t, tc.staleLists)
			cfg := testConfig(brokers, topic)
			cfg.Delivery.Aggregation.Enabled = true
			cfg.Delivery.Ordering = tc.ordering
			c, stop := startConnector(t, cfg, kin)
			waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 60*time.Second)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			kin.kclMu.Lock()
			defer kin.kclMu.Unlock()
			missing := 0
			for i := range n {
				if v := fmt.Sprintf("v%d|", i); kin.kclSeen[v+pad(64-len(v))] == 0 {
					missing++
				}
			}
			if missing > 0 {
				t.Fatalf("%d of %d committed records never reach a KCL consumer (%d user records were in aggregates it drops)",
					missing, n, kin.dropped)
			}
			if kin.dropped == 0 {
				t.Fatal("no aggregate landed on the wrong shard: the test did not exercise the stale map")
			}
			if tc.ordering == "key" {
				assertOrdered(t, kin.kclKeys)
			}
			if got := testutil.ToFloat64(c.m.wrongShard.WithLabelValues("s")); got == 0 {
				t.Fatal("ferry_wrong_shard_aggregates_total stayed 0")
			}
		})
	}
}

func pad(n int) string {
	b := make([]byte, max(n, 0))
	for i := range b {
		b[i] = 'x'
	}
	return string(b)
}

// A shard map swapped in while a batch is cut must not split one key's
// records over two aggregates of one request: if the first failed and the
// second succeeded, the key's order would break.
func TestShardMapSwapMidCutKeepsAKeyInOneUnit(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Delivery.Aggregation.Enabled = true
	cfg.Delivery.Ordering = "key"
	b := bareBatcher(cfg)
	two, err := shardmap.New(shardmap.EvenShards(2))
	if err != nil {
		t.Fatal(err)
	}
	eight, err := shardmap.New(shardmap.EvenShards(8))
	if err != nil {
		t.Fatal(err)
	}
	b.shards.Store(two)
	stop := make(chan struct{})
	var swaps sync.WaitGroup
	swaps.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				b.shards.Store(eight)
			} else {
				b.shards.Store(two)
			}
		}
	})
	defer func() { close(stop); swaps.Wait() }()
	p := &partition{topic: "t", id: 0}
	offset := int64(0)
	for round := range 200 {
		// 100 keys, each with several records queued, all free.
		for i := range 400 {
			b.add(&entry{part: p, offset: offset, key: fmt.Sprintf("k%d-%d", round, i%100), data: []byte("data"), size: 10})
			offset++
		}
		b.flushAll()
		for {
			units, _ := b.next()
			if len(units) == 0 {
				break
			}
			seen := map[string]int{}
			for ui, u := range units {
				for _, e := range u.entries {
					if prev, ok := seen[e.key]; ok && prev != ui {
						t.Fatalf("round %d: key %s in units %d and %d of one request", round, e.key, prev, ui)
					}
					seen[e.key] = ui
				}
			}
			b.release(units)
			for _, u := range units {
				p.inflight.Add(-int64(len(u.entries)))
			}
		}
	}
}
