package connector

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are ferry's Prometheus metrics. One set is built per connector from
// an injected registerer, so tests can use a fresh registry each.
type Metrics struct {
	consumed         *prometheus.CounterVec
	delivered        *prometheus.CounterVec
	deliveryErrors   *prometheus.CounterVec
	retries          *prometheus.CounterVec
	ambiguous        *prometheus.CounterVec
	batches          *prometheus.CounterVec
	batchRecords     prometheus.Histogram
	batchBytes       prometheus.Histogram
	inFlight         prometheus.Gauge
	buffered         prometheus.Gauge
	paused           prometheus.Gauge
	committed        *prometheus.GaugeVec
	invalid          *prometheus.CounterVec
	decode           *decodeMetrics
	dlq              *prometheus.CounterVec
	sdkAttempts      prometheus.Counter
	sdkResends       prometheus.Counter
	credRefreshes    *prometheus.CounterVec
	credErrors       *prometheus.CounterVec
	commitErrors     prometheus.Counter
	offsetsLost      *prometheus.CounterVec
	aggregated       *prometheus.CounterVec
	kinesisRecords   *prometheus.CounterVec
	shardMismatch    *prometheus.CounterVec
	throttledShard   *prometheus.CounterVec
	rateWait         *prometheus.CounterVec
	pausedPartitions prometheus.Gauge
	wrongShard       *prometheus.CounterVec
	filtered         *prometheus.CounterVec
	missingKey       *prometheus.CounterVec
	missingStream    *prometheus.CounterVec
	templatedStreams prometheus.Gauge
	tombstones       *prometheus.CounterVec
	truncations      *prometheus.CounterVec
	latency          *prometheus.HistogramVec
	// Kafka connections (kafkaconn.go).
	kafkaConnections prometheus.Counter
	kafkaSASLAuths   prometheus.Counter
	kafkaAuthErrors  *prometheus.CounterVec
	kafkaAuthFailing prometheus.Gauge
	// lagSource works out the partitions' lag at scrape time; the connector
	// sets it.
	lagSource atomic.Pointer[func() []partitionLag]
}

// NewMetrics registers ferry's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_records_consumed_total", Help: "Records fetched from Kafka.",
		}, []string{"topic"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_records_delivered_total", Help: "Records acknowledged by Kinesis (with a sequence number).",
		}, []string{"stream"}),
		deliveryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_delivery_errors_total", Help: "PutRecords errors: per-entry ErrorCodes and request-level errors, by code.",
		}, []string{"stream", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_retries_total", Help: "Records re-sent to Kinesis, by reason.",
		}, []string{"stream", "reason"}),
		ambiguous: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_ambiguous_resends_total", Help: "Records re-sent after a failure that may have stored them (possible duplicates).",
		}, []string{"stream"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_batches_total", Help: "PutRecords requests sent, including retries.",
		}, []string{"stream"}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ferry_batch_records", Help: "Records per PutRecords request.",
			Buckets: []float64{1, 10, 50, 100, 200, 300, 400, 500},
		}),
		batchBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ferry_batch_bytes", Help: "Bytes (data plus partition keys) per PutRecords request.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 8),
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_inflight_requests", Help: "PutRecords requests in flight.",
		}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_buffered_bytes", Help: "Bytes of records fetched and not yet delivered.",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_fetch_paused", Help: "1 while fetching is paused because the buffer is full.",
		}),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_committed_offset", Help: "Last offset committed to Kafka (the next offset to read).",
		}, []string{"topic", "partition"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_invalid_records_total", Help: "Records Kinesis cannot take, by policy applied.",
		}, []string{"topic", "policy"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_dlq_records_total", Help: "Records written to the dead-letter topic.",
		}, []string{"topic"}),
		sdkAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_kinesis_sdk_attempts_total", Help: "HTTP attempts the AWS SDK made for PutRecords.",
		}),
		sdkResends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_kinesis_sdk_resends_total", Help: "PutRecords attempts the AWS SDK re-sent on its own (should stay 0: ferry retries itself).",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_commit_errors_total", Help: "Failed offset commits.",
		}),
		aggregated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_aggregated_user_records_total", Help: "User records sent inside aggregated requests (aggregation ratio: this / ferry_kinesis_records_total).",
		}, []string{"stream"}),
		kinesisRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_kinesis_records_total", Help: "Kinesis records sent when aggregating (each holds one or more user records).",
		}, []string{"stream"}),
		shardMismatch: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_shard_prediction_misses_total", Help: "Records that landed on another shard than predicted (the shard map is refreshed).",
		}, []string{"stream"}),
		throttledShard: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_throttled_records_total", Help: "Entries throttled (ProvisionedThroughputExceeded), by predicted shard.",
		}, []string{"stream", "shard"}),
		rateWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_rate_limit_wait_seconds_total", Help: "Time requests waited for the per-shard token buckets.",
		}, []string{"stream"}),
		pausedPartitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_paused_partitions", Help: "Partitions paused on their own because their records wait for a hot shard.",
		}),
		offsetsLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_offsets_lost_total", Help: "Offsets skipped because Kafka deleted them before delivery (kafka.on_offset_lost).",
		}, []string{"topic"}),
		wrongShard: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_wrong_shard_aggregates_total",
			Help: "Aggregated records stored on a shard whose hash range lacks some of their user records (a stale shard map): not acknowledged, their records are re-sent by the refreshed map.",
		}, []string{"stream"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_filtered_records_total", Help: "Records a route's filters dropped (they count as delivered), by reason.",
		}, []string{"topic", "reason"}),
		missingKey: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_missing_key_records_total", Help: "Records whose partition key source and on_missing chain yielded nothing, by policy (skip, dlq).",
		}, []string{"topic", "policy"}),
		missingStream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_missing_stream_records_total", Help: "Records whose templated stream does not exist or expanded to an invalid name, by delivery.on_missing_stream policy (skip, dlq).",
		}, []string{"topic", "policy"}),
		templatedStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_templated_streams", Help: "Streams resolved from stream templates while running, each checked once and then written to.",
		}),
		tombstones: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_tombstones_total", Help: "Kafka records with a null value, by delivery.tombstones policy.",
		}, []string{"topic", "policy"}),
		truncations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_log_truncations_total", Help: "Times a partition's log was truncated below records ferry had fetched (an unclean leader election): the partition restarts from the new position.",
		}, []string{"topic"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_end_to_end_latency_seconds",
			Help:    "Time from a Kafka record's timestamp to its acknowledgement by Kinesis. timestamp_type create_time is the producer's clock, log_append_time the broker's; a timestamp ahead of ferry's clock counts as 0.",
			Buckets: prometheus.ExponentialBucketsRange(0.001, 300, 32), // 1 ms to 5 min, each 1.5 times the last
		}, []string{"stream", "timestamp_type"}),
	}
	reg.MustRegister(m.consumed, m.delivered, m.deliveryErrors, m.retries, m.ambiguous, m.batches,
		m.batchRecords, m.batchBytes, m.inFlight, m.buffered, m.paused, m.committed, m.invalid, m.dlq,
		m.sdkAttempts, m.sdkResends, m.commitErrors, m.offsetsLost, m.aggregated, m.kinesisRecords,
		m.shardMismatch, m.throttledShard, m.rateWait, m.pausedPartitions, m.wrongShard, m.filtered, m.missingKey, m.missingStream, m.templatedStreams, m.tombstones, m.truncations,
		m.latency, lagCollector{m})
	m.decode = newDecodeMetrics(reg)
	m.kafkaConnections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_kafka_connections_total", Help: "Connections to Kafka brokers opened and initialized (ApiVersions and, with SASL, authentication).",
	})
	m.kafkaSASLAuths = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_kafka_sasl_authentications_total", Help: "SASL authentications that reached the broker: one per new connection, plus one per re-authentication (KIP-368).",
	})
	m.kafkaAuthErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_kafka_auth_errors_total", Help: "Kafka connection attempts refused by SASL authentication or TLS, by cause (sasl_authentication_failed, tls_unknown_authority, tls_hostname_mismatch, tls_client_certificate_required, ...).",
	}, []string{"cause"})
	m.kafkaAuthFailing = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_kafka_auth_failing", Help: "1 while a Kafka broker refuses ferry's authentication or TLS and no connection to it has succeeded since; ferry stops after kafka.auth_failure_timeout.",
	})
	reg.MustRegister(m.kafkaConnections, m.kafkaSASLAuths, m.kafkaAuthErrors, m.kafkaAuthFailing)
	m.credRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_credential_refreshes_total", Help: "AWS credentials fetched (first fetch and each refresh before expiry), by user: kinesis or kafka_msk_iam.",
	}, []string{"source"})
	m.credErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_credential_errors_total", Help: "Failed fetches of AWS credentials (STS, the container endpoint, the default chain), by user: kinesis or kafka_msk_iam.",
	}, []string{"source"})
	reg.MustRegister(m.credRefreshes, m.credErrors)
	return m
}

