package harness

// The Docker fallback runs apache/kafka and kinesis-mock through testcontainers-go, and is used only
// where the local jars or npm packages are missing and a Docker engine answers. The harness API has
// no testing.TB, so nothing here can call testcontainers.CleanupContainer: Kafka.Close and
// Kinesis.Stop terminate their containers instead, and testcontainers' reaper (Ryuk) removes what
// a crashed or timed-out test binary leaves behind, as FERRY_TEST_WATCH_PID does for local processes
// (unless TESTCONTAINERS_RYUK_DISABLED=true). Containers also carry the label
// ferry.test.pid=<test pid>.
//
// Both containers run with the settings scripts/kafka.sh and scripts/kinesis.sh give the local
// services, so the suite behaves the same with or without Docker.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// Images used by the Docker fallback: the same Kafka (scripts/kafka/pom.xml) and kinesis-mock
// (package.json, kinesis-local) versions as the local services.
const (
	KafkaImage       = "apache/kafka:4.2.0"
	KinesisMockImage = "ghcr.io/etspaceman/kinesis-mock:0.6.2"
)

// kinesisMockPort is kinesis-mock's plain-HTTP port inside its container (4567 is TLS).
const kinesisMockPort = "4568/tcp"

// kafkaControllerPort is the KRaft controller listener inside the Kafka container; it is not
// published.
const kafkaControllerPort = "9093"

// dockerProbeTimeout bounds the Docker probe. Where no engine is configured (no socket, no
// DOCKER_HOST) testcontainers fails in microseconds; the bound matters only when DOCKER_HOST names
// a host that never answers. A healthy local engine answers /info in well under a second.
const dockerProbeTimeout = 1500 * time.Millisecond

// dockerAvailable reports whether a Docker engine answers testcontainers' health check. The probe
// runs once per test binary. It is a variable so tests can replace it.
var dockerAvailable = func(ctx context.Context) bool { return dockerCheck(ctx) == nil }

var dockerProbe struct {
	once sync.Once
	err  error
}

// dockerCheck returns nil when a Docker engine answers, or why not. The first call probes (within
// dockerProbeTimeout, whatever ctx says, so that a cancelled caller does not decide the answer for
// the whole binary); later calls return the cached answer.
func dockerCheck(ctx context.Context) error {
	dockerProbe.once.Do(func() {
		dockerProbe.err = probeDocker(context.WithoutCancel(ctx), dockerProbeTimeout)
	})
	return dockerProbe.err
}

// probeDocker asks testcontainers for a Docker provider and runs its health check, with
// testcontainers' logging silenced: it would otherwise print a banner (engine found) to stderr.
// It never panics, and returns within timeout even though testcontainers resolves the Docker host
// partly without a context: the check runs in a goroutine, left behind if it hangs.
func probeDocker(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	saved := tclog.Default()
	tclog.SetDefault(tclog.NewNoopLogger())
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("testcontainers panicked: %v", r)
			}
		}()
		// NewDockerClientWithOpts resolves (and caches for the process) the Docker host under ctx;
		// NewDockerProvider, which has no context, then reuses it.
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			done <- err
			return
		}
		_ = cli.Close()
		p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(tclog.NewNoopLogger()))
		if err != nil {
			done <- err
			return
		}
		done <- p.Health(ctx) // Health closes p
	}()
	select {
	case err := <-done:
		// The probe is over, so restoring the logger cannot race with it.
		tclog.SetDefault(saved)
		if err != nil {
			return fmt.Errorf("docker probe: %w", err)
		}
		return nil
	case <-ctx.Done():
		// The goroutine may still log: leave the no-op logger in place. Docker counts as absent
		// for the rest of the binary, so testcontainers is not used again.
		return fmt.Errorf("docker probe: no answer within %v", timeout)
	}
}

// runContainer is testcontainers.Run that returns a panic as an error. On error the container,
// if one was created, is already terminated.
func runContainer(ctx context.Context, image string, opts ...testcontainers.ContainerCustomizer) (ctr *testcontainers.DockerContainer, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("run %s: testcontainers panicked: %v", image, r)
		}
		if err != nil {
			_ = testcontainers.TerminateContainer(ctr)
			ctr = nil
		}
	}()
	ctr, err = testcontainers.Run(ctx, image, opts...)
	if err != nil {
		return ctr, fmt.Errorf("run %s: %w", image, err)
	}
	return ctr, nil
}

// publishAddr returns the address clients use for published ports (the Docker daemon's host, as
// testcontainers sees it) and the host IP to bind them to: 127.0.0.1 for a local engine, every
// interface otherwise. Kafka needs it before its container starts, for its advertised listener.
func publishAddr(ctx context.Context) (host string, bind netip.Addr, err error) {
	p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(tclog.NewNoopLogger()))
	if err != nil {
		return "", netip.Addr{}, err
	}
	defer func() { _ = p.Close() }()
	host, err = p.DaemonHost(ctx)
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("docker daemon host: %w", err)
	}
	if host == "localhost" {
		return "127.0.0.1", netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return host, ip, nil
	}
	return host, netip.Addr{}, nil
}

