package harness

import (
	"fmt"
	"strings"

	"github.com/ferrylabs/ferry/aggregation"
	"github.com/ferrylabs/ferry/shardmap"
)

// ShardRead counts what DeaggregateKCL read from one shard.
type ShardRead struct {
	Shard       shardmap.Shard
	Records     int // Kinesis records read
	Aggregates  int // of which KPL aggregated, dropped ones included
	UserRecords int // user records delivered (plain records plus de-aggregated ones)
	Dropped     int // aggregates dropped whole: a user record's hash key is outside Shard's range
	DroppedUser int // user records inside the dropped aggregates
}

// KCLRead is what a Java KCL consumer receives from a stream: the user records in read order,
// with the aggregates it drops left out.
type KCLRead struct {
	Records []StreamRecord
	// Shards has one entry per shard passed to DeaggregateKCL, in that order.
	Shards []ShardRead
	// Dropped holds the indexes (into DeaggregateKCL's recs) of the aggregates dropped whole.
	Dropped []int
	// Examples describes up to 5 dropped aggregates.
	Examples []string
}

// Aggregates is the number of aggregated Kinesis records read, over all shards.
func (r KCLRead) Aggregates() int {
	n := 0
	for _, s := range r.Shards {
		n += s.Aggregates
	}
	return n
}

// DroppedUserRecords is the number of user records inside the dropped aggregates.
func (r KCLRead) DroppedUserRecords() int {
	n := 0
	for _, s := range r.Shards {
		n += s.DroppedUser
	}
	return n
}

// Summary is a few lines for a test log: the totals, then one line per shard.
func (r KCLRead) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "KCL read: %d user records; %d aggregates, %d dropped whole for a user record outside the shard's hash range (%d user records)",
		len(r.Records), r.Aggregates(), len(r.Dropped), r.DroppedUserRecords())
	for _, s := range r.Shards {
		state := "open"
		if !s.Shard.Open {
			state = "closed"
		}
		fmt.Fprintf(&b, "\n  %s (%s): %d Kinesis records, %d aggregated, %d user records delivered, %d aggregates dropped (%d user records)",
			s.Shard.ID, state, s.Records, s.Aggregates, s.UserRecords, s.Dropped, s.DroppedUser)
	}
	for _, ex := range r.Examples {
		fmt.Fprintf(&b, "\n  dropped: %s", ex)
	}
	return b.String()
}

// DeaggregateKCL expands the KPL aggregated records among recs (as ReadAll returns them) into their
// user records the way the Java KCL does (AggregatorUtil.deaggregate(records, startingHashKey,
// endingHashKey), called with the range of the shard being read): each user record's hash key (its
// explicit hash key when it has one, else the MD5 of its partition key) must lie in the inclusive
// hash-key range of the shard the aggregate was read from. At the first one that does not, the KCL
// drops the whole aggregate, the user records before it included, without an error. So does
// DeaggregateKCL, counting the drop; those records are lost to a KCL consumer unless they were
// written again. Plain records pass through unchecked, as in the KCL.
//
// Every de-aggregated record keeps its aggregate's shard and sequence number. shards must include
// every shard read, closed ones too (ListShardRanges). A record from a shard not in shards, an
// aggregate that does not decode or an unparsable explicit hash key is an error.
func DeaggregateKCL(recs []StreamRecord, shards []shardmap.Shard) (KCLRead, error) {
	out := KCLRead{Records: make([]StreamRecord, 0, len(recs)), Shards: make([]ShardRead, len(shards))}
	index := make(map[string]int, len(shards))
	for i, s := range shards {
		out.Shards[i].Shard = s
		index[s.ID] = i
	}
	for ri, r := range recs {
		si, ok := index[r.ShardID]
		if !ok {
			return KCLRead{}, fmt.Errorf("kcl read: record %s is on shard %s, which is not in the shard list", r.SequenceNumber, r.ShardID)
		}
		sr := &out.Shards[si]
		sr.Records++
		if !aggregation.IsAggregated(r.Data) {
			sr.UserRecords++
			out.Records = append(out.Records, r)
			continue
		}
		sr.Aggregates++
		users, err := aggregation.Deaggregate(r.Data, r.PartitionKey)
		if err != nil {
			return KCLRead{}, fmt.Errorf("kcl read: de-aggregate %s/%s: %w", r.ShardID, r.SequenceNumber, err)
		}
		bad, h, err := firstOutOfRange(users, sr.Shard)
		if err != nil {
			return KCLRead{}, fmt.Errorf("kcl read: %s/%s: %w", r.ShardID, r.SequenceNumber, err)
		}
		if bad >= 0 {
			sr.Dropped++
			sr.DroppedUser += len(users)
			out.Dropped = append(out.Dropped, ri)
			if len(out.Examples) < 5 {
				out.Examples = append(out.Examples, fmt.Sprintf(
					"%s/%s: user record %d of %d (partition key %q) hashes to %s, outside %s..%s",
					r.ShardID, r.SequenceNumber, bad, len(users), users[bad].PartitionKey, h, sr.Shard.Start, sr.Shard.End))
			}
			continue
		}
		sr.UserRecords += len(users)
		for _, u := range users {
			out.Records = append(out.Records, StreamRecord{ShardID: r.ShardID, SequenceNumber: r.SequenceNumber,
				PartitionKey: u.PartitionKey, Data: u.Data})
		}
	}
	return out, nil
}

// firstOutOfRange returns the index of the first user record whose hash key lies outside s's range
// and that hash key, or -1 when every one is inside.
func firstOutOfRange(users []aggregation.Record, s shardmap.Shard) (int, shardmap.Hash, error) {
	for i, u := range users {
		h := shardmap.HashKey(u.PartitionKey)
		if u.ExplicitHashKey != "" {
			var err error
			if h, err = shardmap.ParseHash(u.ExplicitHashKey); err != nil {
				return 0, shardmap.Hash{}, fmt.Errorf("user record %d: explicit hash key: %w", i, err)
			}
		}
		if !s.Contains(h) {
			return i, h, nil
		}
	}
	return -1, shardmap.Hash{}, nil
}
