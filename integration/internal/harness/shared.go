package harness

import (
	"context"
	"os"
	"sync"
	"testing"
)

// Shared services: one Kafka broker and one emulator of each kind per test binary (STYLE.md rule
// 22), started on first use. Tests that stop or restart the broker must start their own with
// StartKafka instead. A package that uses them declares
//
//	func TestMain(m *testing.M) { harness.Main(m) }
//
// so they are stopped when its tests are done. Without it they still die within a second of the
// test process (FERRY_TEST_WATCH_PID), but their temporary folders stay behind.
var shared struct {
	mu      sync.Mutex
	kafka   *Kafka
	kinesis map[string]*Kinesis
	dirs    []string
}

// SharedKafka returns the test binary's shared broker, starting it on first use.
func SharedKafka(ctx context.Context) (*Kafka, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.kafka != nil {
		return shared.kafka, nil
	}
	dir, err := os.MkdirTemp("", "ferry-kafka-")
	if err != nil {
		return nil, err
	}
	shared.dirs = append(shared.dirs, dir)
	k, err := StartKafka(ctx, dir)
	if err != nil {
		return nil, err
	}
	shared.kafka = k
	return k, nil
}

// SharedKinesis returns the test binary's shared emulator of kind, starting it on first use.
func SharedKinesis(ctx context.Context, kind string) (*Kinesis, error) {
	if kind == "mock" {
		kind = KindMock
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if k := shared.kinesis[kind]; k != nil {
		return k, nil
	}
	dir, err := os.MkdirTemp("", "ferry-kinesis-")
	if err != nil {
		return nil, err
	}
	shared.dirs = append(shared.dirs, dir)
	k, err := StartKinesis(ctx, kind, dir)
	if err != nil {
		return nil, err
	}
	if shared.kinesis == nil {
		shared.kinesis = map[string]*Kinesis{}
	}
	shared.kinesis[kind] = k
	return k, nil
}

// CloseShared stops the shared services and removes their folders.
func CloseShared() {
	closeSharedSecured()
	closeSharedMoto()
	closeSharedRegistry()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.kafka != nil {
		shared.kafka.Close()
		shared.kafka = nil
	}
	for kind, k := range shared.kinesis {
		k.Stop()
		delete(shared.kinesis, kind)
	}
	for _, d := range shared.dirs {
		_ = os.RemoveAll(d)
	}
	shared.dirs = nil
}

// Main runs the tests, then CloseShared, then exits with the tests' status.
func Main(m *testing.M) {
	code := m.Run()
	CloseShared()
	os.Exit(code)
}
