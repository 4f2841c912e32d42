//go:build integration

package integration

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/integration/internal/harness"
	"github.com/ferrylabs/ferry/shardmap"
)

// pinReport is where each Kafka partition's records landed.
type pinReport struct {
	byPartition map[int32]map[string]int // partition -> shard -> records
	byShard     map[string]int
	records     int
}

// readPinned reads a stream and places every record by the partition in
// its "topic|index|" value (looked up in produced).
func readPinned(t *testing.T, kc *kinesis.Client, stream string, produced []harness.Produced) pinReport {
	t.Helper()
	partOf := map[string]int32{}
	for _, p := range produced {
		partOf[valueID(p.Value)] = p.Partition
	}
	read, err := harness.ReadAll(t.Context(), kc, stream)
	if err != nil {
		t.Fatal(err)
	}
	r := pinReport{byPartition: map[int32]map[string]int{}, byShard: map[string]int{}}
	for _, rec := range read {
		p, ok := partOf[valueID(rec.Data)]
		if !ok {
			continue // a record of an earlier round
		}
		if r.byPartition[p] == nil {
			r.byPartition[p] = map[string]int{}
		}
		r.byPartition[p][rec.ShardID]++
		r.byShard[rec.ShardID]++
		r.records++
	}
	return r
}

// checkPinned asserts that every partition's records sit on one shard, the
// open shard p mod N of m (shards by their starting hash key), and that every
// open shard got records.
func checkPinned(t *testing.T, stream string, m *shardmap.Map, partitions int32, r pinReport, want int) {
	t.Helper()
	if r.records != want {
		t.Errorf("%s: read back %d records, want %d", stream, r.records, want)
	}
	for p := range partitions {
		shards := r.byPartition[p]
		wantShard := m.At(int(p) % m.Len()).ID
		if len(shards) != 1 || shards[wantShard] == 0 {
			t.Errorf("%s: partition %d landed on %v, want only %s", stream, p, shards, wantShard)
		}
	}
	for i := range m.Len() {
		if id := m.At(i).ID; r.byShard[id] == 0 {
			t.Errorf("%s: open shard %s received nothing (%v)", stream, id, r.byShard)
		}
	}
}

