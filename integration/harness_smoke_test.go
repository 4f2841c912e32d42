//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/faultproxy"
	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// TestHarnessSmokeKafka checks the real broker and the Kafka helpers, including a graceful restart
// and a crash restart on the same port with the data kept. It uses its own broker (not the shared one) because it restarts it.
func TestHarnessSmokeKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	k, err := harness.StartKafka(ctx, t.TempDir())
	harness.Require(t, err)
	t.Cleanup(k.Close)
	t.Logf("kafka %v ready in %v", k.Brokers(), time.Since(start).Round(time.Millisecond))
	brokers := k.Brokers()

	const topic, group = "smoke", "smoke-group"
	if err := harness.CreateTopic(ctx, brokers, topic, 3); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 100 {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("key-" + strconv.Itoa(i%10)),
			Value: []byte(strconv.Itoa(i))})
	}
	produced, err := harness.Produce(ctx, brokers, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(produced) != 100 {
		t.Fatalf("produced %d, want 100", len(produced))
	}
	next := map[int32]int64{} // per partition: max offset + 1
	keyPartition := map[string]int32{}
	for i, p := range produced {
		if string(p.Value) != strconv.Itoa(i) || p.Topic != topic {
			t.Fatalf("produced[%d] = %+v: not in input order", i, p)
		}
		if kp, ok := keyPartition[string(p.Key)]; ok && kp != p.Partition {
			t.Fatalf("key %s in partitions %d and %d", p.Key, kp, p.Partition)
		}
		keyPartition[string(p.Key)] = p.Partition
		next[p.Partition] = max(next[p.Partition], p.Offset+1)
	}
	end, err := harness.EndOffsets(ctx, brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for p, o := range end {
		sum += o
		if o != next[p] {
			t.Errorf("partition %d: end offset %d, produced up to %d", p, o, next[p])
		}
	}
	if sum != 100 || len(end) != 3 {
		t.Fatalf("end offsets %v, want 3 partitions summing to 100", end)
	}

	committed, err := harness.CommittedOffsets(ctx, brokers, group, topic)
	if err != nil || len(committed) != 0 {
		t.Fatalf("committed before any commit: %v, %v", committed, err)
	}
	commitOffsets(ctx, t, brokers, group, topic, end)
	committed, err = harness.CommittedOffsets(ctx, brokers, group, topic)
	if err != nil || !maps.Equal(committed, end) {
		t.Fatalf("committed %v (%v), want %v", committed, err, end)
	}

	start = time.Now()
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kafka restarted in %v", time.Since(start).Round(time.Millisecond))
	if !slices.Equal(k.Brokers(), brokers) {
		t.Fatalf("brokers after restart %v, want %v", k.Brokers(), brokers)
	}
	after, err := harness.EndOffsets(ctx, brokers, topic)
	if err != nil || !maps.Equal(after, end) {
		t.Fatalf("end offsets after restart %v (%v), want %v", after, err, end)
	}
	committed, err = harness.CommittedOffsets(ctx, brokers, group, topic)
	if err != nil || !maps.Equal(committed, end) {
		t.Fatalf("committed after restart %v (%v), want %v", committed, err, end)
	}

	// A crash (SIGKILL) and a start on the same port keep the data too.
	start = time.Now()
	if err := k.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kafka killed and started again in %v", time.Since(start).Round(time.Millisecond))
	after, err = harness.EndOffsets(ctx, brokers, topic)
	if err != nil || !maps.Equal(after, end) {
		t.Fatalf("end offsets after kill and start %v (%v), want %v", after, err, end)
	}
}

func commitOffsets(ctx context.Context, t *testing.T, brokers []string, group, topic string, offs map[int32]int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var o kadm.Offsets
	for p, at := range offs {
		o.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
	}
	resp, err := kadm.NewClient(cl).CommitOffsets(ctx, group, o)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestHarnessSmokeKinesis writes 200 records through the fault proxy with 30 % of entries failing,
// resends the failed ones, and reads exactly the 200 back, on both emulators.
func TestHarnessSmokeKinesis(t *testing.T) {
	for _, kind := range []string{harness.KindMock, harness.KindKinesalite} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			em, err := harness.StartKinesis(ctx, kind, t.TempDir())
			harness.Require(t, err)
			t.Cleanup(em.Stop)
			t.Logf("%s at %s ready in %v", em.Kind(), em.Endpoint(), time.Since(start).Round(time.Millisecond))

			proxy, err := faultproxy.New(em.Endpoint())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(proxy.Close)
			direct := harness.NewKinesisClient(em.Endpoint())
			viaProxy := harness.NewKinesisClient(proxy.URL())

			const stream = "smoke"
			start = time.Now()
			if err := harness.CreateStream(ctx, direct, stream, 2); err != nil {
				t.Fatal(err)
			}
			t.Logf("stream ACTIVE in %v", time.Since(start).Round(time.Millisecond))

			proxy.SetSeed(7)
			proxy.SetPartialFailure(0.3, "")
			want := map[string]string{} // data → partition key
			var pending []types.PutRecordsRequestEntry
			for i := range 200 {
				data := fmt.Sprintf("record-%03d", i)
				key := fmt.Sprintf("pk-%d", i%17)
				want[data] = key
				pending = append(pending, types.PutRecordsRequestEntry{Data: []byte(data), PartitionKey: aws.String(key)})
			}
			rounds := 0
			for len(pending) > 0 {
				rounds++
				if rounds > 50 {
					t.Fatalf("%d entries still failing after 50 rounds", len(pending))
				}
				var failed []types.PutRecordsRequestEntry
				for batch := range slices.Chunk(pending, 100) {
					out, err := viaProxy.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: batch})
					if err != nil {
						t.Fatal(err)
					}
					for i, r := range out.Records {
						if r.ErrorCode != nil {
							failed = append(failed, batch[i])
						}
					}
				}
				pending = failed
			}
			st := proxy.Stats()
			if st.EntriesFailed == 0 || st.EntriesForwarded != 200 || st.LimitViolations != 0 {
				t.Fatalf("proxy stats %+v: want some synthetic failures, 200 forwarded, no violations", st)
			}
			t.Logf("%d rounds, proxy stats %+v", rounds, st)

			start = time.Now()
			got, err := harness.ReadAll(ctx, direct, stream)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("ReadAll: %d records in %v", len(got), time.Since(start).Round(time.Millisecond))
			checkRecords(t, got, want)

			// AWS rejects 501 records; the emulators would not, the proxy must.
			proxy.Reset()
			var tooMany []types.PutRecordsRequestEntry
			for i := range 501 {
				tooMany = append(tooMany, types.PutRecordsRequestEntry{Data: []byte("x"), PartitionKey: aws.String(strconv.Itoa(i))})
			}
			_, err = viaProxy.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: tooMany})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" {
				t.Fatalf("501 records: err %v, want ValidationException", err)
			}
			if st := proxy.Stats(); st.LimitViolations != 1 || st.EntriesForwarded != 200 {
				t.Fatalf("after 501 records: stats %+v", st)
			}
			got, err = harness.ReadAll(ctx, direct, stream)
			if err != nil || len(got) != 200 {
				t.Fatalf("after the rejected request: %d records, %v", len(got), err)
			}
		})
	}
}

