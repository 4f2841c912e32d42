package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var execLookPath = exec.LookPath

type buildResult struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*buildResult{}
)

// BuildBinary builds the main package pkg (an import path or a path relative to the repository
// root, e.g. "./cmd/ferry") once per test process, with -race when FERRY_TEST_RACE=1, and returns
// the binary's path. Binaries go to REPO/.cache/bin (FERRY_TEST_CACHE/bin); the go build cache makes
// later builds cheap.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	race := os.Getenv("FERRY_TEST_RACE") == "1"
	key := pkg + "|" + strconv.FormatBool(race)
	buildsMu.Lock()
	b, ok := builds[key]
	if !ok {
		b = &buildResult{}
		builds[key] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() { b.path, b.err = build(pkg, race) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func build(pkg string, race bool) (string, error) {
	repo, err := RepoRoot()
	if err != nil {
		return "", err
	}
	goBin, err := execLookPath("go")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	dir := filepath.Join(cacheDir(repo), "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := strings.Trim(strings.NewReplacer("/", "_", ".", "_").Replace(pkg), "_")
	if race {
		name += "-race"
	}
	out := filepath.Join(dir, name)
	// Build to a private name, then rename: test processes of other packages may build and run the
	// same binary at the same time.
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	args := []string{"build", "-o", tmp}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, pkg)...)
	cmd.Dir = repo
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

// tailLines is how many log lines a Process keeps for failure messages.
const tailLines = 100

// Process is a child process (normally the ferry binary) in its own process group, with stdout and
// stderr written to a log file and its last lines kept in memory.
type Process struct {
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	ring    *ringWriter
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Start starts bin with args. The environment is the test's plus env (later entries win). Output
// goes to logPath (created or appended). The process gets its own process group, receives SIGKILL
// if the test process dies (Pdeathsig), and is killed with its group when ctx is done or Close is
// called. With FERRY_TEST_PID_REGISTRY set, its pid is appended there for .ci/run's final sweep.
func Start(ctx context.Context, bin string, args, env []string, logPath string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p := &Process{logPath: logPath, logFile: f, ring: &ringWriter{max: tailLines}, done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = &teeWriter{f: f, ring: p.ring}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.cmd = cmd
	registerPid(cmd.Process.Pid)
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			p.Kill()
		case <-p.done:
		}
	}()
	return p, nil
}

// registerPid appends pid to FERRY_TEST_PID_REGISTRY, if set.
func registerPid(pid int) {
	reg := os.Getenv("FERRY_TEST_PID_REGISTRY")
	if reg == "" {
		return
	}
	f, err := os.OpenFile(reg, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, pid)
}

// Pid is the process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogPath is where stdout and stderr go.
func (p *Process) LogPath() string { return p.logPath }

// Signal sends sig to the process (not its group), e.g. SIGTERM, SIGSTOP, SIGCONT.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ErrTimeout is returned by Wait when the process is still running.
var ErrTimeout = errors.New("process still running")

// Wait waits up to timeout for the process to exit and returns its exit code: the status it
// passed to exit, or 128+N when signal N killed it (as a shell reports it). On timeout it returns
// -1 and ErrTimeout and leaves the process running.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		return -1, fmt.Errorf("pid %d after %v: %w", p.Pid(), timeout, ErrTimeout)
	}
	st := p.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return st.ExitCode(), p.waitErr
	}
	return st.ExitCode(), nil
}

// Kill sends SIGKILL to the process group and waits for the process to exit.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
	waitGroupGone(p.Pid(), 5*time.Second)
}

// Close kills the process group if anything of it is still running. Safe to call twice.
func (p *Process) Close() { p.once.Do(p.Kill) }

// Tail returns the last lines the process wrote, for failure messages.
func (p *Process) Tail() string { return p.ring.String() }

// teeWriter writes to the log file and the ring.
type teeWriter struct {
	f    *os.File
	ring *ringWriter
}

func (w *teeWriter) Write(b []byte) (int, error) {
	w.ring.Write(b)
	return w.f.Write(b)
}

// ringWriter keeps the last max lines written to it.
type ringWriter struct {
	mu      sync.Mutex
	max     int
	lines   []string
	partial []byte
}

func (r *ringWriter) Write(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partial = append(r.partial, b...)
	for {
		i := bytes.IndexByte(r.partial, '\n')
		if i < 0 {
			break
		}
		r.lines = append(r.lines, string(r.partial[:i]))
		r.partial = r.partial[i+1:]
		if len(r.lines) > r.max {
			r.lines = r.lines[len(r.lines)-r.max:]
		}
	}
	if len(r.partial) > 64<<10 { // a huge line without newline
		r.lines = append(r.lines, string(r.partial))
		r.partial = nil
	}
}

func (r *ringWriter) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.lines, "\n")
	if len(r.partial) > 0 {
		s += "\n" + string(r.partial)
	}
	return s
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// waitGroupGone waits until no live (non-zombie) process of group pgid is left, or timeout.
func waitGroupGone(pgid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && groupAlive(pgid) {
		time.Sleep(20 * time.Millisecond)
	}
}

// groupAlive reports whether a non-zombie process of group pgid exists, reading /proc.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); err != nil {
		return false
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// stat is "pid (comm) state ppid pgrp ..."; comm may hold spaces or parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		if f[0] != "Z" || threadsLeft(e.Name()) {
			return true
		}
	}
	return false
}

// threadsLeft reports whether a process whose leader thread is a zombie still has other threads.
// A killed JVM shows this for a moment: the leader is Z while the other threads tear down, and
// its sockets (the broker's listening ports) stay open until the last thread is gone.
func threadsLeft(pid string) bool {
	tasks, err := os.ReadDir(filepath.Join("/proc", pid, "task"))
	return err == nil && len(tasks) > 1
}
