package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process in its own process group (so that a terminal's SIGINT reaches only
// benchrun, which then stops it), killed with SIGKILL if benchrun dies (Pdeathsig). Its stderr,
// and its stdout unless captured, go to a log file; captured stdout lines arrive on lines (and are
// logged as well).
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	lines   chan string
	done    chan struct{}
	state   *os.ProcessState
	waitErr error
	killed  sync.Once
}

var live struct {
	mu    sync.Mutex
	procs map[*proc]bool
}

// startProc starts bin with args and env (nil: benchrun's environment).
func startProc(name, logPath, bin string, args, env []string, captureStdout bool) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, logPath: logPath, done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stderr = f
	var stdout io.ReadCloser
	if captureStdout {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			f.Close()
			return nil, err
		}
		p.lines = make(chan string, 1024)
	} else {
		cmd.Stdout = f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmd = cmd
	live.mu.Lock()
	if live.procs == nil {
		live.procs = map[*proc]bool{}
	}
	live.procs[p] = true
	live.mu.Unlock()
	copied := make(chan struct{})
	if captureStdout {
		go func() {
			defer close(copied)
			defer close(p.lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			for sc.Scan() {
				line := sc.Text()
				fmt.Fprintln(f, line)
				select {
				case p.lines <- line:
				default: // nobody reads: the log has it
				}
			}
		}()
	} else {
		close(copied)
	}
	go func() {
		<-copied // Wait closes the pipe, so the copy must finish first
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		f.Close()
		close(p.done)
		live.mu.Lock()
		delete(live.procs, p)
		live.mu.Unlock()
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the exit and returns the exit code (128+N for signal N).
func (p *proc) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, fmt.Errorf("%s (pid %d) still running after %v", p.name, p.pid(), timeout)
	}
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return p.state.ExitCode(), p.waitErr
	}
	return p.state.ExitCode(), nil
}

// stop sends SIGTERM, waits up to timeout, then kills the group. It returns the exit code.
func (p *proc) stop(timeout time.Duration) (int, error) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	code, err := p.wait(timeout)
	p.kill()
	return code, err
}

// kill sends SIGKILL to the process group and waits for the process. Safe to call twice.
func (p *proc) kill() {
	p.killed.Do(func() {
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	})
}

// tail returns the last n lines of the log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// killAll kills every child still running.
func killAll() {
	live.mu.Lock()
	ps := make([]*proc, 0, len(live.procs))
	for p := range live.procs {
		ps = append(ps, p)
	}
	live.mu.Unlock()
	for _, p := range ps {
		p.kill()
	}
}

// usage is a process's CPU time and peak RSS, read from /proc while it runs.
type usage struct {
	cpu    float64 // utime+stime, seconds
	hwmKiB int64   // VmHWM
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on Linux).
const clockTicks = 100

func readUsage(pid int) (usage, error) {
	var u usage
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return u, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return u, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is field 14, stime 15
	if len(f) < 13 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return u, fmt.Errorf("bad utime/stime in /proc/%d/stat", pid)
	}
	u.cpu = float64(ut+st) / clockTicks
	u.hwmKiB, err = vmHWM("/proc/" + strconv.Itoa(pid) + "/status")
	return u, err
}

func vmHWM(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in %s", path)
}
