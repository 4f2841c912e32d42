package history

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestSampler(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("t"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range 7 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 2), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	commit := func(p0, p1 int64) {
		t.Helper()
		var offs kadm.Offsets
		offs.AddOffset("t", 0, p0, -1)
		offs.AddOffset("t", 1, p1, -1)
		if err := adm.CommitAllOffsets(ctx, "g", offs); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(s *Sampler, want map[TP]int64) {
		t.Helper()
		for ctx.Err() == nil {
			if l, ok := s.Last(); ok && l.Committed[TP{"t", 0}] == want[TP{"t", 0}] && l.Committed[TP{"t", 1}] == want[TP{"t", 1}] {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("sampler never saw %v", want)
	}

	s := StartSampler(ctx, brokers, "g", 10*time.Millisecond)
	commit(1, 1)
	wait(s, map[TP]int64{{"t", 0}: 1, {"t", 1}: 1})
	snap, err := Snapshot(ctx, brokers, "g")
	if err != nil || snap[TP{"t", 0}] != 1 {
		t.Fatalf("snapshot %v, %v", snap, err)
	}
	commit(4, 3)
	wait(s, map[TP]int64{{"t", 0}: 4, {"t", 1}: 3})
	samples := s.Stop()
	if again := s.Stop(); len(again) != len(samples) {
		t.Errorf("second Stop returned %d samples, first %d", len(again), len(samples))
	}
	if err := s.Err(); err != nil {
		t.Errorf("sampler: %v", err)
	}
	ends, err := EndOffsets(ctx, brokers, "t")
	if err != nil || ends[TP{"t", 0}] != 4 || ends[TP{"t", 1}] != 3 {
		t.Fatalf("ends %v, %v", ends, err)
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].Time.Before(samples[i-1].Time) {
			t.Fatalf("samples out of order at %d", i)
		}
	}
	r := Check(History{Samples: samples, Ends: ends}, Options{DrainWithin: time.Minute})
	if err := r.Err(); err != nil || !r.Drained {
		t.Fatalf("%v\n%s", err, r.Summary())
	}
}
