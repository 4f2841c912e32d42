// Package connector runs ferry's pipeline: it consumes Kafka as a member of a
// consumer group, maps each record, batches records per Kinesis stream,
// delivers them with PutRecords and commits each partition's offsets only up
// to the last record whose every predecessor was delivered.
//
// All of ferry's I/O and goroutines live here; the decisions it relies on
// (routes and partition keys, committable offsets, configuration) come from
// the pure packages mapping, offsets and config.
package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/mapping"
	"github.com/ferrylabs/ferry/offsets"
)

// Opt is an optional seam of the connector.
type Opt interface{ apply(*options) }

type options struct {
	log       *slog.Logger
	reg       prometheus.Registerer
	metrics   *Metrics
	kafkaOpts []kgo.Opt
	until     Until
}

type optFunc func(*options)

func (f optFunc) apply(o *options) { f(o) }

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Opt { return optFunc(func(o *options) { o.log = l }) }

// WithRegisterer sets where metrics are registered (default: a private registry).
func WithRegisterer(r prometheus.Registerer) Opt {
	return optFunc(func(o *options) { o.reg = r })
}

// WithMetrics uses metrics already registered (the caller shares them with
// the Kinesis client); it overrides WithRegisterer.
func WithMetrics(m *Metrics) Opt { return optFunc(func(o *options) { o.metrics = m }) }

// WithKafkaOpts adds franz-go options, after ferry's own (tests use it for
// dialers and short timeouts).
func WithKafkaOpts(opts ...kgo.Opt) Opt {
	return optFunc(func(o *options) { o.kafkaOpts = append(o.kafkaOpts, opts...) })
}

type topicPartition struct {
	topic     string
	partition int32
}

// partition is ferry's state for one assigned partition, for one assignment.
// A new assignment always gets a new partition, so nothing stale carries over.
type partition struct {
	topic   string
	id      int32
	tracker *offsets.Tracker
	// mu makes "done, then mark for commit" atomic with Revoke, so that an
	// acknowledgement arriving after the partition was revoked can never
	// mark it (franz-go does no ownership check on marks; Redpanda Connect
	// lost data this way before 7057e7ce8).
	mu sync.Mutex
	// stopping is set first thing on revoke or loss: batchers drop the
	// partition's queued records above sentEnd instead of sending them.
	stopping atomic.Bool
	// inflight counts records of the partition inside PutRecords requests.
	inflight atomic.Int64
	// sentEnd is one past the highest offset taken into a request. A revoke
	// still delivers the queued records below it (holes left by key holds
	// and failed entries): the commit stops at the first undelivered
	// record, so dropping a hole would make the next owner re-send every
	// delivered record above it.
	sentEnd atomic.Int64
	// revoked is set once a revoke's drain is over (or at once on loss):
	// from then on nothing of the partition is sent.
	revoked atomic.Bool
	// paused is set while this partition alone is paused (pauseIfHot).
	paused atomic.Bool
	// lag is what the lag metrics are computed from (see lag.go).
	lag lagState
	end atomic.Int64 // the partition's end offset (last stable offset under read_committed) at the last fetch, 0 before
	// consumed counts its records in ferry_records_consumed_total (the poll
	// loop sets it on the first record).
	consumed prometheus.Counter
	// bound is set in a bounded run (until.go): the partition's bound,
	// boundAt where this assignment starts, boundHit once a record at or
	// past the bound was fetched in this assignment.
	bound    *boundPart
	boundAt  int64
	boundHit atomic.Bool
	// held is set, under Connector.pauseMu, once the partition reached its
	// bound and was paused for good: no resume (memory bound, hot
	// partition) fetches it again.
	held atomic.Bool
}

// owes reports whether a queued record of a stopping partition must still be
// sent: the revoke is draining and the record is a hole below sentEnd.
func (p *partition) owes(offset int64) bool {
	return !p.revoked.Load() && offset < p.sentEnd.Load()
}