func checkRecords(t *testing.T, got []harness.StreamRecord, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	seen := map[string]bool{}
	shards := map[string]int{}
	for _, r := range got {
		key, ok := want[string(r.Data)]
		if !ok || seen[string(r.Data)] {
			t.Fatalf("unexpected or duplicate record %q", r.Data)
		}
		if r.PartitionKey != key {
			t.Fatalf("record %q: partition key %q, want %q", r.Data, r.PartitionKey, key)
		}
		seen[string(r.Data)] = true
		shards[r.ShardID]++
	}
	if len(shards) != 2 {
		t.Fatalf("records spread over shards %v, want 2 shards", shards)
	}
}

// TestHarnessSmokeBinary builds the ferry binary and runs `ferry version` as a harness Process.
func TestHarnessSmokeBinary(t *testing.T) {
	bin := harness.BuildBinary(t, "./cmd/ferry")
	if again := harness.BuildBinary(t, "./cmd/ferry"); again != bin {
		t.Fatalf("second build %s, want the cached %s", again, bin)
	}
	p, err := harness.Start(t.Context(), bin, []string{"version"}, nil, filepath.Join(t.TempDir(), "ferry.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	code, err := p.Wait(30 * time.Second)
	if err != nil || code != 0 || !strings.Contains(p.Tail(), "ferry") {
		t.Fatalf("ferry version: exit %d, %v; output:\n%s", code, err, p.Tail())
	}
}
