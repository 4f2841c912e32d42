package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ErrUnavailable means a service could not be started because its tools are missing (no jars, no
// npm packages, no Docker engine). Require skips on it locally and fails on CI.
var ErrUnavailable = errors.New("service unavailable")

// Require fails or skips t on err: an error wrapping ErrUnavailable skips the test, unless
// CI=true, where a missing service must fail the run; any other error fails it.
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrUnavailable) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v (run scripts/deps.sh)", err)
	}
	t.Fatal(err)
}

var (
	rootOnce sync.Once
	root     string
	rootErr  error
)

// RepoRoot returns the folder holding go.mod, found by walking up from the working directory.
func RepoRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("harness: no go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	return root, rootErr
}

// cacheDir is where scripts keep downloads: FERRY_TEST_CACHE, or REPO/.cache.
func cacheDir(repo string) string {
	if c := os.Getenv("FERRY_TEST_CACHE"); c != "" {
		return c
	}
	return filepath.Join(repo, ".cache")
}

// runScript runs scripts/NAME with args and returns its trimmed stdout. The script inherits the
// environment plus FERRY_TEST_WATCH_PID, so what it starts dies with this test process.
func runScript(ctx context.Context, name string, args ...string) (string, error) {
	return runScriptEnv(ctx, nil, name, args...)
}

// runScriptEnv is runScript with extra environment variables (KEY=value), which win.
func runScriptEnv(ctx context.Context, env []string, name string, args ...string) (string, error) {
	repo, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(repo, "scripts", name)}, args...)...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "FERRY_TEST_WATCH_PID="+strconv.Itoa(os.Getpid()))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(stderr.String(), 40))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("harness: no free port: %v", err))
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// makeDir creates dir, or a temporary folder when dir is "".
func makeDir(dir, pattern string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", pattern)
	}
	return dir, os.MkdirAll(dir, 0o755)
}
