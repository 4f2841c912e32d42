package connector

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
)

// A route's key source, on_missing policy, payload format and filters, end
// to end on kfake: every offset is committed, filtered and skipped records
// are counted and not sent, a record without a key goes to the dead-letter
// topic, and the envelope carries the whole record.
func TestRouteMapping(t *testing.T) {
	t.Parallel()
	topic := "route-mapping"
	brokers := startCluster(t, topic, 1)
	cl := producer(t, brokers, topic, true)
	tenant := func(v string) []kgo.RecordHeader { return []kgo.RecordHeader{{Key: "tenant", Value: []byte(v)}} }
	recs := []*kgo.Record{
		{Key: []byte("k0"), Value: []byte(`{"n":0}`), Headers: tenant("acme")},
		{Key: []byte("k1"), Value: []byte(`{"n":1}`)}, // no tenant: dead-lettered
		{Key: []byte("k2"), Value: []byte(`{"n":2}`), Headers: append(tenant("acme"), kgo.RecordHeader{Key: "type", Value: []byte("heartbeat")})},
		{Key: []byte("k3"), Headers: tenant("globex")}, // a tombstone: filtered
		{Key: []byte{0xff, 0x00}, Value: []byte{0x01, 0x02}, Headers: tenant("globex")},
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	kin := newFakeKinesis()
	cfg := testConfig(brokers, topic)
	cfg.Delivery.DLQTopic = topic + "-dlq"
	cfg.Routes = []config.Route{{Topics: []string{topic}, Stream: "s", PartitionKey: "header:tenant", OnMissing: []string{"dlq"},
		Format: "envelope", Filters: []config.RouteFilter{
			{Tombstone: true, Reason: "tombstone"},
			{Header: &config.HeaderCondition{Name: "type", Equals: "heartbeat"}, Reason: "heartbeat"},
		}}}
	c, stop := startConnector(t, cfg, kin)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 5}, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		reason string
		want   float64
	}{{"tombstone", 1}, {"heartbeat", 1}} {
		if got := testutil.ToFloat64(c.m.filtered.WithLabelValues(topic, tc.reason)); got != tc.want {
			t.Errorf("ferry_filtered_records_total{reason=%q} = %v, want %v", tc.reason, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(c.m.missingKey.WithLabelValues(topic, "dlq")); got != 1 {
		t.Errorf("ferry_missing_key_records_total{policy=dlq} = %v, want 1", got)
	}
	if dl := consumeAll(t, brokers, topic+"-dlq", 1); string(dl[0].Key) != "k1" {
		t.Fatalf("dead-lettered %q, want k1", dl[0].Key)
	}
	kin.mu.Lock()
	defer kin.mu.Unlock()
	if len(kin.order["acme"]) != 1 || len(kin.order["globex"]) != 1 || len(kin.stored) != 2 {
		t.Fatalf("stored by partition key: %v", kin.order)
	}
	var env envelope
	if err := json.Unmarshal([]byte(kin.order["acme"][0]), &env); err != nil {
		t.Fatalf("envelope %s: %v", kin.order["acme"][0], err)
	}
	if env.Topic != topic || env.Offset != 0 || env.Key != "k0" || string(env.Value) != `{"n":0}` || env.Timestamp == 0 ||
		len(env.Headers) != 1 || env.Headers[0].Value != "acme" {
		t.Fatalf("envelope %+v", env)
	}
	env = envelope{}
	if err := json.Unmarshal([]byte(kin.order["globex"][0]), &env); err != nil {
		t.Fatal(err)
	}
	if k, _ := base64.StdEncoding.DecodeString(env.KeyBase64); fmt.Sprintf("%x", k) != "ff00" || env.Value64 != base64.StdEncoding.EncodeToString([]byte{1, 2}) {
		t.Fatalf("binary record's envelope %s", kin.order["globex"][0])
	}
}

// envelope is the part of format: envelope a test reads back.
type envelope struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp int64  `json:"timestamp"`
	Key       string `json:"key"`
	KeyBase64 string `json:"keyBase64"`
	Value     json.RawMessage
	Value64   string `json:"valueBase64"`
	Headers   []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"headers"`
}

// kafka.start timestamp:... starts a partition without a commit at its first
// record at or after that time.
func TestStartAtATimestamp(t *testing.T) {
	t.Parallel()
	topic := "start-at-timestamp"
	brokers := startCluster(t, topic, 1)
	cl := producer(t, brokers, topic, false)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "v%d|", i), Timestamp: base.Add(time.Duration(i) * time.Minute)})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	kin := newFakeKinesis()
	cfg := testConfig(brokers, topic)
	cfg.Kafka.Start = "timestamp:" + base.Add(6*time.Minute).Format(time.RFC3339)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	stop := runConnector(t, cfg, kin)
	waitCommitted(t, brokers, cfg.Kafka.Group, topic, map[int32]int64{0: 10}, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := kin.snapshot()
	if len(got) != 4 || got["v6|"] != 1 || got["v9|"] != 1 || got["v5|"] != 0 {
		t.Fatalf("stored %v, want v6..v9", got)
	}
}
