package connector

import (
	"context"
	"strconv"
	"testing"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/offsets"
)

// dispatchConnector is a connector with one partition "t"/0 routed to
// stream "s", a client that never connects, and no pipeline running: for
// driving dispatch and the batcher by hand.
func dispatchConnector(t testing.TB, mutate func(*config.Config)) (*Connector, *partition) {
	t.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"}
	cfg.Kafka.Topics = []string{"t"}
	cfg.Kinesis.Region = "us-east-1"
	cfg.Routes = []config.Route{{Topics: []string{"t"}, Stream: "s"}}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg, newFakeKinesis(), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c.cl = cl
	if err := c.checkStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := &partition{topic: "t", tracker: offsets.NewTracker()}
	c.parts[topicPartition{"t", 0}] = p
	return c, p
}

// A record waiting in ferry holds only its own bytes, never the fetch
// buffer its value came in: franz-go hands out values as slices of the
// whole decompressed batch, and one record waiting behind its key or in a
// retry backoff would otherwise keep all of it alive, outside the budget.
func TestHeldValuesOwnTheirMemory(t *testing.T) {
	t.Parallel()
	c, _ := dispatchConnector(t, nil)
	batch := make([]byte, 64<<10) // one fetched batch
	for i := range batch {
		batch[i] = byte(i)
	}
	const n = 100
	for i := range n {
		v := batch[i*200 : i*200+200]
		if err := c.dispatch(t.Context(), &kgo.Record{Topic: "t", Offset: int64(i), Key: []byte("k" + strconv.Itoa(i%7)), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	b := c.batchers["s"]
	b.mu.Lock()
	defer b.mu.Unlock()
	start := uintptr(unsafe.Pointer(&batch[0]))
	end := start + uintptr(len(batch))
	for i, e := range b.queue[b.head:] {
		if cap(e.data) != len(e.data) {
			t.Fatalf("record %d: value of %d bytes has capacity %d: it pins the buffer it came in", i, len(e.data), cap(e.data))
		}
		if p := uintptr(unsafe.Pointer(&e.data[0])); p >= start && p < end {
			t.Fatalf("record %d: value points into the fetch buffer", i)
		}
		if e.data[0] != byte(i*200) {
			t.Fatalf("record %d: value not copied faithfully", i)
		}
	}
	if got := len(b.queue) - b.head; got != n {
		t.Fatalf("%d records queued, want %d", got, n)
	}
}