// fileLogger writes testcontainers' messages about one container to a file (kafka.log,
// kinesis.log) instead of the test's stderr.
type fileLogger struct{ path string }

func (l fileLogger) Printf(format string, v ...any) {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s testcontainers: %s\n", time.Now().Format(time.RFC3339), strings.TrimRight(fmt.Sprintf(format, v...), "\n"))
}

// appendContainerLogs appends ctr's output to path, so a failed start leaves the service's log
// where the local path would have written it.
func appendContainerLogs(ctr *testcontainers.DockerContainer, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := ctr.Logs(ctx)
	if err != nil {
		return
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "---- output of container %s\n", ctr.GetContainerID())
	_, _ = io.Copy(f, rc)
}

func testLabels() map[string]string {
	return map[string]string{"ferry.test.pid": strconv.Itoa(os.Getpid())}
}

// kafkaEnvName turns a broker property into the apache/kafka image's environment variable:
// '.' becomes '_', '_' becomes '__' and '-' becomes '___', upper-cased, prefixed with KAFKA_.
func kafkaEnvName(property string) string {
	return "KAFKA_" + strings.ToUpper(strings.NewReplacer("_", "__", "-", "___", ".", "_").Replace(property))
}

// kafkaEnv is the container environment for a broker listening (and published) on port and
// advertised as host:port: scripts/kafka.sh's server.properties, plus FERRY_TEST_KAFKA_PROPERTIES and
// FERRY_TEST_KAFKA_HEAP.
func kafkaEnv(host, port string) map[string]string {
	props := [][2]string{
		{"process.roles", "broker,controller"},
		{"node.id", "1"},
		{"controller.quorum.voters", "1@localhost:" + kafkaControllerPort},
		{"listeners", "PLAINTEXT://:" + port + ",CONTROLLER://:" + kafkaControllerPort},
		{"advertised.listeners", "PLAINTEXT://" + net.JoinHostPort(host, port)},
		{"inter.broker.listener.name", "PLAINTEXT"},
		{"controller.listener.names", "CONTROLLER"},
		{"listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"},
		{"num.partitions", "1"},
		{"default.replication.factor", "1"},
		{"auto.create.topics.enable", "false"},
		{"offsets.topic.replication.factor", "1"},
		{"offsets.topic.num.partitions", "10"},
		{"transaction.state.log.replication.factor", "1"},
		{"transaction.state.log.min.isr", "1"},
		{"transaction.state.log.num.partitions", "4"},
		{"share.coordinator.state.topic.replication.factor", "1"},
		{"share.coordinator.state.topic.min.isr", "1"},
		{"group.initial.rebalance.delay.ms", "0"},
		{"num.network.threads", "2"},
		{"num.io.threads", "4"},
		{"num.recovery.threads.per.data.dir", "1"},
		{"log.retention.check.interval.ms", "10000"},
		// See scripts/kafka.sh: a broker restarted after a crash registers only once its old
		// session has expired.
		{"broker.session.timeout.ms", "4000"},
		{"broker.heartbeat.interval.ms", "500"},
	}
	env := map[string]string{"KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m"}
	if h := os.Getenv("FERRY_TEST_KAFKA_HEAP"); h != "" {
		env["KAFKA_HEAP_OPTS"] = h
	}
	for _, p := range props {
		env[kafkaEnvName(p[0])] = p[1]
	}
	for line := range strings.SplitSeq(os.Getenv("FERRY_TEST_KAFKA_PROPERTIES"), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[kafkaEnvName(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return env
}

// kafkaStopTimeout is how long Stop waits before SIGKILL, as FERRY_TEST_KAFKA_STOP_TIMEOUT for
// scripts/kafka.sh (default 20 s).
func kafkaStopTimeout() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("FERRY_TEST_KAFKA_STOP_TIMEOUT")); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return 20 * time.Second
}

// dockerStart runs (first time) or starts again (after Stop/Kill) the Kafka container. The
// broker listens on the same port inside the container as it is published on, so the advertised
// listener is right for clients on the host, and the fixed binding survives restarts (a plain
// ephemeral mapping would get a new host port on each start).
func (k *Kafka) dockerStart(ctx context.Context) error {
	if k.ctr != nil {
		if err := k.ctr.Start(ctx); err != nil {
			return fmt.Errorf("kafka container start: %w", err)
		}
		return nil
	}
	host, bind, err := publishAddr(ctx)
	if err != nil {
		return fmt.Errorf("kafka container: %w", err)
	}
	port := strconv.Itoa(FreePort())
	for port == kafkaControllerPort {
		port = strconv.Itoa(FreePort())
	}
	ctr, err := runContainer(ctx, KafkaImage,
		testcontainers.WithLogger(fileLogger{filepath.Join(k.dir, "kafka.log")}),
		testcontainers.WithLabels(testLabels()),
		testcontainers.WithEnv(kafkaEnv(host, port)),
		testcontainers.WithExposedPorts(port+"/tcp"),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				network.MustParsePort(port + "/tcp"): {{HostIP: bind, HostPort: port}},
			}
		}),
	)
	if err != nil {
		return err
	}
	k.ctr = ctr
	k.port = port
	k.brokers = []string{net.JoinHostPort(host, port)}
	return nil
}

