package connector

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// gauge returns the value of a metric family's sample with these label
// values (a histogram's count), or -1 when there is none.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				if m.GetGauge() != nil {
					return m.GetGauge().GetValue()
				}
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// matchLabels reports whether every value is the value of one of m's labels
// (the Gather output sorts labels by name).
func matchLabels(m *dto.Metric, values []string) bool {
	for _, v := range values {
		found := false
		for _, l := range m.GetLabel() {
			found = found || l.GetValue() == v
		}
		if !found {
			return false
		}
	}
	return true
}

// The lag gauges follow what is delivered and committed, in records and in
// seconds of record time, and the latency histogram counts every record
// from its Kafka timestamp.
func TestLagAndLatencyMetrics(t *testing.T) {
	t.Parallel()
	topic := "lag"
	brokers := startCluster(t, topic, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	hourAgo := time.Now().Add(-time.Hour)
	var recs []*kgo.Record
	for i := range 100 {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%10), Value: fmt.Appendf(nil, "v%d|", i), Timestamp: hourAgo})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	kin := newFakeKinesis()
	throttleFrom := throttleFrom(kin, 50)
	cfg := testConfig(brokers, topic)
	reg := prometheus.NewRegistry()
	_, stop := startConnector(t, cfg, kin, WithRegisterer(reg))
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 50}, 20*time.Second)
	waitFor(t, 10*time.Second, "the lag gauges", func() bool {
		return gauge(t, reg, "ferry_delivery_lag_records", topic, "0") == 50 &&
			gauge(t, reg, "ferry_commit_lag_records", topic, "0") == 50
	})
	for _, name := range []string{"ferry_delivery_lag_seconds", "ferry_commit_lag_seconds"} {
		if got := gauge(t, reg, name, topic, "0"); got < 3590 || got > 3700 {
			t.Errorf("%s = %v, want about an hour: the oldest undelivered record is an hour old", name, got)
		}
	}
	throttleFrom.Store(1 << 40)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 100}, 20*time.Second)
	waitFor(t, 10*time.Second, "no lag", func() bool {
		return gauge(t, reg, "ferry_delivery_lag_records", topic, "0") == 0 &&
			gauge(t, reg, "ferry_commit_lag_records", topic, "0") == 0 &&
			gauge(t, reg, "ferry_commit_lag_seconds", topic, "0") == 0
	})
	if got := gauge(t, reg, "ferry_end_to_end_latency_seconds", "s", "create_time"); got != 100 {
		t.Fatalf("latency histogram counted %v records, want 100", got)
	}
}
