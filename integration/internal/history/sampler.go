package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// sampleTimeout bounds one FetchOffsets of the Sampler, so that a broker that
// is down (a fault) only costs missing samples.
const sampleTimeout = 5 * time.Second

// Sampler polls a group's committed offsets. A poll that fails (broker down,
// coordinator loading) records no sample; per-partition errors drop only that
// partition from the sample.
type Sampler struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	samples []Sample
	fails   int
	lastErr error
}

// StartSampler polls group's committed offsets (kadm FetchOffsets) every
// interval (100 ms when every <= 0) until Stop or ctx is done. Each Sample's
// Time is taken when the response arrived.
func StartSampler(ctx context.Context, brokers []string, group string, every time.Duration) *Sampler {
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sampler{cancel: cancel, done: make(chan struct{})}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		s.fails, s.lastErr = 1, err
		close(s.done)
		return s
	}
	adm := kadm.NewClient(cl)
	go func() {
		defer close(s.done)
		defer cl.Close()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s.poll(ctx, adm, group)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *Sampler) poll(ctx context.Context, adm *kadm.Client, group string) {
	fctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	defer cancel()
	resp, err := adm.FetchOffsets(fctx, group)
	now := time.Now()
	if ctx.Err() != nil {
		return // stopping
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(err, kerr.GroupIDNotFound) {
		// kfake's answer before anyone joined: nothing committed yet.
		s.samples = append(s.samples, Sample{Time: now, Committed: map[TP]int64{}})
		return
	}
	if err != nil {
		s.fails++
		s.lastErr = err
		return
	}
	c, err := committedOf(resp)
	if err != nil {
		s.fails++
		s.lastErr = err
	}
	s.samples = append(s.samples, Sample{Time: now, Committed: c})
}

// committedOf converts a FetchOffsets response; partitions with an error or no
// commit (At < 0) are left out, the first error is returned.
func committedOf(resp kadm.OffsetResponses) (map[TP]int64, error) {
	out := map[TP]int64{}
	var first error
	for topic, ps := range resp {
		for p, r := range ps {
			switch {
			case r.Err != nil:
				if first == nil {
					first = fmt.Errorf("%s/%d: %w", topic, p, r.Err)
				}
			case r.At >= 0:
				out[TP{topic, p}] = r.At
			}
		}
	}
	return out, first
}

// Stop ends polling and returns the samples in time order. It is idempotent.
func (s *Sampler) Stop() []Sample {
	s.once.Do(func() {
		s.cancel()
		<-s.done
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...)
}

// Last returns the latest sample so far, e.g. to fill Fault.Committed at the
// moment a fault is injected (it is at most one interval old).
func (s *Sampler) Last() (Sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return Sample{}, false
	}
	return s.samples[len(s.samples)-1], true
}

// Err reports failed polls (nil when there were none). Failed polls only
// thin the samples out; a test may still want to know.
func (s *Sampler) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails == 0 {
		return nil
	}
	return fmt.Errorf("sampler: %d failed polls, last: %w", s.fails, s.lastErr)
}

// Snapshot returns group's committed offsets now, retrying retriable errors
// (coordinator loading or moving) until ctx is done.
func Snapshot(ctx context.Context, brokers []string, group string) (map[TP]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		resp, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			var c map[TP]int64
			if c, err = committedOf(resp); err == nil {
				return c, nil
			}
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			return map[TP]int64{}, nil // no member has joined yet: nothing committed
		}
		if !kerr.IsRetriable(err) {
			return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("committed offsets of %s: %w (after %w)", group, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EndOffsets returns the end offsets (high watermarks) of topics, for History.Ends.
func EndOffsets(ctx context.Context, brokers []string, topics ...string) (map[TP]int64, error) {
	out := map[TP]int64{}
	for _, topic := range topics {
		ends, err := harness.EndOffsets(ctx, brokers, topic)
		if err != nil {
			return nil, err
		}
		for p, o := range ends {
			out[TP{topic, p}] = o
		}
	}
	return out, nil
}
