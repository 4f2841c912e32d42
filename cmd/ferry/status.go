package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/connector"
)

// status prints the group's members and partitions, offsets, lag and
// whether each partition moves. It exits non-zero when nobody consumes a
// group that has lag: records wait and no ferry is running.
func status(ctx context.Context, cfg config.Config, watch time.Duration, asJSON bool, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, watch+30*time.Second)
	defer cancel()
	st, err := connector.GroupStatus(ctx, cfg, watch)
	if err != nil {
		fmt.Fprintf(stderr, "ferry status: %v\n", err)
		return exitFailed
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			fmt.Fprintf(stderr, "ferry status: %v\n", err)
			return exitFailed
		}
	} else {
		writeStatus(stdout, st)
	}
	if len(st.Members) == 0 && st.LagRecords > 0 {
		fmt.Fprintf(stderr, "ferry status: group %q has no members and %d records of lag\n", st.Group, st.LagRecords)
		return exitFailed
	}
	return exitOK
}

// writeStatus renders st as two tables: members, then partitions.
func writeStatus(w io.Writer, st *connector.Status) {
	state := st.State
	if state == "" {
		state = "unknown"
	}
	fmt.Fprintf(w, "group %s: %s, %d member(s), lag %d records, %s\n\n", st.Group, state, len(st.Members),
		st.LagRecords, seconds(st.LagSeconds))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(st.Members) > 0 {
		fmt.Fprintln(tw, "MEMBER\tCLIENT\tHOST\tPARTITIONS")
		for _, m := range st.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.ClientID, m.Host, partitionList(m.Partitions))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tLAG TIME\tSTATE\tMEMBER")
	for _, p := range st.Partitions {
		committed := "-"
		if p.Committed >= 0 {
			committed = fmt.Sprint(p.Committed)
		}
		member := p.Member
		if member == "" {
			member = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\n", p.Topic, p.Partition, committed, p.End, p.LagRecords,
			seconds(p.LagSeconds), p.State, member)
	}
	_ = tw.Flush()
}

func seconds(s float64) string {
	return (time.Duration(s*10) * time.Second / 10).String()
}

// partitionList renders {t: [0 1 2]} as "t:0,1,2", topics sorted.
func partitionList(ps map[string][]int32) string {
	topics := make([]string, 0, len(ps))
	for t := range ps {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	parts := make([]string, 0, len(topics))
	for _, t := range topics {
		ids := append([]int32(nil), ps[t]...)
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = fmt.Sprint(id)
		}
		parts = append(parts, t+":"+strings.Join(s, ","))
	}
	return strings.Join(parts, " ")
}
