//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferrylabs/ferry/connector"
	"github.com/ferrylabs/ferry/integration/internal/harness"
)

// runStatus runs `ferry status` and returns its output and exit code.
func (e *env) runStatus(cfg string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, append([]string{"status", "--config", cfg}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		e.t.Fatalf("ferry status: %v", err)
	}
	return out.String(), errOut.String(), code
}

func (e *env) status(cfg string) (*connector.Status, int) {
	e.t.Helper()
	out, errOut, code := e.runStatus(cfg, "--json", "--watch", "2s")
	var st connector.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("ferry status --json printed %q (stderr %q): %v", out, errOut, err)
	}
	return &st, code
}

// ferry status on a real broker: a running member that owns every
// partition and has delivered everything (caught up, exit 0); a member whose
// Kinesis is slow (moving); and, once ferry is stopped with records waiting,
// a group with lag and no members (stalled, lag in records and in seconds
// from the record timestamps, exit 1).
func TestStatusShowsMembersLagAndProgress(t *testing.T) {
	e := newEnv(t, harness.KindKinesalite, 1, 3, 1)
	e.produce(300, 30, 64)
	cfg := e.config("")
	p := e.start(cfg, "ferry")
	e.waitCommitted(-1, time.Minute, p)

	st, code := e.status(cfg)
	if code != 0 || len(st.Members) != 1 || len(st.Partitions) != 3 || st.LagRecords != 0 {
		t.Fatalf("status of a caught-up group: exit %d, %+v", code, st)
	}
	owned := 0
	for _, ps := range st.Members[0].Partitions {
		owned += len(ps)
	}
	for _, ps := range st.Partitions {
		if ps.State != connector.StateCaughtUp || ps.Member != st.Members[0].ID || ps.Committed != ps.End {
			t.Fatalf("partition %+v of a caught-up group", ps)
		}
	}
	if owned != 3 {
		t.Fatalf("the member owns %d partitions, want 3", owned)
	}

	// Slow Kinesis: commits advance while status watches.
	e.proxy.SetDelay(150 * time.Millisecond)
	e.produceFrom(300, 3300, 30, 64)
	time.Sleep(time.Second)
	st, _ = e.status(cfg)
	moving := 0
	for _, ps := range st.Partitions {
		if ps.State == connector.StateMoving {
			moving++
		}
	}
	if moving == 0 {
		t.Fatalf("no partition moving while ferry delivers: %+v", st.Partitions)
	}
	e.proxy.SetDelay(0)
	e.waitCommitted(-1, time.Minute, p)
	e.stop(p)

	// Stopped, with an hour-old backlog.
	recs := e.records(3300, 3400, 30, 64)
	for _, r := range recs {
		r.Timestamp = time.Now().Add(-time.Hour)
	}
	if _, err := harness.Produce(t.Context(), e.brokers, recs); err != nil {
		t.Fatal(err)
	}
	st, code = e.status(cfg)
	if code != 1 || len(st.Members) != 0 || st.LagRecords != 100 {
		t.Fatalf("status of a stopped group with lag: exit %d, %d members, lag %d", code, len(st.Members), st.LagRecords)
	}
	if st.LagSeconds < 3500 || st.LagSeconds > 3700 {
		t.Fatalf("lag of an hour-old backlog: %v s", st.LagSeconds)
	}
	for _, ps := range st.Partitions {
		if ps.LagRecords > 0 && ps.State != connector.StateStalled {
			t.Fatalf("partition %+v with lag and no member is not stalled", ps)
		}
	}
	out, errOut, code := e.runStatus(cfg, "--watch", "0s")
	if code != 1 || !strings.Contains(out, "TOPIC") || !strings.Contains(out, "stalled") || !strings.Contains(errOut, "no members") {
		t.Fatalf("ferry status (table) exit %d:\n%s\n%s", code, out, errOut)
	}
	t.Logf("ferry status:\n%s", out)
}
