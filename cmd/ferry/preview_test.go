package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ferrylabs/ferry/connector"
)

// The table shows an explicit hash key column only when some route sets one.
func TestWritePreviewHashKeyColumn(t *testing.T) {
	plain := connector.PreviewRecord{Topic: "t", Stream: "s", PartitionKey: "k", Shard: "shardId-000000000000", Size: 3, Verdict: connector.VerdictSent}
	pinned := plain
	pinned.ExplicitHashKey = "42535295865117307932921825928971026431"
	for _, tc := range []struct {
		name string
		recs []connector.PreviewRecord
		want bool
	}{
		{"no pinned route", []connector.PreviewRecord{plain}, false},
		{"a pinned route", []connector.PreviewRecord{plain, pinned}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			writePreview(&out, tc.recs)
			s := out.String()
			if got := strings.Contains(s, "EXPLICIT HASH KEY"); got != tc.want {
				t.Fatalf("column shown %t, want %t:\n%s", got, tc.want, s)
			}
			if tc.want && !strings.Contains(s, pinned.ExplicitHashKey) {
				t.Fatalf("the explicit hash key is missing:\n%s", s)
			}
		})
	}
}
