package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probeChildEnv makes TestDockerProbe run the probe itself: testcontainers caches what it finds
// for the life of the process, so each case runs in a fresh copy of the test binary.
const probeChildEnv = "FERRY_TEST_HARNESS_PROBE_CHILD"

var probeLine = regexp.MustCompile(`(?m)^PROBE ok=(true|false) ms=(\d+) err=(.*)$`)

// TestDockerProbe checks that the Docker probe answers within 2 s and writes nothing to stderr
// (testcontainers logs there by default), whether or not an engine answers, also when DOCKER_HOST
// names an unroutable host (192.0.2.1 is TEST-NET-1) or one that never answers.
func TestDockerProbe(t *testing.T) {
	if os.Getenv(probeChildEnv) == "1" {
		start := time.Now()
		err := dockerCheck(context.Background())
		ms := time.Since(start).Milliseconds()
		again := time.Now()
		if err2 := dockerCheck(context.Background()); (err2 == nil) != (err == nil) || time.Since(again) > 10*time.Millisecond {
			t.Fatalf("second probe: %v in %v, want the cached answer at once", err2, time.Since(again))
		}
		msg := "<nil>"
		if err != nil {
			msg = strings.ReplaceAll(err.Error(), "\n", " | ")
		}
		fmt.Printf("PROBE ok=%t ms=%d err=%s\n", err == nil, ms, msg)
		return
	}
	// A listener that never accepts: the TCP handshake completes (backlog) and /info never
	// answers, so only the probe's timeout ends the wait.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	tests := []struct {
		name string
		env  []string
	}{
		{"this machine", nil},
		{"unreachable DOCKER_HOST", []string{"DOCKER_HOST=tcp://192.0.2.1:2375"}},
		{"silent DOCKER_HOST", []string{"DOCKER_HOST=tcp://" + silent.Addr().String()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestDockerProbe$", "-test.count=1")
			cmd.Env = append(append(os.Environ(), probeChildEnv+"=1"), tc.env...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("probe child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			m := probeLine.FindStringSubmatch(stdout.String())
			if m == nil {
				t.Fatalf("no PROBE line in:\n%s", stdout.String())
			}
			t.Logf("docker engine answers: %s, probe took %s ms (%s)", m[1], m[2], m[3])
			if ms, _ := strconv.Atoi(m[2]); ms >= 2000 {
				t.Errorf("probe took %d ms, want < 2000", ms)
			}
			if s := stderr.String(); s != "" {
				t.Errorf("probe wrote to stderr:\n%s", s)
			}
		})
	}
}

// stubDocker replaces the Docker probe for one test and counts its calls.
func stubDocker(t *testing.T, answer bool) *int {
	t.Helper()
	calls := new(int)
	saved := dockerAvailable
	dockerAvailable = func(context.Context) bool { *calls++; return answer }
	t.Cleanup(func() { dockerAvailable = saved })
	return calls
}

// TestKafkaSelection checks the order FERRY_TEST_KAFKA, local jars, Docker, ErrUnavailable
// without starting anything: a fake jar and a missing java make the local path fail in
// scripts/kafka.sh, before any broker starts.
func TestKafkaSelection(t *testing.T) {
	t.Setenv("FERRY_TEST_KAFKA", "")

	t.Run("no jars, no docker", func(t *testing.T) {
		t.Setenv("FERRY_TEST_CACHE", t.TempDir())
		calls := stubDocker(t, false)
		_, err := StartKafka(t.Context(), t.TempDir())
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		if *calls != 1 {
			t.Fatalf("docker probed %d times, want 1", *calls)
		}
	})

	t.Run("local jars win over docker", func(t *testing.T) {
		cache := t.TempDir()
		libs := filepath.Join(cache, "kafka", "libs")
		if err := os.MkdirAll(libs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(libs, "kafka_2.13-0.0.0.jar"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("FERRY_TEST_CACHE", cache)
		t.Setenv("JAVA", filepath.Join(t.TempDir(), "no-java"))
		calls := stubDocker(t, true)
		_, err := StartKafka(t.Context(), t.TempDir())
		if err == nil || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "java not found") {
			t.Fatalf("got %v, want scripts/kafka.sh's java error", err)
		}
		if *calls != 0 {
			t.Fatalf("docker probed %d times, want 0", *calls)
		}
	})
}

// TestKinesisSelection checks FERRY_TEST_KINESIS and the fallbacks when node is missing:
// kinesis-mock tries Docker, kinesalite (no image) does not.
func TestKinesisSelection(t *testing.T) {
	t.Setenv("FERRY_TEST_KINESIS", "")
	t.Setenv("FERRY_TEST_KINESALITE", "")

	t.Run("external endpoint", func(t *testing.T) {
		t.Setenv("FERRY_TEST_KINESIS", "http://127.0.0.1:1")
		calls := stubDocker(t, true)
		k, err := StartKinesis(t.Context(), "mock", "")
		if err != nil || k.Endpoint() != "http://127.0.0.1:1" || k.Kind() != KindMock {
			t.Fatalf("got %+v, %v", k, err)
		}
		k.Stop()
		if *calls != 0 {
			t.Fatalf("docker probed %d times, want 0", *calls)
		}
	})

	saved := execLookPath
	execLookPath = func(file string) (string, error) {
		if file == "node" {
			return "", exec.ErrNotFound
		}
		return saved(file)
	}
	t.Cleanup(func() { execLookPath = saved })

	for _, tc := range []struct {
		kind  string
		probe int
	}{{KindMock, 1}, {KindKinesalite, 0}} {
		t.Run(tc.kind+" without node or docker", func(t *testing.T) {
			calls := stubDocker(t, false)
			_, err := StartKinesis(t.Context(), tc.kind, t.TempDir())
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("got %v, want ErrUnavailable", err)
			}
			if *calls != tc.probe {
				t.Fatalf("docker probed %d times, want %d", *calls, tc.probe)
			}
		})
	}
}

func TestKafkaEnvName(t *testing.T) {
	tests := []struct{ property, env string }{
		{"node.id", "KAFKA_NODE_ID"},
		{"transaction.state.log.min.isr", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"},
		{"some_prop.with-dash", "KAFKA_SOME__PROP_WITH___DASH"},
	}
	for _, tc := range tests {
		if got := kafkaEnvName(tc.property); got != tc.env {
			t.Errorf("kafkaEnvName(%q) = %q, want %q", tc.property, got, tc.env)
		}
	}
}

func TestKafkaEnv(t *testing.T) {
	t.Setenv("FERRY_TEST_KAFKA_HEAP", "")
	t.Setenv("FERRY_TEST_KAFKA_PROPERTIES", "# comment\nlog.segment.bytes = 1048576\nbroker.session.timeout.ms=6000\n")
	env := kafkaEnv("127.0.0.1", "40001")
	for k, want := range map[string]string{
		"KAFKA_ADVERTISED_LISTENERS":      "PLAINTEXT://127.0.0.1:40001",
		"KAFKA_LISTENERS":                 "PLAINTEXT://:40001,CONTROLLER://:9093",
		"KAFKA_LOG_SEGMENT_BYTES":         "1048576",
		"KAFKA_BROKER_SESSION_TIMEOUT_MS": "6000", // FERRY_TEST_KAFKA_PROPERTIES wins
		"KAFKA_HEAP_OPTS":                 "-Xms256m -Xmx512m",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
}