// dockerStop stops the Kafka container: SIGTERM, then SIGKILL after kafkaStopTimeout.
func (k *Kafka) dockerStop(ctx context.Context) error {
	timeout := kafkaStopTimeout()
	if err := k.ctr.Stop(ctx, &timeout); err != nil {
		return fmt.Errorf("kafka container stop: %w", err)
	}
	return nil
}

// dockerKill sends SIGKILL to the Kafka container, as a crash would, and waits until it is down.
// (Container.Stop with a zero timeout would send SIGTERM first, and Kafka's shutdown hook could
// still run.)
func (k *Kafka) dockerKill(ctx context.Context) error {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("kafka container kill: %w", err)
	}
	defer func() { _ = cli.Close() }()
	if _, err := cli.ContainerKill(ctx, k.ctr.GetContainerID(), client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		return fmt.Errorf("kafka container kill: %w", err)
	}
	for {
		st, err := k.ctr.State(ctx)
		if err != nil {
			return fmt.Errorf("kafka container kill: %w", err)
		}
		if !st.Running {
			return nil
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("kafka container kill: still running: %w", err)
		}
	}
}

// dockerClose removes the Kafka container. The data goes with it, so it is killed, not stopped.
func (k *Kafka) dockerClose(ctx context.Context) {
	if k.ctr == nil {
		return
	}
	_ = testcontainers.TerminateContainer(k.ctr, testcontainers.StopContext(ctx), testcontainers.StopTimeout(0))
	k.ctr = nil
}

// dockerLogs appends the container's output to kafka.log after a failed start.
func (k *Kafka) dockerLogs() {
	if k.ctr != nil {
		appendContainerLogs(k.ctr, filepath.Join(k.dir, "kafka.log"))
	}
}

// kinesisMockEnv is scripts/kinesis.sh's environment for kinesis-mock.
func kinesisMockEnv() map[string]string {
	env := map[string]string{
		"LOG_LEVEL":           "WARN",
		"ROOT_LOG_LEVEL":      "ERROR",
		"AWS_REGION":          TestRegion,
		"SHOULD_PERSIST_DATA": "false",
		"SHARD_LIMIT":         "1000",
	}
	if l := os.Getenv("FERRY_TEST_KINESIS_LOG_LEVEL"); l != "" {
		env["LOG_LEVEL"] = l
	}
	for _, d := range []string{"CREATE_STREAM", "DELETE_STREAM", "REGISTER_STREAM_CONSUMER",
		"DEREGISTER_STREAM_CONSUMER", "START_STREAM_ENCRYPTION", "STOP_STREAM_ENCRYPTION", "MERGE_SHARDS",
		"SPLIT_SHARD", "UPDATE_SHARD_COUNT", "UPDATE_STREAM_MODE"} {
		env[d+"_DURATION"] = "0ms"
	}
	return env
}

// startKinesisDocker runs kinesis-mock in a container, logging to dir/kinesis.log, and returns the
// container and its endpoint once it answers HTTP.
func startKinesisDocker(ctx context.Context, dir string) (*testcontainers.DockerContainer, string, error) {
	host, bind, err := publishAddr(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("kinesis-mock container: %w", err)
	}
	logPath := filepath.Join(dir, "kinesis.log")
	ctr, err := runContainer(ctx, KinesisMockImage,
		testcontainers.WithLogger(fileLogger{logPath}),
		testcontainers.WithLabels(testLabels()),
		testcontainers.WithEnv(kinesisMockEnv()),
		testcontainers.WithExposedPorts(kinesisMockPort),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			// An ephemeral host port: kinesis-mock is never restarted.
			hc.PortBindings = network.PortMap{network.MustParsePort(kinesisMockPort): {{HostIP: bind}}}
		}),
	)
	if err != nil {
		return nil, "", err
	}
	mapped, err := ctr.MappedPort(ctx, kinesisMockPort)
	if err == nil {
		endpoint := "http://" + net.JoinHostPort(host, mapped.Port())
		if err = waitHTTP(ctx, endpoint, 60*time.Second); err == nil {
			return ctr, endpoint, nil
		}
	}
	appendContainerLogs(ctr, logPath)
	_ = testcontainers.TerminateContainer(ctr, testcontainers.StopTimeout(0))
	return nil, "", fmt.Errorf("kinesis-mock container: %w (log: %s)", err, logPath)
}

// stopContainer removes ctr at once; kinesis-mock keeps its data in memory, so a graceful stop
// would save nothing.
func stopContainer(ctx context.Context, ctr *testcontainers.DockerContainer) {
	_ = testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx), testcontainers.StopTimeout(0))
}