var (
	lagDeliveryRecords = prometheus.NewDesc("ferry_delivery_lag_records",
		"Records of an assigned partition not yet delivered: its end offset (last stable offset under read_committed) less the delivered position.",
		[]string{"topic", "partition"}, nil)
	lagDeliverySeconds = prometheus.NewDesc("ferry_delivery_lag_seconds",
		"Age (by record timestamp) of the oldest record ferry holds undelivered for the partition; 0 when none.",
		[]string{"topic", "partition"}, nil)
	lagCommitRecords = prometheus.NewDesc("ferry_commit_lag_records",
		"Records of an assigned partition above its committed offset: what a restart would read again or for the first time.",
		[]string{"topic", "partition"}, nil)
	lagCommitSeconds = prometheus.NewDesc("ferry_commit_lag_seconds",
		"Age (by record timestamp) of the first record the committed offset does not cover; 0 when the commit is at the end.",
		[]string{"topic", "partition"}, nil)
)

// lagCollector reports the partitions' lag, worked out at each scrape.
type lagCollector struct{ m *Metrics }

func (lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDeliveryRecords
	ch <- lagDeliverySeconds
	ch <- lagCommitRecords
	ch <- lagCommitSeconds
}

func (l lagCollector) Collect(ch chan<- prometheus.Metric) {
	src := l.m.lagSource.Load()
	if src == nil {
		return
	}
	for _, p := range (*src)() {
		part := strconv.Itoa(int(p.partition))
		ch <- prometheus.MustNewConstMetric(lagDeliveryRecords, prometheus.GaugeValue, float64(p.deliveryRecords), p.topic, part)
		ch <- prometheus.MustNewConstMetric(lagDeliverySeconds, prometheus.GaugeValue, p.deliverySeconds, p.topic, part)
		ch <- prometheus.MustNewConstMetric(lagCommitRecords, prometheus.GaugeValue, float64(p.commitRecords), p.topic, part)
		ch <- prometheus.MustNewConstMetric(lagCommitSeconds, prometheus.GaugeValue, p.commitSeconds, p.topic, part)
	}
}

func (m *Metrics) setCommitted(topic string, partition int32, offset int64) {
	m.committed.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(offset))
}