// taken records that the entry at offset went into a request.
func (p *partition) taken(offset int64) {
	for {
		end := p.sentEnd.Load()
		if offset < end || p.sentEnd.CompareAndSwap(end, offset+1) {
			return
		}
	}
}

// drained reports whether everything the partition sent or owes is done:
// nothing in flight and, unless sending has stopped (the holes will not be
// delivered any more), the tracker released every record below sentEnd.
func (p *partition) drained(sendingStopped bool) bool {
	if p.inflight.Load() > 0 {
		return false
	}
	if sendingStopped {
		return true
	}
	end := p.sentEnd.Load()
	if end == 0 {
		return true
	}
	mark, ok := p.tracker.Committable()
	return ok && mark.Offset >= end
}

// keyCacheBytes bounds the partition-key cache: 4 MiB holds some 40,000
// keys of 30 bytes, and stays within the 64 MiB that the memory bound allows
// beyond the buffers.
const keyCacheBytes = 4 << 20

// Connector is one ferry pipeline. Run it once.
type Connector struct {
	cfg    config.Config
	kin    KinesisAPI
	log    *slog.Logger
	m      *Metrics
	mapper *mapping.Mapper
	dec    *decoder // decode.value: auto; nil for none
	// keys caches partition keys for the poll loop (its only user), so a
	// repeated Kafka key is mapped without an allocation.
	keys *mapping.KeyCache
	// rec and hdrs are the poll loop's record being mapped, reused.
	rec  mapping.Record
	hdrs []mapping.Header
	slab []entry // see newEntry
	opts options

	cl     *kgo.Client
	client atomic.Pointer[kgo.Client] // cl, for readers outside Run (Ready)

	mu    sync.Mutex
	parts map[topicPartition]*partition

	// batchers has one batcher per stream: the static ones from New, and
	// templated streams' as the poll loop first resolves them (streams.go),
	// so only the poll loop (and Run around it) reads the map; every other
	// goroutine goes through allBatchers.
	batchers map[string]*batcher
	allB     atomic.Pointer[[]*batcher]
	missing  map[string]missingStream // templated streams found missing (poll loop)
	workers  sync.WaitGroup           // batchers' goroutines
	// startBatcher starts a batcher's goroutines under Run's contexts.
	startBatcher func(*batcher)
	sem          chan struct{} // one slot per PutRecords in flight
	sends        sync.WaitGroup

	buffered   atomic.Int64
	hotPaused  atomic.Int64  // partitions paused by pauseIfHot
	drained    chan struct{} // signalled when buffered bytes fall
	pauseMu    sync.Mutex
	paused     bool
	maxRecord  int // delivery.max_record_bytes
	maxRequest int

	// sendingStopped is set when nothing will be sent any more (shutdown
	// past its drain, or a fatal error): a revoke then waits only for the
	// requests in flight, not for holes that will never be delivered.
	sendingStopped atomic.Bool

	closing   atomic.Bool // the Kafka client is being closed (shutdown)
	joined    atomic.Bool
	streamsOK atomic.Bool
	failed    atomic.Bool
	// watch sees Kafka connection outcomes (kafkaconn.go); authFailing is
	// set while a broker refuses authentication or TLS.
	watch        *connWatch
	authFailing  atomic.Bool
	startTimeout time.Duration // KafkaStartTimeout; tests shorten it

	failOnce sync.Once
	failErr  error
	// abort stops the pipeline at once; set by Run once the pipeline is
	// up, read by fail from any goroutine (franz-go's callbacks included).
	abort atomic.Pointer[context.CancelFunc]

	bound *bounded // a bounded run's state (ferry run --until), nil otherwise
}