func openShards(t *testing.T, kc *kinesis.Client, stream string) *shardmap.Map {
	t.Helper()
	shards, err := harness.ListShardRanges(t.Context(), kc, stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := shardmap.New(shards)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hash_key: kafka_partition on kinesis-mock: 12 partitions over 4 shards and
// over 5, every partition on one shard (p mod N), every shard receiving, and
// after a 4 -> 8 reshard while ferry runs the partitions spread over the 8
// new shards the same way, with nothing lost.
func TestHashKeyPinsPartitionsToShards(t *testing.T) {
	const partitions = 12
	e := newEnv(t, harness.KindMock, 2, partitions, 4)
	five := e.stream + "-5"
	if err := harness.CreateStream(t.Context(), e.kc, five, 5); err != nil {
		t.Fatal(err)
	}
	cfg := e.withRoutes(e.config(""), fmt.Sprintf(`  - topics: [%s]
    stream: %s
    hash_key: kafka_partition
  - topics: [%s]
    stream: %s
    hash_key: kafka_partition
`, e.topics[0], e.stream, e.topics[1], five))

	const n = 2400 // over both topics, 500 distinct keys
	produced := e.produce(n, 500, 32)
	split := func(ps []harness.Produced) (a, b []harness.Produced) {
		for _, p := range ps {
			if p.Topic == e.topics[0] {
				a = append(a, p)
			} else {
				b = append(b, p)
			}
		}
		return a, b
	}
	four, fiveRecs := split(produced)
	p := e.start(cfg, "ferry")
	e.waitCommitted(-1, 2*time.Minute, p)
	checkPinned(t, e.stream, openShards(t, e.kc, e.stream), partitions, readPinned(t, e.kc, e.stream, four), len(four))
	checkPinned(t, five, openShards(t, e.kc, five), partitions, readPinned(t, e.kc, five, fiveRecs), len(fiveRecs))

	// Reshard the 4-shard stream to 8 while ferry runs; records sent
	// meanwhile land by the old middles (still inside some open shard),
	// and the next map pins the partitions over all 8.
	if _, err := e.kc.UpdateShardCount(t.Context(), &kinesis.UpdateShardCountInput{
		StreamName: aws.String(e.stream), TargetShardCount: aws.Int32(8), ScalingType: types.ScalingTypeUniformScaling}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, e.kc, e.stream)
	during := e.produceFrom(n, n+1200, 500, 32)
	e.waitCommitted(-1, 2*time.Minute, p)
	// The map ferry pins by once it has listed the 8 shards.
	for deadline := time.Now().Add(90 * time.Second); !strings.Contains(readFile(t, p.LogPath()), `"open_shards":8`); {
		if time.Now().After(deadline) {
			t.Fatal("ferry never listed the 8 shards")
		}
		time.Sleep(200 * time.Millisecond)
	}
	after := e.produceFrom(n+1200, n+3600, 500, 32)
	e.waitCommitted(-1, 2*time.Minute, p)
	e.stop(p)

	duringFour, _ := split(during)
	afterFour, _ := split(after)
	all := readPinned(t, e.kc, e.stream, slices.Concat(four, duringFour, afterFour))
	if want := len(four) + len(duringFour) + len(afterFour); all.records != want {
		t.Fatalf("%s: read back %d records across the reshard, want %d (lost %d)", e.stream, all.records, want, want-all.records)
	}
	m8 := openShards(t, e.kc, e.stream)
	if m8.Len() != 8 {
		t.Fatalf("%d open shards after the reshard, want 8", m8.Len())
	}
	checkPinned(t, e.stream, m8, partitions, readPinned(t, e.kc, e.stream, afterFour), len(afterFour))
}

// A route's stream is a template: ${topic}, regex capture groups and
// ${header:NAME}. Records fan out into several streams by capture group and
// header, each stream checked once when first resolved; a stream that does
// not exist, and a template missing its header, follow
// delivery.on_missing_stream (dlq here), and every partition key source
// (json:, header: with its on_missing chain, a template, random, partition,
// key) yields the key read back from Kinesis.
func TestTemplatedRoutesIntoSeveralStreams(t *testing.T) {
	e := newEnv(t, harness.KindMock, 0, 2, 2)
	orders := func(region string) string { return e.name + ".orders." + region }
	topics := []string{orders("eu"), orders("us"), orders("apac"), e.name + ".clicks", e.name + ".audit", e.name + ".metrics"}
	for _, topic := range topics {
		if err := harness.CreateTopic(t.Context(), e.brokers, topic, 2); err != nil {
			t.Fatal(err)
		}
	}
	e.topics = topics
	streams := []string{e.name + "-orders-eu", e.name + "-orders-us", e.name + "-clicks-eu", e.name + "-clicks-us",
		e.name + ".audit-copy", e.name + "-metrics"}
	for _, s := range streams {
		if err := harness.CreateStream(t.Context(), e.kc, s, 2); err != nil {
			t.Fatal(err)
		}
	}
	dlq := e.name + ".dlq"
	if err := harness.CreateTopic(t.Context(), e.brokers, dlq, 1); err != nil {
		t.Fatal(err)
	}
	hdr := headers
	type want = routedWant
	var recs []*kgo.Record
	var wants []want
	add := func(r *kgo.Record, w want) {
		// A unique value that stays JSON where it was: what is read back
		// is matched to its record by its bytes.
		if v := string(r.Value); strings.HasSuffix(v, "}") {
			r.Value = fmt.Appendf(nil, `%s,"i":%d}`, v[:len(v)-1], len(recs))
		} else {
			r.Value = fmt.Appendf(r.Value, "|%d", len(recs))
		}
		recs = append(recs, r)
		wants = append(wants, w)
	}
	// orders.<region> -> <name>-orders-${region}, key json:/customer/id,
	// falling back to header:tenant, then the Kafka key.
	add(&kgo.Record{Topic: orders("eu"), Key: []byte("k1"), Value: []byte(`{"customer":{"id":"c-1"}}`)}, want{stream: streams[0], key: "c-1"})
	add(&kgo.Record{Topic: orders("us"), Key: []byte("k2"), Value: []byte(`{"customer":{"id":42}}`)}, want{stream: streams[1], key: "42"})
	add(&kgo.Record{Topic: orders("us"), Key: []byte("k3"), Value: []byte(`{"other":1}`), Headers: hdr("tenant", "acme")}, want{stream: streams[1], key: "acme"})
	add(&kgo.Record{Topic: orders("eu"), Key: []byte("k4"), Value: []byte(`not json`)}, want{stream: streams[0], key: "k4"})
	add(&kgo.Record{Topic: orders("apac"), Key: []byte("k5"), Value: []byte(`{"customer":{"id":"c-5"}}`)}, want{dead: "missing_stream"})
	// clicks: region eu first (by when), key header:user or dead-lettered;
	// the rest by ${header:region}, keys random.
	add(&kgo.Record{Topic: e.name + ".clicks", Value: []byte("c"), Headers: hdr("region", "eu", "user", "u-1")}, want{stream: streams[2], key: "u-1"})
	add(&kgo.Record{Topic: e.name + ".clicks", Value: []byte("c"), Headers: hdr("region", "eu")}, want{dead: "missing_partition_key"})
	add(&kgo.Record{Topic: e.name + ".clicks", Value: []byte("c"), Headers: hdr("region", "us")}, want{stream: streams[3]})
	add(&kgo.Record{Topic: e.name + ".clicks", Value: []byte("c"), Headers: hdr("region", "mars")}, want{dead: "missing_stream"})
	add(&kgo.Record{Topic: e.name + ".clicks", Value: []byte("c")}, want{dead: "missing_stream"}) // no region header
	// audit -> ${topic}-copy, key ${topic}:${key}.
	add(&kgo.Record{Topic: e.name + ".audit", Key: []byte("a1"), Value: []byte("a")}, want{stream: streams[4], key: e.name + ".audit:a1"})
	// metrics -> a static stream, key partition.
	add(&kgo.Record{Topic: e.name + ".metrics", Partition: 1, Key: []byte("m1"), Value: []byte("m")}, want{stream: streams[5], key: "1"})
	for i := range 20 { // random keys spread over both shards
		add(&kgo.Record{Topic: e.name + ".clicks", Value: []byte("c"), Headers: hdr("region", "us", "n", strconv.Itoa(i))}, want{stream: streams[3]})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	cfg := e.withRoutes(e.config(fmt.Sprintf("  dlq_topic: %s\n  on_missing_stream: dlq\n", dlq)), fmt.Sprintf(`  - regex: '^%[1]s\.orders\.(?P<region>[a-z]+)$'
    stream: '%[1]s-orders-${region}'
    partition_key: json:/customer/id
    on_missing: [header:tenant, key]
  - topics: [%[1]s.clicks]
    when: {header: {name: region, equals: eu}}
    stream: '%[1]s-clicks-eu'
    partition_key: header:user
    on_missing: [dlq]
  - topics: [%[1]s.clicks]
    stream: '%[1]s-clicks-${header:region}'
    partition_key: random
  - topics: [%[1]s.audit]
    stream: '${topic}-copy'
    partition_key: '${topic}:${key}'
  - topics: [%[1]s.metrics]
    stream: %[1]s-metrics
    partition_key: partition
`, e.name))
	p := e.start(cfg, "ferry")
	e.waitCommitted(-1, 2*time.Minute, p)
	_, body := httpGet(t, p, "/metrics")
	e.stop(p)

	index := map[string]string{}
	for i, r := range recs {
		index[string(r.Value)] = strconv.Itoa(i)
	}
	got := map[string]harness.StreamRecord{} // by the record's index
	shardsOf := map[string]map[string]bool{}
	for _, s := range streams {
		read, err := harness.ReadAll(ctx, e.kc, s)
		if err != nil {
			t.Fatal(err)
		}
		shardsOf[s] = map[string]bool{}
		for _, r := range read {
			idx := index[string(r.Data)]
			if _, dup := got[idx]; dup {
				t.Errorf("record %s read twice", idx)
			}
			r.ShardID = s + "/" + r.ShardID
			got[idx] = r
			shardsOf[s][r.ShardID] = true
		}
	}
	dead := map[string]string{}
	for _, r := range consumeTopic(t, e.brokers, dlq, countDead(wants)) {
		idx := index[string(r.Value)]
		for _, h := range r.Headers {
			if h.Key == "ferry.error.class" {
				dead[idx] = string(h.Value)
			}
		}
	}
	for i, w := range wants {
		idx := strconv.Itoa(i)
		r, ok := got[idx]
		switch {
		case w.dead != "":
			if ok || dead[idx] != w.dead {
				t.Errorf("record %d (%s): sent %t, dead-letter class %q, want dead-lettered as %q", i, recs[i].Topic, ok, dead[idx], w.dead)
			}
		case !ok:
			t.Errorf("record %d (%s) not read back from %s", i, recs[i].Topic, w.stream)
		case !strings.HasPrefix(r.ShardID, w.stream+"/"):
			t.Errorf("record %d landed in %s, want stream %s", i, r.ShardID, w.stream)
		case w.key != "" && r.PartitionKey != w.key:
			t.Errorf("record %d has partition key %q, want %q", i, r.PartitionKey, w.key)
		}
	}
	if len(shardsOf[streams[3]]) != 2 {
		t.Errorf("random keys reached shards %v of %s, want both", shardsOf[streams[3]], streams[3])
	}
	if got := metric(body, "ferry_missing_stream_records_total", `policy="dlq"`); got != 3 {
		t.Errorf("ferry_missing_stream_records_total{policy=dlq} = %v, want 3", got)
	}
	// The counts add up as README's "Verify counts" says.
	consumed, delivered := metric(body, "ferry_records_consumed_total"), metric(body, "ferry_records_delivered_total")
	policies := metric(body, "ferry_missing_stream_records_total") + metric(body, "ferry_missing_key_records_total")
	if consumed != float64(len(recs)) || delivered+policies != consumed {
		t.Errorf("consumed %v, delivered %v + missing stream/key %v; want %d consumed, all accounted for", consumed, delivered, policies, len(recs))
	}
	if got := metric(body, "ferry_templated_streams"); got != 4 {
		t.Errorf("ferry_templated_streams = %v, want 4 (orders-eu, orders-us, clicks-us, audit-copy)", got)
	}
}

// headers builds record headers from name, value pairs.
func headers(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

// routedWant is where a record should end up: a stream and partition key
// ("" for any, as random gives), or the dead-letter topic with a class.
type routedWant struct {
	stream, key string
	dead        string
}

func countDead(ws []routedWant) int {
	n := 0
	for _, w := range ws {
		if w.dead != "" {
			n++
		}
	}
	return n
}

// delivery.on_missing_stream fail (the default) stops ferry naming the
// stream and the record, committing nothing past it; skip passes it,
// counted; and on_missing: [fail] and [skip] do the same for a record
// without its partition key.
func TestMissingStreamAndKeyPolicies(t *testing.T) {
	cases := []struct {
		name, extra, route string
		value              string
		exit               int
		log                string
		metricName, label  string
	}{
		{"stream fail", "", "    stream: '${topic}-nowhere'\n", "v", 1, "does not exist", "", ""},
		{"stream skip", "  on_missing_stream: skip\n", "    stream: '${topic}-nowhere'\n", "v", 0, "", "ferry_missing_stream_records_total", `policy="skip"`},
		{"key fail", "", "    stream: STREAM\n    partition_key: json:/id\n    on_missing: [fail]\n", "{}", 1, "json:/id", "", ""},
		{"key skip", "", "    stream: STREAM\n    partition_key: json:/id\n    on_missing: [skip]\n", "{}", 0, "", "ferry_missing_key_records_total", `policy="skip"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, harness.KindMock, 1, 1, 1)
			recs := []*kgo.Record{{Topic: e.topics[0], Key: []byte("a"), Value: []byte(tc.value)}}
			if _, err := harness.Produce(t.Context(), e.brokers, recs); err != nil {
				t.Fatal(err)
			}
			route := strings.ReplaceAll(tc.route, "STREAM", e.stream)
			cfg := e.withRoutes(e.config(tc.extra), fmt.Sprintf("  - topics: [%s]\n%s", e.topics[0], route))
			p := e.start(cfg, "ferry")
			if tc.exit != 0 {
				code, err := p.Wait(time.Minute)
				if err != nil || code != tc.exit {
					t.Fatalf("ferry exited %d (%v), want %d", code, err, tc.exit)
				}
				if log := readFile(t, p.LogPath()); !strings.Contains(log, tc.log) {
					t.Fatalf("the log does not name %q:\n%s", tc.log, p.Tail())
				}
				if c := total(e.committed()); c != 0 {
					t.Fatalf("committed %d offsets past the record", c)
				}
				return
			}
			e.waitCommitted(-1, time.Minute, p)
			_, body := httpGet(t, p, "/metrics")
			e.stop(p)
			if got := metric(body, tc.metricName, tc.label); got != 1 {
				t.Errorf("%s{%s} = %v, want 1", tc.metricName, tc.label, got)
			}
		})
	}
}

// Each filter on a real broker and kinesis-mock: tombstones dropped, a header
// value dropped, a topic regex dropped, keep (only eu records), and negate
// with keep (only records without an internal header). What arrives is exactly
// the rest, every offset is committed, and each drop is counted by reason.
func TestFiltersOnARealBroker(t *testing.T) {
	e := newEnv(t, harness.KindMock, 0, 1, 1)
	events, tmp := e.name+".events", e.name+".tmp-scratch"
	for _, topic := range []string{events, tmp} {
		if err := harness.CreateTopic(t.Context(), e.brokers, topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	e.topics = []string{events, tmp}
	hdr := headers
	type rec struct {
		r      *kgo.Record
		reason string // "" when it arrives
	}
	recs := []rec{
		{&kgo.Record{Topic: events, Key: []byte("a"), Value: []byte("v0"), Headers: hdr("region", "eu-west")}, ""},
		{&kgo.Record{Topic: events, Key: []byte("b"), Headers: hdr("region", "eu-west")}, "tombstone"},
		{&kgo.Record{Topic: events, Key: []byte("c"), Value: []byte("v2"), Headers: hdr("region", "eu-west", "type", "heartbeat")}, "heartbeat"},
		{&kgo.Record{Topic: events, Key: []byte("d"), Value: []byte("v3"), Headers: hdr("region", "us-east")}, "not-eu"},
		{&kgo.Record{Topic: events, Key: []byte("e"), Value: []byte("v4")}, "not-eu"},
		{&kgo.Record{Topic: events, Key: []byte("f"), Value: []byte("v5"), Headers: hdr("region", "eu-central", "internal", "1")}, "internal"},
		{&kgo.Record{Topic: tmp, Key: []byte("g"), Value: []byte("v6"), Headers: hdr("region", "eu-west")}, "scratch"},
		{&kgo.Record{Topic: events, Key: []byte("h"), Value: []byte("v7"), Headers: hdr("region", "eu-north")}, ""},
	}
	var krecs []*kgo.Record
	for _, r := range recs {
		krecs = append(krecs, r.r)
	}
	if _, err := harness.Produce(t.Context(), e.brokers, krecs); err != nil {
		t.Fatal(err)
	}
	cfg := e.withRoutes(e.config(""), fmt.Sprintf(`  - regex: '^%s\.'
    stream: %s
    filters:
      - {tombstone: true, reason: tombstone}
      - {header: {name: type, equals: heartbeat}, reason: heartbeat}
      - {topic: '\.tmp-', reason: scratch}
      - {header: {name: region, regex: '^eu-'}, keep: true, reason: not-eu}
      - {header: {name: internal, present: true}, negate: true, keep: true, reason: internal}
`, e.name, e.stream))
	p := e.start(cfg, "ferry")
	e.waitCommitted(-1, time.Minute, p)
	_, body := httpGet(t, p, "/metrics")
	e.stop(p)

	read, err := harness.ReadAll(t.Context(), e.kc, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, r := range read {
		got = append(got, string(r.Data))
	}
	reasons := map[string]int{}
	for _, r := range recs {
		if r.reason == "" {
			want = append(want, string(r.r.Value))
		} else {
			reasons[r.reason]++
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("read back %q, want %q", got, want)
	}
	for reason, n := range reasons {
		if m := metric(body, "ferry_filtered_records_total", `reason="`+reason+`"`); m != float64(n) {
			t.Errorf("ferry_filtered_records_total{reason=%q} = %v, want %d", reason, m, n)
		}
	}
}
