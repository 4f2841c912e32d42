package connector

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseUntil(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Until
		wantErr string
	}{
		{in: "end", want: Until{Kind: UntilEnd}},
		{in: "timestamp:2026-06-01T00:00:00Z", want: Until{Kind: UntilTime, Time: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}},
		{in: "timestamp:2026-06-01T02:00:00.5+02:00", want: Until{Kind: UntilTime, Time: time.Date(2026, 6, 1, 0, 0, 0, 5e8, time.UTC)}},
		{in: "", wantErr: "want end or timestamp:RFC3339"},
		{in: "END", wantErr: "want end or timestamp:RFC3339"},
		{in: "latest", wantErr: "want end or timestamp:RFC3339"},
		{in: "timestamp:", wantErr: `"" is not an RFC 3339 time`},
		{in: "timestamp:2026-06-01", wantErr: `"2026-06-01" is not an RFC 3339 time`},
		{in: "2026-06-01T00:00:00Z", wantErr: "want end or timestamp:RFC3339"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseUntil(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseUntil(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Kind != tc.want.Kind || !got.Time.Equal(tc.want.Time) {
				t.Fatalf("ParseUntil(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzParseUntil: a value parses only as end or a timestamp, and what
// parses prints back to a value that parses to the same bound.
func FuzzParseUntil(f *testing.F) {
	for _, s := range []string{"end", "timestamp:2026-06-01T00:00:00Z", "timestamp:2026-06-01T00:00:00.123456789-07:00", "timestamp:x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUntil(s)
		if err != nil {
			if u.Kind != UntilNone {
				t.Fatalf("error %v with a bound %+v", err, u)
			}
			return
		}
		switch u.Kind {
		case UntilEnd:
			if s != "end" {
				t.Fatalf("%q parsed as end", s)
			}
		case UntilTime:
			if !strings.HasPrefix(s, untilTimestamp) {
				t.Fatalf("%q parsed as a timestamp", s)
			}
		default:
			t.Fatalf("%q parsed to no bound", s)
		}
		again, err := ParseUntil(u.String())
		if err != nil || again.Kind != u.Kind || !again.Time.Equal(u.Time) {
			t.Fatalf("%q -> %q -> %+v, %v", s, u.String(), again, err)
		}
	})
}

func TestUntilTimeRoundsUpToAMillisecond(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_000).Add(time.Microsecond)
	if got := newBounded(Until{Kind: UntilTime, Time: at}).afterMs; got != 1_001 {
		t.Fatalf("afterMs = %d, want 1001: a record of millisecond 1000 is before the bound", got)
	}
	if got := newBounded(Until{Kind: UntilTime, Time: time.UnixMilli(1_000)}).afterMs; got != 1_000 {
		t.Fatalf("afterMs = %d, want 1000", got)
	}
}

// runBounded runs a bounded connector to its end and fails if it does not
// return nil in time.
func runBounded(t *testing.T, c *Connector, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the bounded run did not end within %s", timeout)
	}
	if !c.Progress().Complete {
		t.Fatalf("Run returned without completing: %+v", c.Progress())
	}
}

// On kfake: --until end delivers exactly what was there at assignment and
// commits the ends; records produced later are left for the next run.
func TestUntilEndStopsAtTheCapturedEnds(t *testing.T) {
	t.Parallel()
	topic := "until-end"
	brokers := startCluster(t, topic, 3)
	ends := produce(t, brokers, topic, 600, 20, 32)
	kin := newFakeKinesis()
	cfg := testConfig(brokers, topic)
	c, err := New(cfg, kin, WithLogger(quietLogger()), WithUntil(Until{Kind: UntilEnd}))
	if err != nil {
		t.Fatal(err)
	}
	runBounded(t, c, 60*time.Second)
	if got := len(kin.snapshot()); got != 600 {
		t.Fatalf("stored %d records, want 600", got)
	}
	if got := committed(t, brokers, cfg.Kafka.Group, topic); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("committed %v, want the ends %v", got, ends)
	}
	p := c.Progress().Sum()
	if p.Records != 600 || p.Total != 600 || p.Partitions != 3 || p.Bytes == 0 {
		t.Fatalf("progress %+v, want 600 of 600 records over 3 partitions", p)
	}

	// A second run with nothing new is done at once.
	c2, err := New(cfg, kin, WithLogger(quietLogger()), WithUntil(Until{Kind: UntilEnd}))
	if err != nil {
		t.Fatal(err)
	}
	runBounded(t, c2, 60*time.Second)
	if got := len(kin.snapshot()); got != 600 {
		t.Fatalf("stored %d records after a second run, want 600", got)
	}
}

// On kfake: --until timestamp stops each partition at its first record at
// or after the time, and commits that record's offset.
func TestUntilTimestampStopsAtTheFirstLaterRecord(t *testing.T) {
	t.Parallel()
	topic := "until-ts"
	brokers := startCluster(t, topic, 1)
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 30 {
		ts := at.Add(time.Duration(i-20) * time.Second) // 20 before, 10 at or after
		recs = append(recs, &kgo.Record{Key: []byte("k"), Value: fmt.Appendf(nil, "v%d|", i), Timestamp: ts})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	kin := newFakeKinesis()
	cfg := testConfig(brokers, topic)
	c, err := New(cfg, kin, WithLogger(quietLogger()), WithUntil(Until{Kind: UntilTime, Time: at}))
	if err != nil {
		t.Fatal(err)
	}
	runBounded(t, c, 60*time.Second)
	stored := kin.snapshot()
	if len(stored) != 20 {
		t.Fatalf("stored %d records, want the 20 before the bound", len(stored))
	}
	for i := range 20 {
		if stored[fmt.Sprintf("v%d|", i)] != 1 {
			t.Fatalf("record %d not stored once: %v", i, stored)
		}
	}
	if got := committed(t, brokers, cfg.Kafka.Group, topic); got[0] != 20 {
		t.Fatalf("committed %v, want 20 (the first record at the bound)", got)
	}
}

// A bound below the group's commit (--until timestamp:T after a run went
// further) is done at once and never moves the commit back. (franz-go also
// refuses a mark below the current one of the same leader epoch; markStop's
// own guard covers a stop record of a newer epoch, which kfake cannot make.)
func TestUntilNeverMovesTheCommitBack(t *testing.T) {
	t.Parallel()
	topic := "until-back"
	brokers := startCluster(t, topic, 1)
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Key: []byte("k"), Value: fmt.Appendf(nil, "v%d|", i), Timestamp: at.Add(time.Duration(i-5) * time.Second)})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	kin := newFakeKinesis()
	cfg := testConfig(brokers, topic)
	c, err := New(cfg, kin, WithLogger(quietLogger()), WithUntil(Until{Kind: UntilEnd}))
	if err != nil {
		t.Fatal(err)
	}
	runBounded(t, c, 60*time.Second)
	// One more record, so that the second run fetches a record past its
	// bound (offset 5) and stops there.
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Key: []byte("k"), Value: []byte("v10|"), Timestamp: at.Add(time.Minute)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c2, err := New(cfg, kin, WithLogger(quietLogger()), WithUntil(Until{Kind: UntilTime, Time: at}))
	if err != nil {
		t.Fatal(err)
	}
	runBounded(t, c2, 60*time.Second)
	if got := committed(t, brokers, cfg.Kafka.Group, topic); got[0] != 10 {
		t.Fatalf("committed %v after a timestamp run below the commit, want 10 still", got)
	}
	if got := len(kin.snapshot()); got != 10 {
		t.Fatalf("stored %d records, want 10", got)
	}
}

// On kfake: several members of one group, all bounded by the ends, share
// the partitions, all return nil, and together they deliver everything and
// commit every end; with more members than partitions, those left without
// one end too.
func TestUntilEndSeveralMembers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		members    int
		partitions int
	}{
		{name: "two members, six partitions", members: 2, partitions: 6},
		{name: "three members, one partition", members: 3, partitions: 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := fmt.Sprintf("until-members-%d", i)
			brokers := startCluster(t, topic, tc.partitions)
			ends := produce(t, brokers, topic, 3000, 100, 32)
			kin := newFakeKinesis()
			kin.delay = 20 * time.Millisecond // keep the first member busy while the others join
			cfg := testConfig(brokers, topic)
			cfg.Delivery.Batch.MaxRecords = 50
			errs := make(chan error, tc.members)
			var members []*Connector
			for range tc.members {
				c, err := New(cfg, kin, WithLogger(quietLogger()), WithUntil(Until{Kind: UntilEnd}))
				if err != nil {
					t.Fatal(err)
				}
				members = append(members, c)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			for _, c := range members {
				go func() { errs <- c.Run(ctx) }()
			}
			for range tc.members {
				if err := <-errs; err != nil {
					t.Fatalf("Run: %v", err)
				}
			}
			if ctx.Err() != nil {
				t.Fatal("the bounded members did not end within 90s")
			}
			owning := 0
			for i, c := range members {
				p := c.Progress()
				if !p.Complete {
					t.Errorf("member %d: %+v, want complete", i, p)
				}
				if p.Sum().Partitions > 0 {
					owning++
				}
			}
			if owning < min(tc.members, tc.partitions) {
				t.Errorf("%d members had partitions, want %d", owning, min(tc.members, tc.partitions))
			}
			if got := len(kin.snapshot()); got != 3000 {
				t.Fatalf("stored %d distinct records, want 3000", got)
			}
			if got := committed(t, brokers, cfg.Kafka.Group, topic); fmt.Sprint(got) != fmt.Sprint(ends) {
				t.Fatalf("committed %v, want the ends %v", got, ends)
			}
		})
	}
}
