package fastsink

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// TestThrottle checks which entries WithThrottle and WithThrottleKey pick:
// 100 entries, every fourth with the key "hot", sent twice.
func TestThrottle(t *testing.T) {
	cases := []struct {
		name string
		opts []Option
		// want reports whether the i-th entry sent (0..199) is throttled.
		want func(i int, hot bool) bool
	}{
		{"none", nil, func(int, bool) bool { return false }},
		{"one in five", []Option{WithThrottle(5)}, func(i int, _ bool) bool { return (i+1)%5 == 0 }},
		{"half of the hot key", []Option{WithThrottleKey("hot", 2)}, func(i int, hot bool) bool {
			return hot && (i/4+1)%2 == 0 // the hot entries are i = 0, 4, 8, ...
		}},
		{"hot key off", []Option{WithThrottleKey("hot", 0)}, func(int, bool) bool { return false }},
		{"both", []Option{WithThrottle(3), WithThrottleKey("hot", 2)}, func(i int, hot bool) bool {
			return (i+1)%3 == 0 || hot && (i/4+1)%2 == 0
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startSink(t, tc.opts...)
			c := client(s.URL())
			var wantThrottled int64
			for round := range 2 {
				recs := make([]types.PutRecordsRequestEntry, 100)
				for i := range recs {
					key := fmt.Sprintf("k%d", i)
					if i%4 == 0 {
						key = "hot"
					}
					recs[i] = types.PutRecordsRequestEntry{Data: fmt.Appendf(nil, "t|%d|", round*100+i), PartitionKey: aws.String(key)}
				}
				out, err := c.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs})
				if err != nil {
					t.Fatal(err)
				}
				failed := 0
				for i, r := range out.Records {
					n := round*100 + i
					want := tc.want(n, i%4 == 0)
					if got := aws.ToString(r.ErrorCode) == "ProvisionedThroughputExceededException"; got != want {
						t.Errorf("entry %d (key %s): throttled %v, want %v", n, aws.ToString(recs[i].PartitionKey), got, want)
					}
					if want {
						failed++
						if s.Count(fmt.Sprintf("t|%d|", n)) != 0 {
							t.Errorf("throttled entry %d was stored", n)
						}
					}
				}
				if got := int(aws.ToInt32(out.FailedRecordCount)); got != failed {
					t.Errorf("FailedRecordCount %d, want %d", got, failed)
				}
				wantThrottled += int64(failed)
			}
			if st := s.Stats(); st.Throttled != wantThrottled || st.Records != 200-wantThrottled {
				t.Errorf("stats %+v, want %d throttled and %d records", st, wantThrottled, 200-wantThrottled)
			}
		})
	}
}
