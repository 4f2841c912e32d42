package harness

// The Docker fallback drives the docker CLI rather than testcontainers-go: it needs no new module
// (testcontainers-go v0.45.0 would add ~40 modules to go.mod and upgrade shared ones such as
// go.yaml.in/yaml/v3), and it is only used where the local jars or npm packages are missing and a
// Docker engine answers. Containers carry the label ferry.test.pid=<test pid> and are removed by
// Close.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Images used by the Docker fallback.
const (
	KafkaImage       = "apache/kafka:4.2.0"
	KinesisMockImage = "ghcr.io/etspaceman/kinesis-mock:0.6.2"
)

func dockerRun(ctx context.Context, args ...string) error {
	_, err := dockerOutput(ctx, args...)
	return err
}

func dockerOutput(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, tail(stderr.String(), 20))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// dockerStart runs (first time) or starts again (after Stop/Kill) the Kafka container. The host
// port equals the container port so the advertised listener is right for clients on the host and
// survives restarts.
func (k *Kafka) dockerStart(ctx context.Context) error {
	if k.ctr != "" {
		return dockerRun(ctx, "start", k.ctr)
	}
	port := strconv.Itoa(FreePort())
	id, err := dockerOutput(ctx, "run", "-d",
		"--label", "ferry.test.pid="+strconv.Itoa(os.Getpid()),
		"-p", "127.0.0.1:"+port+":"+port,
		"-e", "KAFKA_NODE_ID=1",
		"-e", "KAFKA_PROCESS_ROLES=broker,controller",
		"-e", "KAFKA_LISTENERS=PLAINTEXT://:"+port+",CONTROLLER://:9093",
		"-e", "KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:"+port,
		"-e", "KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
		"-e", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"-e", "KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093",
		"-e", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1",
		"-e", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1",
		"-e", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1",
		"-e", "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0",
		"-e", "KAFKA_NUM_PARTITIONS=1",
		"-e", "KAFKA_AUTO_CREATE_TOPICS_ENABLE=false",
		KafkaImage)
	if err != nil {
		return err
	}
	k.ctr = id
	k.port = port
	k.brokers = []string{"127.0.0.1:" + port}
	return nil
}

// startKinesisDocker runs kinesis-mock in a container and returns its id and endpoint.
func startKinesisDocker(ctx context.Context) (id, endpoint string, err error) {
	port := strconv.Itoa(FreePort())
	id, err = dockerOutput(ctx, "run", "-d",
		"--label", "ferry.test.pid="+strconv.Itoa(os.Getpid()),
		"-p", "127.0.0.1:"+port+":4568",
		"-e", "CREATE_STREAM_DURATION=0ms", "-e", "DELETE_STREAM_DURATION=0ms",
		"-e", "UPDATE_SHARD_COUNT_DURATION=0ms", "-e", "LOG_LEVEL=WARN",
		KinesisMockImage)
	if err != nil {
		return "", "", err
	}
	endpoint = "http://127.0.0.1:" + port
	if err := waitHTTP(ctx, endpoint, 60*time.Second); err != nil {
		_ = dockerRun(context.Background(), "rm", "-f", id)
		return "", "", err
	}
	return id, endpoint, nil
}
