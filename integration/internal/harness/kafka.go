package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka is a running Kafka cluster of one broker.
type Kafka struct {
	dir     string
	brokers []string
	mode    string // "local", "external" or "docker"
	port    string
	ctr     *testcontainers.DockerContainer // mode "docker"
	env     []string                        // extra environment for scripts/kafka.sh (mode "local")

	mu      sync.Mutex
	running bool
	closed  bool
}

// ExternalKafka wraps brokers that run elsewhere (an in-process kfake
// cluster, say); Stop, Kill, Start and Restart are unsupported.
func ExternalKafka(brokers []string) *Kafka {
	return &Kafka{brokers: append([]string(nil), brokers...), mode: "external", running: true}
}

// StartKafka starts a single-node KRaft broker whose data, config and log (kafka.log) live in dir
// ("" means a new temporary folder), and waits until it serves metadata. See the package doc for
// the FERRY_TEST_KAFKA override and the Docker fallback.
func StartKafka(ctx context.Context, dir string) (*Kafka, error) {
	if ext := os.Getenv("FERRY_TEST_KAFKA"); ext != "" {
		k := &Kafka{brokers: strings.Split(ext, ","), mode: "external", running: true}
		if err := waitMetadata(ctx, k.brokers); err != nil {
			return nil, fmt.Errorf("kafka from FERRY_TEST_KAFKA=%s: %w", ext, err)
		}
		return k, nil
	}
	repo, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err = makeDir(dir, "ferry-kafka-")
	if err != nil {
		return nil, err
	}
	k := &Kafka{dir: dir, mode: "local"}
	jars, _ := filepath.Glob(filepath.Join(cacheDir(repo), "kafka", "libs", "kafka_2.13-*.jar"))
	if _, err := lookJava(); err != nil || len(jars) == 0 {
		if !dockerAvailable(ctx) {
			return nil, fmt.Errorf("start kafka: no jars in %s or no java, and no Docker engine: %w",
				filepath.Join(cacheDir(repo), "kafka", "libs"), ErrUnavailable)
		}
		k.mode = "docker"
	}
	if err := k.Start(ctx); err != nil {
		if k.mode == "docker" {
			k.Close() // remove the container that did not become ready
		}
		return nil, err
	}
	return k, nil
}

func lookJava() (string, error) {
	if j := os.Getenv("JAVA"); j != "" {
		return j, nil
	}
	return execLookPath("java")
}

// Brokers returns the seed brokers, host:port.
func (k *Kafka) Brokers() []string { return append([]string(nil), k.brokers...) }

// Dir returns the broker's folder (data, server.properties, kafka.log); "" for an external cluster.
func (k *Kafka) Dir() string { return k.dir }

func (k *Kafka) unsupported(op string) error {
	return fmt.Errorf("kafka %s: external cluster from FERRY_TEST_KAFKA: %w", op, errors.ErrUnsupported)
}

// Start starts the broker again after Stop or Kill, on the same port and data. StartKafka calls
// it the first time.
func (k *Kafka) Start(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.mode == "external":
		return k.unsupported("start")
	case k.closed:
		return errors.New("kafka start: closed")
	case k.running:
		return nil
	}
	var err error
	switch k.mode {
	case "docker":
		err = k.dockerStart(ctx)
	default:
		args := []string{"start", k.dir}
		if k.port != "" {
			args = append(args, k.port)
		}
		var addr string
		addr, err = runScriptEnv(ctx, k.env, "kafka.sh", args...)
		if err == nil {
			k.brokers = []string{addr}
			k.port = addr[strings.LastIndexByte(addr, ':')+1:]
		}
	}
	if err != nil {
		return err
	}
	k.running = true
	if err := waitMetadata(ctx, k.brokers); err != nil {
		if k.mode == "docker" {
			k.dockerLogs()
		}
		return fmt.Errorf("kafka at %v: %w (log: %s)", k.brokers, err, filepath.Join(k.dir, "kafka.log"))
	}
	return nil
}

// waitMetadata waits until the cluster lists a broker and a controller, which means it can
// create topics.
func waitMetadata(ctx context.Context, brokers []string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		m, err := adm.BrokerMetadata(ctx)
		if err == nil && len(m.Brokers) > 0 && m.Controller >= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no metadata: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the broker gracefully (SIGTERM; SIGKILL after 20 s). Start brings it back.
func (k *Kafka) Stop(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopLocked(ctx)
}

func (k *Kafka) stopLocked(ctx context.Context) error {
	if k.mode == "external" {
		return k.unsupported("stop")
	}
	if !k.running {
		return nil
	}
	var err error
	if k.mode == "docker" {
		err = k.dockerStop(ctx)
	} else {
		_, err = runScript(ctx, "kafka.sh", "stop", k.dir)
	}
	if err == nil {
		k.running = false
	}
	return err
}

// Kill stops the broker with SIGKILL, as a crash would. Start brings it back.
func (k *Kafka) Kill() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.mode == "external":
		return k.unsupported("kill")
	case !k.running:
		return nil
	case k.mode == "docker":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := k.dockerKill(ctx); err != nil {
			return err
		}
		k.running = false
		return nil
	}
	pid, err := readPid(filepath.Join(k.dir, "pid"))
	if err != nil {
		return err
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill kafka group %d: %w", pid, err)
	}
	waitGroupGone(pid, 10*time.Second)
	_ = os.Remove(filepath.Join(k.dir, "pid"))
	k.running = false
	return nil
}

