package connector

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
)

// Status is a consumer group's state as `ferry status` shows it.
type Status struct {
	Group      string            `json:"group"`
	State      string            `json:"state"` // the group's state: Stable, Empty, PreparingRebalance, ...
	Members    []MemberStatus    `json:"members"`
	Partitions []PartitionStatus `json:"partitions"`
	// LagRecords and LagSeconds are the totals and the worst partition's.
	LagRecords int64     `json:"lag_records"`
	LagSeconds float64   `json:"lag_seconds"`
	At         time.Time `json:"at"`
}

// MemberStatus is one member of the group and what it owns.
type MemberStatus struct {
	ID         string             `json:"id"`
	ClientID   string             `json:"client_id"`
	Host       string             `json:"host"`
	Partitions map[string][]int32 `json:"partitions"`
}

// PartitionStatus is one consumed partition.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Member    string `json:"member,omitempty"` // "" when unassigned
	// Committed is the group's committed offset, -1 for none.
	Committed int64 `json:"committed"`
	// Start and End are the log start and end offsets (the last stable
	// offset under read_committed).
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// LagRecords is End less where the group reads next (the committed
	// offset, or the start for kafka.start earliest without a commit).
	LagRecords int64 `json:"lag_records"`
	// LagSeconds is the age, by its Kafka timestamp, of the first record
	// not covered by the commit: 0 without lag.
	LagSeconds float64 `json:"lag_seconds"`
	// State is "caught up" (no lag), "moving" (the commit advanced while
	// watched) or "stalled".
	State string `json:"state"`
}

// Partition states.
const (
	StateCaughtUp = "caught up"
	StateMoving   = "moving"
	StateStalled  = "stalled"
)

// GroupStatus reads the group's members, assignments, committed and end
// offsets and lag, without joining the group: the commits are read twice,
// watch apart, to tell a moving partition from a stalled one.
func GroupStatus(ctx context.Context, cfg config.Config, watch time.Duration) (*Status, error) {
	opts, err := KafkaClientOpts(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := consumedTopics(ctx, adm, cfg.Kafka)
	if err != nil {
		return nil, err
	}
	group := cfg.Kafka.Group
	first, err := fetchOffsets(ctx, adm, group)
	if err != nil {
		return nil, err
	}
	if watch > 0 {
		t := time.NewTimer(watch)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	committed, err := fetchOffsets(ctx, adm, group)
	if err != nil {
		return nil, err
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := listEnds(ctx, adm, cfg.Kafka, topics)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("describe group %q: %w", group, err)
	}
	st := &Status{Group: group, At: time.Now()}
	owner := map[string]map[int32]string{}
	if g, ok := described[group]; ok && g.Err == nil {
		st.State = g.State
		for _, m := range g.Members {
			ms := MemberStatus{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Partitions: map[string][]int32{}}
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range a.Topics {
					ms.Partitions[t.Topic] = append(ms.Partitions[t.Topic], t.Partitions...)
					for _, p := range t.Partitions {
						if owner[t.Topic] == nil {
							owner[t.Topic] = map[int32]string{}
						}
						owner[t.Topic][p] = m.MemberID
					}
				}
			}
			st.Members = append(st.Members, ms)
		}
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		ps := PartitionStatus{Topic: o.Topic, Partition: o.Partition, End: o.Offset, Committed: -1,
			Member: owner[o.Topic][o.Partition]}
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Err == nil {
			ps.Start = s.Offset
		}
		next := ps.Start
		if cfg.Kafka.Start == "latest" {
			next = ps.End
		}
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			ps.Committed = c.At
			next = c.At
		}
		ps.LagRecords = max(ps.End-max(next, ps.Start), 0)
		switch {
		case ps.LagRecords == 0:
			ps.State = StateCaughtUp
		default:
			ps.State = StateStalled
			if c, ok := first.Lookup(o.Topic, o.Partition); ok && c.Err == nil && ps.Committed > c.At {
				ps.State = StateMoving
			}
		}
		st.Partitions = append(st.Partitions, ps)
	})
	slices.SortFunc(st.Partitions, func(a, b PartitionStatus) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	if err := lagSeconds(ctx, opts, st); err != nil {
		return nil, err
	}
	for _, p := range st.Partitions {
		st.LagRecords += p.LagRecords
		st.LagSeconds = max(st.LagSeconds, p.LagSeconds)
	}
	return st, nil
}

// consumedTopics is kafka.topics, or the topics kafka.topic_regex matches now
// (franz-go's rule: an unanchored match, internal topics left out), sorted.
func consumedTopics(ctx context.Context, adm *kadm.Client, k config.Kafka) ([]string, error) {
	if k.TopicRegex == "" {
		return k.Topics, nil
	}
	re, err := regexp.Compile(k.TopicRegex)
	if err != nil {
		return nil, fmt.Errorf("kafka.topic_regex: %w", err)
	}
	details, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var out []string
	for _, td := range details {
		if !td.IsInternal && re.MatchString(td.Topic) {
			out = append(out, td.Topic)
		}
	}
	slices.Sort(out)
	return out, nil
}

// listEnds lists the partitions' end offsets: the last stable offsets under
// read_committed, where a consumer's reading ends.
func listEnds(ctx context.Context, adm *kadm.Client, k config.Kafka, topics []string) (kadm.ListedOffsets, error) {
	if k.IsolationLevel == config.ReadCommitted {
		return adm.ListCommittedOffsets(ctx, topics...)
	}
	return adm.ListEndOffsets(ctx, topics...)
}

// lagSeconds reads the first record past each lagging partition's commit
// (with a consumer of its own, outside the group) and sets the partition's
// lag in seconds from its timestamp.
func lagSeconds(ctx context.Context, opts []kgo.Opt, st *Status) error {
	at := map[string]map[int32]kgo.Offset{}
	want := 0
	for _, p := range st.Partitions {
		if p.LagRecords == 0 {
			continue
		}
		from := max(p.Committed, p.Start)
		if at[p.Topic] == nil {
			at[p.Topic] = map[int32]kgo.Offset{}
		}
		at[p.Topic][p.Partition] = kgo.NewOffset().At(from)
		want++
	}
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(at))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	seen := map[string]map[int32]time.Time{}
	for got := 0; got < want; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break // a partition whose first record cannot be read keeps 0
		}
		fs.EachRecord(func(r *kgo.Record) {
			if seen[r.Topic] == nil {
				seen[r.Topic] = map[int32]time.Time{}
			}
			if _, ok := seen[r.Topic][r.Partition]; !ok {
				seen[r.Topic][r.Partition] = r.Timestamp
				got++
			}
		})
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("read the first uncommitted records: %w", err)
		}
	}
	for i := range st.Partitions {
		p := &st.Partitions[i]
		if ts, ok := seen[p.Topic][p.Partition]; ok && p.LagRecords > 0 {
			p.LagSeconds = max(st.At.Sub(ts).Seconds(), 0)
		}
	}
	return nil
}
