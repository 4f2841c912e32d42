package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/connector"
)

// preview prints what ferry would send for the next records: a table, or
// JSON lines with asJSON. Without Kinesis it still maps; it only cannot
// predict shards or read the streams' record limits.
func preview(ctx context.Context, cfg config.Config, limit int, topic string, asJSON bool, stdout, stderr io.Writer) int {
	if limit < 1 {
		fmt.Fprintln(stderr, "ferry preview: --limit must be at least 1")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var kin connector.KinesisAPI
	if k, err := connector.NewKinesisClient(ctx, cfg.Kinesis, 1, nil); err != nil {
		fmt.Fprintf(stderr, "ferry preview: kinesis: %v (no shard prediction)\n", err)
	} else {
		kin = k
	}
	recs, err := connector.Preview(ctx, cfg, kin, limit, topic)
	if err != nil {
		fmt.Fprintf(stderr, "ferry preview: %v\n", err)
		return exitFailed
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				fmt.Fprintf(stderr, "ferry preview: %v\n", err)
				return exitFailed
			}
		}
		return exitOK
	}
	writePreview(stdout, recs)
	return exitOK
}

func writePreview(w io.Writer, recs []connector.PreviewRecord) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pinned := slices.ContainsFunc(recs, func(r connector.PreviewRecord) bool { return r.ExplicitHashKey != "" })
	hashCol := ""
	if pinned { // a column only when some route sets explicit hash keys
		hashCol = "\tEXPLICIT HASH KEY"
	}
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOFFSET\tSTREAM\tPARTITION KEY"+hashCol+"\tSHARD\tSIZE\tVERDICT")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, r := range recs {
		verdict := r.Verdict
		if r.Reason != "" {
			verdict += ": " + r.Reason
		}
		key := r.PartitionKey
		if len(key) > 40 {
			key = key[:37] + "..."
		}
		key = dash(key)
		if pinned {
			key += "\t" + dash(r.ExplicitHashKey)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%d\t%s\n", r.Topic, r.Partition, r.Offset, dash(r.Stream), key,
			dash(r.Shard), r.Size, verdict)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d record(s); nothing was written to Kinesis and nothing committed\n", len(recs))
}