// New builds a connector from a validated configuration.
func New(cfg config.Config, kin KinesisAPI, opts ...Opt) (*Connector, error) {
	o := options{log: slog.Default(), reg: prometheus.NewRegistry()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(o.reg)
	}
	mapper, err := newMapper(cfg.Routes)
	if err != nil {
		return nil, err
	}
	c := &Connector{
		cfg:          cfg,
		kin:          kin,
		log:          o.log,
		m:            o.metrics,
		mapper:       mapper,
		keys:         mapping.NewKeyCache(keyCacheBytes),
		watch:        newConnWatch(o.metrics, o.log, cfg.Kafka),
		startTimeout: KafkaStartTimeout,
		opts:         o,
		parts:        make(map[topicPartition]*partition),
		batchers:     make(map[string]*batcher),
		missing:      make(map[string]missingStream),
		sem:          make(chan struct{}, cfg.Delivery.MaxInFlight),
		drained:      make(chan struct{}, 1),
		maxRecord:    int(cfg.Delivery.MaxRecordBytes),
		maxRequest:   int(cfg.Delivery.Batch.MaxBytes),
	}
	if c.dec, err = newDecoder(cfg.Decode, o.log, o.metrics.decode); err != nil {
		return nil, err
	}
	if o.until.Kind != UntilNone {
		c.bound = newBounded(o.until)
	}
	lags := c.lags
	c.m.lagSource.Store(&lags)
	for _, s := range mapper.Streams() {
		c.addBatcher(newBatcher(c, s))
	}
	return c, nil
}

// newMapper builds the mapper of the configured routes.
func newMapper(routes []config.Route) (*mapping.Mapper, error) {
	rules := make([]mapping.Rule, 0, len(routes))
	for _, r := range routes {
		rule, err := r.Rule()
		if err != nil {
			return nil, err
		}
		rules = append(rules, rule)
	}
	return mapping.New(rules)
}

// Metrics returns the connector's metrics.
func (c *Connector) Metrics() *Metrics { return c.m }

// Ready reports whether the connector has joined its group and every stream
// answered: the /readyz condition.
func (c *Connector) Ready() bool {
	if !c.streamsOK.Load() || c.failed.Load() || c.authFailing.Load() {
		return false
	}
	if c.joined.Load() {
		return true
	}
	// A member with no partitions gets no assignment callback and no
	// records; its generation still shows it joined.
	if cl := c.client.Load(); cl != nil {
		if _, gen := cl.GroupMetadata(); gen > 0 {
			c.joined.Store(true)
		}
	}
	return c.joined.Load()
}

// Healthy reports whether the pipeline is running without a fatal error and
// no Kafka broker is refusing its authentication or TLS.
func (c *Connector) Healthy() bool { return !c.failed.Load() && !c.authFailing.Load() }