// Restart stops the broker gracefully and starts it on the same port and data dir.
func (k *Kafka) Restart(ctx context.Context) error {
	if k.mode == "external" {
		return k.unsupported("restart")
	}
	if err := k.Stop(ctx); err != nil {
		return err
	}
	return k.Start(ctx)
}

// Close stops the broker for good (and removes a container). Errors are ignored; it is safe to
// call twice.
func (k *Kafka) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || k.mode == "external" {
		return
	}
	k.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if k.mode == "docker" {
		k.dockerClose(ctx)
		k.running = false
		return
	}
	_ = k.stopLocked(ctx)
}

// CreateTopic creates topic with the given partitions (replication factor 1) and waits until
// every partition has a leader.
func CreateTopic(ctx context.Context, brokers []string, topic string, partitions int32) error {
	return CreateTopicWithConfigs(ctx, brokers, topic, partitions, nil)
}

// CreateTopicWithConfigs is CreateTopic with topic configs (e.g.
// max.message.bytes, cleanup.policy).
func CreateTopicWithConfigs(ctx context.Context, brokers []string, topic string, partitions int32, configs map[string]*string) error {
	adm, done, err := admin(brokers)
	if err != nil {
		return err
	}
	defer done()
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if td, ok := md.Topics[topic]; ok && td.Err == nil && int32(len(td.Partitions)) == partitions {
				ready := true
				for _, p := range td.Partitions {
					ready = ready && p.Err == nil && p.Leader >= 0
				}
				if ready {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create topic %s: waiting for leaders: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Produced is one record Kafka acknowledged.
type Produced struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
}

// produceBatch is how many records Produce hands to ProduceSync at once.
const produceBatch = 1000

// Produce writes records (each with its Topic set) with acks=all and idempotence, synchronously in
// batches of 1000, and returns what was acknowledged, in input order. On error it returns every
// record acknowledged so far (some of a failed batch may be among them) with the first error.
func Produce(ctx context.Context, brokers []string, records []*kgo.Record) ([]Produced, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), kgo.RecordRetries(10))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := make([]Produced, 0, len(records))
	for start := 0; start < len(records); start += produceBatch {
		batch := records[start:min(start+produceBatch, len(records))]
		// ProduceSync returns results in completion order; put them back in input order.
		index := make(map[*kgo.Record]int, len(batch))
		for i, r := range batch {
			index[r] = i
		}
		acked := make([]*kgo.Record, len(batch))
		var firstErr error
		for _, r := range cl.ProduceSync(ctx, batch...) {
			if r.Err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("produce to %s: %w", r.Record.Topic, r.Err)
				}
				continue
			}
			acked[index[r.Record]] = r.Record
		}
		for _, r := range acked {
			if r != nil {
				out = append(out, Produced{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
			}
		}
		if firstErr != nil {
			return out, firstErr
		}
	}
	return out, nil
}

// CommittedOffsets returns the group's committed offsets for topic, by partition. Partitions
// without a commit are absent; an unknown group gives an empty map.
func CommittedOffsets(ctx context.Context, brokers []string, group, topic string) (map[int32]int64, error) {
	adm, done, err := admin(brokers)
	if err != nil {
		return nil, err
	}
	defer done()
	for {
		out, err := fetchCommitted(ctx, adm, group, topic)
		if err == nil || !kerr.IsRetriable(err) {
			return out, err
		}
		// COORDINATOR_NOT_AVAILABLE and friends while __consumer_offsets is being created or loaded.
		if perr := pause(ctx, 100*time.Millisecond); perr != nil {
			return nil, fmt.Errorf("%w (after %w)", err, perr)
		}
	}
}

func fetchCommitted(ctx context.Context, adm *kadm.Client, group, topic string) (map[int32]int64, error) {
	resp, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}, nil // kfake's answer for a group nobody joined yet
	}
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	out := map[int32]int64{}
	for p, r := range resp[topic] {
		if r.Err != nil {
			return nil, fmt.Errorf("fetch offsets of group %s, %s[%d]: %w", group, topic, p, r.Err)
		}
		if r.At >= 0 {
			out[p] = r.At
		}
	}
	return out, nil
}

// EndOffsets returns topic's high watermarks by partition.
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int32]int64, error) {
	adm, done, err := admin(brokers)
	if err != nil {
		return nil, err
	}
	defer done()
	// A partition may be between leaders for a moment (a broker restart in
	// an earlier scenario, a leader election): retry for up to 30 s.
	var resp kadm.ListedOffsets
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err = adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = resp.Error()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

func admin(brokers []string) (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}
