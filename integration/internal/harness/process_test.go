package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcessExitCodesAndLog(t *testing.T) {
	tests := []struct {
		name   string
		script string
		signal os.Signal
		code   int
	}{
		{"exit 0", "echo hello; exit 0", nil, 0},
		{"exit 3", "echo oops >&2; exit 3", nil, 3},
		{"sigterm", "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done", syscall.SIGTERM, 0},
		{"sigkill", "echo ready; exec sleep 30", syscall.SIGKILL, 128 + 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := filepath.Join(t.TempDir(), "p.log")
			p, err := Start(t.Context(), "/bin/sh", []string{"-c", tc.script}, []string{"X=1"}, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			if tc.signal != nil {
				waitFor(t, func() bool { return strings.Contains(p.Tail(), "ready") })
				if err := p.Signal(tc.signal); err != nil {
					t.Fatal(err)
				}
			}
			code, err := p.Wait(10 * time.Second)
			if err != nil || code != tc.code {
				t.Fatalf("exit %d, %v; want %d; log:\n%s", code, err, tc.code, p.Tail())
			}
			b, _ := os.ReadFile(log)
			if string(b) != p.Tail()+"\n" {
				t.Fatalf("log %q, tail %q", b, p.Tail())
			}
		})
	}
}

func TestProcessCloseKillsGroup(t *testing.T) {
	log := filepath.Join(t.TempDir(), "p.log")
	// The child sleeps in the background: Close must kill it too.
	p, err := Start(t.Context(), "/bin/sh", []string{"-c", "sleep 30 & echo child $!; wait"}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(p.Tail(), "child") })
	if _, err := p.Wait(50 * time.Millisecond); err == nil {
		t.Fatal("Wait returned before the process exited")
	}
	p.Close()
	if groupAlive(p.Pid()) {
		t.Fatalf("process group %d still alive", p.Pid())
	}
	var child int
	fmt.Sscanf(strings.TrimSpace(p.Tail()), "child %d", &child)
	if child == 0 || alive(child) {
		t.Fatalf("child %d still alive (tail %q)", child, p.Tail())
	}
}

func TestRing(t *testing.T) {
	r := &ringWriter{max: 3}
	for i := range 5 {
		r.Write(fmt.Appendf(nil, "line %d\n", i))
	}
	r.Write([]byte("part"))
	if got, want := r.String(), "line 2\nline 3\nline 4\npart"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestFreePortAndRoot(t *testing.T) {
	if p := FreePort(); p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "kafka.sh")); err != nil {
		t.Fatal(err)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