// Run consumes and delivers until ctx is canceled (then it shuts down
// gracefully: flush, wait for in-flight deliveries up to
// delivery.drain_timeout, commit, leave the group, and return nil) or until a
// fatal error (then it stops at once, commits only what was delivered, and
// returns the error, wrapping ErrFatal).
func (c *Connector) Run(ctx context.Context) error {
	if err := c.checkStreams(ctx); err != nil {
		if ctx.Err() != nil {
			// A SIGTERM during start-up is a clean stop, not a failure:
			// nothing was fetched, nothing is left to commit.
			c.log.Info("stopped before joining the group")
			return nil
		}
		c.failed.Store(true)
		return err
	}
	for _, b := range c.batchers {
		b.initShards(ctx)
	}
	if ctx.Err() != nil {
		c.log.Info("stopped before joining the group")
		return nil
	}
	c.streamsOK.Store(true)

	opts, err := c.kafkaOpts(ctx)
	if err != nil {
		if ctx.Err() != nil {
			c.log.Info("stopped before joining the group")
			return nil
		}
		// AWS_MSK_IAM credentials that cannot be had: stop before joining.
		c.failed.Store(true)
		return fatalf("kafka client: %w", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.failed.Store(true)
		return fmt.Errorf("kafka client: %w", err)
	}
	c.cl = cl
	c.client.Store(cl)
	// The group join has begun in the background, but nothing is consumed
	// before the brokers answered: a refused password or certificate stops
	// here, named, instead of franz-go retrying it forever.
	if err := c.reachKafka(ctx, cl); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			c.log.Info("stopped before joining the group")
			return nil
		}
		c.failed.Store(true)
		return err
	}

	// Deliveries outlive ctx: a SIGTERM must still flush what was fetched.
	// Sending stops when the drain deadline passes (deliverCtx), but the
	// requests then in flight may finish (requestCtx, each bounded by
	// delivery.request_timeout): cutting them off would leave records that
	// Kinesis may have stored uncommitted, to be sent again by the next
	// owner. A fatal error cancels both at once.
	requestCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	deliverCtx, cancelDeliver := context.WithCancel(requestCtx)
	defer cancelDeliver()
	pollCtx, cancelPoll := context.WithCancel(ctx)
	defer cancelPoll()
	abort := context.CancelFunc(func() { c.sendingStopped.Store(true); cancelPoll(); cancelRequests() })
	c.abort.Store(&abort)
	if c.failed.Load() {
		// A callback (the group join began with NewClient) failed before
		// abort was set: stop now.
		abort()
	}

	c.startBatcher = func(b *batcher) {
		c.workers.Go(func() { b.run(deliverCtx, requestCtx) })
		c.workers.Go(func() { b.refreshLoop(deliverCtx) })
	}
	c.workers.Go(func() { c.watchAuth(deliverCtx) })
	for _, b := range c.batchers {
		c.startBatcher(b)
	}
	if c.bound != nil {
		c.workers.Go(func() { c.watchUntil(deliverCtx, cancelPoll) })
	}

	c.pollLoop(pollCtx)

	if c.fatalErr() == nil {
		c.log.Info("shutting down: flushing buffered records", "buffered_bytes", c.buffered.Load())
		for _, b := range c.batchers {
			b.flushAll()
		}
		c.waitDrained(deliverCtx, c.cfg.Delivery.DrainTimeout)
	}
	c.sendingStopped.Store(true)
	cancelDeliver()
	c.workers.Wait()
	c.sends.Wait()
	for _, b := range c.batchers {
		// What is still queued, and failed units the deliveries handed
		// back as they ended, will not be sent.
		b.abandonQueue()
	}

	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	c.commit(commitCtx, "shutdown")
	cancel()
	// Closing fails the dead-letter writes still pending: their records are
	// simply not committed, as any record undelivered at the deadline.
	c.closing.Store(true)
	// Leaving the group runs onRevoked for every partition, which revokes
	// the trackers; no later acknowledgement can mark anything.
	cl.CloseAllowingRebalance()

	if err := c.fatalErr(); err != nil {
		return err
	}
	c.log.Info("stopped cleanly")
	return nil
}

