package connector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/ferrylabs/ferry/config"
)

// A second member joins while the first delivers at full speed: the
// cooperative rebalance moves partitions with records queued, in flight and
// (ordering "key") held behind their keys. The revoking member must commit
// everything it delivered of them, so the new owner re-sends nothing, and
// neither member may be left holding bytes once all is committed.
func TestMemberJoiningMidDeliveryDuplicatesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ordering string
		faults   bool
	}{
		{ordering: "key"},
		{ordering: "none"},
		{ordering: "key", faults: true},
		{ordering: "none", faults: true},
	} {
		name := tc.ordering
		if tc.faults {
			name += "-throttled"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			topic := "join-" + name
			brokers := startCluster(t, topic, 8)
			const n = 100_000
			ends := produce(t, brokers, topic, n, 5000, 100)
			kin := newFakeKinesis()
			kin.delay = 20 * time.Millisecond
			if tc.faults {
				kin.failEntry = func(string) string {
					if rand.IntN(50) == 0 {
						return "ProvisionedThroughputExceededException"
					}
					return ""
				}
			}
			cfg := testConfig(brokers, topic)
			cfg.Delivery.Ordering = tc.ordering
			cfg.Delivery.MaxInFlight = 4
			cfg.Delivery.DrainTimeout = 20 * time.Second

			a, stopA := startConnector(t, cfg, kin)
			deadline := time.Now().Add(30 * time.Second)
			for len(kin.snapshot()) < n/5 {
				if time.Now().After(deadline) {
					t.Fatal("member a delivered too little in 30s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			b, stopB := startConnector(t, cfg, kin)
			waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 60*time.Second)
			for _, c := range []*Connector{a, b} {
				if got := c.buffered.Load(); got != 0 {
					t.Errorf("a member still holds %d bytes with everything committed", got)
				}
			}
			for _, stop := range []func() error{stopA, stopB} {
				if err := stop(); err != nil {
					t.Fatal(err)
				}
			}
			stored := kin.snapshot()
			if dups := duplicates(stored); len(stored) != n || dups > 0 {
				t.Fatalf("stored %d distinct of %d, %d duplicates: a revoke committed less than was delivered", len(stored), n, dups)
			}
			if tc.ordering == "key" {
				kin.mu.Lock()
				kin.assertKeyOrder(t)
				kin.mu.Unlock()
			}
		})
	}
}

// A shutdown whose drain deadline passes while requests are in flight stops
// sending but lets those requests answer: what Kinesis stored is committed,
// so the next member re-sends none of it.
func TestShutdownDeadlineLetsRequestsInFlightAnswer(t *testing.T) {
	t.Parallel()
	topic := "drain-deadline"
	brokers := startCluster(t, topic, 4)
	const n = 20_000
	ends := produce(t, brokers, topic, n, 1000, 100)
	kin := newFakeKinesis()
	kin.delay = 1500 * time.Millisecond
	cfg := testConfig(brokers, topic)
	cfg.Delivery.Ordering = "none"
	cfg.Delivery.MaxInFlight = 4
	cfg.Delivery.DrainTimeout = 200 * time.Millisecond

	stopA := runConnector(t, cfg, kin)
	for len(kin.snapshot()) == 0 {
		time.Sleep(time.Millisecond)
	}
	// Requests are in flight, and answer only after the deadline.
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	first := len(kin.snapshot())
	if first == 0 || first == n {
		t.Fatalf("member a stored %d of %d: the test did not stop it mid-delivery", first, n)
	}

	kin.delay = 0
	stop := runConnector(t, cfg, kin)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, ends, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stored := kin.snapshot()
	if dups := duplicates(stored); len(stored) != n || dups > 0 {
		t.Fatalf("stored %d distinct of %d, %d duplicates (member a stored %d before its deadline)", len(stored), n, dups, first)
	}
}

// slowDescribe answers DescribeStreamSummary only when the call's context
// ends, as a Kinesis endpoint that is slow to answer at start-up.
type slowDescribe struct{ *fakeKinesis }

func (s slowDescribe) DescribeStreamSummary(ctx context.Context, _ *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("operation error Kinesis: DescribeStreamSummary, %w", ctx.Err())
}

// A stop (SIGTERM) while ferry is still checking its streams is a clean
// stop, not a fatal error: a rolling restart must not see exit code 1.
func TestStopDuringStartIsClean(t *testing.T) {
	t.Parallel()
	topic := "stop-during-start"
	brokers := startCluster(t, topic, 1)
	c, stop := startConnector(t, testConfig(brokers, topic), slowDescribe{newFakeKinesis()})
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil for a stop during start-up", err)
	}
	if !c.Healthy() {
		t.Fatal("a clean stop reported unhealthy")
	}
}

// A fatal error leaves records undelivered below ones already sent; leaving
// the group must not then wait a whole drain_timeout for holes that will
// never be delivered.
func TestFatalStopDoesNotWaitForHoles(t *testing.T) {
	t.Parallel()
	topic := "fatal-holes"
	brokers := startCluster(t, topic, 2)
	produce(t, brokers, topic, 2000, 100, 64)
	kin := newFakeKinesis()
	var n atomic.Int64
	kin.failEntry = func(string) string {
		switch i := n.Add(1); {
		case i == 10:
			return "ProvisionedThroughputExceededException" // a hole, re-sent later
		case i > 600:
			return "AccessDeniedException" // fatal
		}
		return ""
	}
	cfg := testConfig(brokers, topic)
	cfg.Delivery.DrainTimeout = 8 * time.Second
	cfg.Delivery.Retry = config.Retry{Initial: time.Second, Max: time.Second} // the hole waits
	c, err := New(cfg, kin, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Run(t.Context())
	if !errors.Is(err, ErrFatal) {
		t.Fatalf("Run = %v, want a fatal error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a fatal stop took %s: it waited for holes that will never be delivered", took)
	}
}
