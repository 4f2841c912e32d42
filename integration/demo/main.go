// Command demo is what `make demo` runs: it starts a real Kafka broker and
// kinesis-mock on free ports, creates two topics and two streams, produces
// sample keyed events, runs ferry with examples/demo.yaml until every offset
// is committed, reads the streams back and prints a summary. It stops
// everything it started, whatever happens.
//
//	go run ./integration/demo -ferry bin/ferry -config examples/demo.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

type stream struct {
	topic, stream string
	partitions    int32
	shards        int32
	events        int
}

var demo = []stream{
	{topic: "demo.orders", stream: "demo-orders", partitions: 6, shards: 2, events: 2000},
	{topic: "demo.payments", stream: "demo-payments", partitions: 3, shards: 1, events: 500},
}

func main() {
	bin := flag.String("ferry", "bin/ferry", "the ferry binary")
	cfg := flag.String("config", "examples/demo.yaml", "ferry configuration")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *bin, *cfg)
	stop()
	harness.CloseShared() // whatever happened, stop Kafka and kinesis-mock
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(ctx context.Context, bin, cfg string) error {
	step("starting Apache Kafka (KRaft) and kinesis-mock on free ports")
	k, err := harness.SharedKafka(ctx)
	if err != nil {
		return fmt.Errorf("kafka: %w (run scripts/deps.sh first)", err)
	}
	kin, err := harness.SharedKinesis(ctx, harness.KindMock)
	if err != nil {
		return fmt.Errorf("kinesis-mock: %w (run scripts/deps.sh first)", err)
	}
	brokers := k.Brokers()
	fmt.Printf("    kafka %s, kinesis-mock %s\n", strings.Join(brokers, ","), kin.Endpoint())
	kc := harness.NewKinesisClient(kin.Endpoint())

	step("creating topics and streams")
	for _, s := range demo {
		if err := harness.CreateTopic(ctx, brokers, s.topic, s.partitions); err != nil {
			return err
		}
		if err := harness.CreateStream(ctx, kc, s.stream, s.shards); err != nil {
			return err
		}
		fmt.Printf("    %s (%d partitions) -> %s (%d shards)\n", s.topic, s.partitions, s.stream, s.shards)
	}

	step("producing sample events keyed by customer")
	var recs []*kgo.Record
	for _, s := range demo {
		for i := range s.events {
			customer := fmt.Sprintf("customer-%03d", i%40)
			value := fmt.Sprintf(`{"source":%q,"id":%d,"customer":%q,"amount_cents":%d}`, s.topic, i, customer, 100+(i*37)%9900)
			recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(customer), Value: []byte(value)})
		}
	}
	if _, err := harness.Produce(ctx, brokers, recs); err != nil {
		return err
	}
	fmt.Printf("    %d events produced\n", len(recs))

	logPath := filepath.Join(os.TempDir(), "ferry-demo.log")
	step("running ferry (logs: %s)", logPath)
	env := append(os.Environ(),
		"FERRY_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"FERRY_KINESIS_ENDPOINT="+kin.Endpoint())
	p, err := harness.Start(ctx, bin, []string{"run", "--config", cfg}, env, logPath)
	if err != nil {
		return err
	}
	defer p.Close()

	group := "ferry-demo"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		done, summary, err := committedAll(ctx, brokers, group)
		if err != nil {
			return err
		}
		fmt.Printf("\r    committed %s", summary)
		if done {
			fmt.Println()
			break
		}
		if p.Exited() {
			return fmt.Errorf("ferry exited early:\n%s", p.Tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("offsets not committed within 2 minutes; ferry said:\n%s", p.Tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	step("stopping ferry with SIGTERM (flush, commit, leave the group)")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		return fmt.Errorf("ferry exit %d, %w:\n%s", code, err, p.Tail())
	}

	step("reading the streams back from kinesis-mock")
	for _, s := range demo {
		got, err := harness.ReadAll(ctx, kc, s.stream)
		if err != nil {
			return err
		}
		perShard := map[string]int{}
		keys := map[string]bool{}
		for _, r := range got {
			perShard[r.ShardID]++
			keys[r.PartitionKey] = true
		}
		fmt.Printf("    %s: %d records (%d produced), %d partition keys\n", s.stream, len(got), s.events, len(keys))
		shards := make([]string, 0, len(perShard))
		for id := range perShard {
			shards = append(shards, id)
		}
		sort.Strings(shards)
		for _, id := range shards {
			fmt.Printf("      %s: %d records\n", id, perShard[id])
		}
		for _, r := range got[:min(2, len(got))] {
			fmt.Printf("      sample: key=%s seq=…%s data=%s\n", r.PartitionKey, tailOf(r.SequenceNumber, 8), r.Data)
		}
		if len(got) != s.events {
			return fmt.Errorf("%s has %d records, want %d", s.stream, len(got), s.events)
		}
	}
	step("committed offsets of group %s", group)
	for _, s := range demo {
		c, err := harness.CommittedOffsets(ctx, brokers, group, s.topic)
		if err != nil {
			return err
		}
		fmt.Printf("    %s: %v\n", s.topic, c)
	}
	step("done: every event arrived in Kinesis; stopping Kafka and kinesis-mock")
	return nil
}

func committedAll(ctx context.Context, brokers []string, group string) (bool, string, error) {
	var got, want int64
	for _, s := range demo {
		c, err := harness.CommittedOffsets(ctx, brokers, group, s.topic)
		if err != nil {
			return false, "", err
		}
		end, err := harness.EndOffsets(ctx, brokers, s.topic)
		if err != nil {
			return false, "", err
		}
		for p, e := range end {
			want += e
			got += c[p]
		}
	}
	return got == want, fmt.Sprintf("%d of %d offsets", got, want), nil
}

func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