func (c *Connector) kafkaOpts(ctx context.Context) ([]kgo.Opt, error) {
	k := c.cfg.Kafka
	opts, err := KafkaClientOpts(ctx, c.cfg, c.m)
	if err != nil {
		return nil, err
	}
	// NoResetOffset: a partition with no commit starts at kafka.start, but
	// an out-of-range offset (retention deleted records ferry had not
	// delivered) is reported to us instead of silently reset, so that
	// kafka.on_offset_lost decides and the loss is counted (onFetchError).
	// (NoResetOffset's own default is the end, whatever its doc says.)
	reset := startOffset(k, kgo.NoResetOffset())
	// Fetches are small next to the buffer: franz-go holds one fetch it has
	// not handed out yet, decompressed, outside ferry's byte budget, and a
	// fetch's limit counts compressed bytes. With data that compresses 20
	// times (it happens: JSON, padded values), a fetch of buffer_bytes/4
	// became 80 MB in memory for a 16 MiB buffer; buffer_bytes/32 keeps the
	// worst case near the buffer itself.
	fetchMax := int32(min(max(int64(c.cfg.Delivery.BufferBytes)/32, 64<<10), 50<<20))
	opts = append(opts,
		kgo.WithLogger(kslog.New(c.log.With("component", "kafka"))),
		kgo.ConsumerGroup(k.Group),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(k.SessionTimeout),
		kgo.RebalanceTimeout(k.RebalanceTimeout),
		kgo.ConsumeResetOffset(reset),
		kgo.FetchMaxBytes(fetchMax),
		kgo.FetchMaxPartitionBytes(min(fetchMax, 1<<20)),
		kgo.MetadataMaxAge(k.MetadataMaxAge),
		kgo.MetadataMinAge(min(k.MetadataMaxAge, 5*time.Second)),
		// Transaction markers come through as control records so that they
		// are tracked like delivered records: otherwise the commit would stop
		// before each marker and never reach the high watermark.
		kgo.KeepControlRecords(),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(c.cfg.Commit.Interval),
		kgo.AutoCommitCallback(c.onCommit),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.OnPartitionsCallbackBlocked(c.onBlocked),
		kgo.WithHooks(c.watch),
	)
	if k.IsolationLevel == "read_committed" {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if k.TopicRegex != "" {
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics(k.TopicRegex))
	} else {
		opts = append(opts, kgo.ConsumeTopics(k.Topics...))
	}
	if c.cfg.UsesDLQ() {
		// A dead-letter record is as large as the record Kinesis refused;
		// the dead-letter topic's max.message.bytes is the real limit.
		opts = append(opts, kgo.DefaultProduceTopic(c.cfg.Delivery.DLQTopic), kgo.ProducerBatchMaxBytes(32<<20))
	}
	return append(opts, c.opts.kafkaOpts...), nil
}

// maxKeyBytes is the most bytes a partition key takes: 256 UTF-16 code
// units, three UTF-8 bytes each at most.
const maxKeyBytes = 768

// StreamStatus asks Kinesis for a stream's status.
func StreamStatus(ctx context.Context, kin KinesisAPI, stream string) (types.StreamStatus, error) {
	sum, err := describeStream(ctx, kin, stream)
	if err != nil {
		return "", err
	}
	return sum.StreamStatus, nil
}

func describeStream(ctx context.Context, kin KinesisAPI, stream string) (*types.StreamDescriptionSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var lastErr error
	for attempt := range 5 {
		out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary != nil {
			return out.StreamDescriptionSummary, nil
		}
		lastErr = err
		if cls, _ := classify(ctx, err); cls == classFatal || cls == classCanceled {
			break
		}
		if !sleepCtx(ctx, time.Duration(attempt+1)*200*time.Millisecond) {
			break
		}
	}
	if lastErr == nil {
		lastErr = errors.New("empty DescribeStreamSummary answer")
	}
	return nil, lastErr
}

// fail records the first fatal error and stops the pipeline at once.
func (c *Connector) fail(err error) {
	c.failOnce.Do(func() {
		c.failErr = err
		c.failed.Store(true)
		c.log.Error("fatal error: stopping without committing past undelivered records", "error", err.Error())
		if abort := c.abort.Load(); abort != nil {
			(*abort)()
		}
	})
}

func (c *Connector) fatalErr() error {
	if !c.failed.Load() {
		return nil
	}
	var err error
	c.failOnce.Do(func() {}) // synchronise with fail
	err = c.failErr
	if err == nil {
		err = errors.New("connector failed")
	}
	return err
}

// waitDrained waits until every fetched record is delivered (or dropped), up
// to timeout, or until ctx ends.
func (c *Connector) waitDrained(ctx context.Context, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for c.buffered.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			c.log.Warn("drain timeout: records still undelivered are left for the next owner",
				"buffered_bytes", c.buffered.Load(), "timeout", timeout.String())
			return
		case <-tick.C:
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
