// Package harness starts and drives the real services ferry's integration tests run against:
// an Apache Kafka broker (KRaft, from Maven jars), the Kinesis emulators kinesis-mock and
// kinesalite (from npm), and the ferry binary itself. Only tests import it.
//
// # Services
//
//	func StartKafka(ctx context.Context, dir string) (*Kafka, error)
//	func (k *Kafka) Brokers() []string
//	func (k *Kafka) Stop(ctx context.Context) error     // SIGTERM, SIGKILL after 20 s
//	func (k *Kafka) Kill() error                        // SIGKILL now (crash)
//	func (k *Kafka) Start(ctx context.Context) error    // start again after Stop/Kill: same port, same data
//	func (k *Kafka) Restart(ctx context.Context) error  // Stop, then Start
//	func (k *Kafka) Close()                             // stop for good; idempotent
//
//	func StartSecuredKafka(ctx context.Context, dir string) (*SecuredKafka, error) // + SASL_SSL and mTLS listeners
//	func SharedSecuredKafka(ctx context.Context) (*SecuredKafka, error)          // one per test binary, on first use
//	func (s *SecuredKafka) UpsertSCRAMUser(ctx context.Context, mechanism, user, password string) error
//	func GenerateCerts(dir string) (Certs, error) // CA, broker PEM keystore, client certificates
//
//	func StartKinesis(ctx context.Context, kind, dir string) (*Kinesis, error) // KindMock or KindKinesalite
//	func (k *Kinesis) Endpoint() string  // http://127.0.0.1:PORT
//	func (k *Kinesis) Kind() string
//	func (k *Kinesis) Stop()
//
//	func StartMoto(ctx context.Context, dir string) (*Moto, error) // STS, IAM, Kinesis; signatures checked
//	func SharedMoto(ctx context.Context) (*Moto, error)
//	func (m *Moto) Endpoint() string
//	func (m *Moto) KinesisClient() *kinesis.Client  // signed with the IAM user's keys
//	func (m *Moto) AssumeRole(ctx, roleARN, session, externalID string, d time.Duration) (aws.Credentials, error)
//	func (m *Moto) Stop()
//
//	func StartRegistry(ctx context.Context, dir string) (*Registry, error) // Apicurio Registry 2.6, in memory
//	func SharedRegistry(ctx context.Context) (*Registry, error)
//	func (r *Registry) URL() string         // http://127.0.0.1:PORT/apis/ccompat/v7 (Confluent API)
//	func (r *Registry) Client() *sr.Client  // franz-go's registry client, to register schemas
//	func (r *Registry) Stop()
//
// The registry runs through scripts/registry.sh from the app scripts/deps.sh unpacks
// (.cache/apicurio); its log is DIR/registry.log, and it takes 3-10 s to start.
//
// moto runs through scripts/moto.sh from the virtualenv scripts/deps.sh makes (.cache/venv-moto);
// its log is DIR/moto.log.
//
// Local services run through scripts/kafka.sh and scripts/kinesis.sh (the repository root is found
// by walking up to go.mod) and need `scripts/deps.sh` to have run. Their logs are DIR/kafka.log and
// DIR/kinesis.log. Every process started gets FERRY_TEST_WATCH_PID set to the test process, so it dies
// within a second of the test binary even when a test panics or times out.
//
// Fallbacks, in order:
//   - FERRY_TEST_KAFKA=host:port[,host:port] uses that cluster (Stop, Kill, Start and Restart
//     return an error wrapping errors.ErrUnsupported); FERRY_TEST_KINESIS=URL replaces
//     kinesis-mock and FERRY_TEST_KINESALITE=URL replaces kinesalite.
//   - local jars / npm packages (the normal case);
//   - when those are missing and a Docker engine answers testcontainers-go's health check (probed
//     once per test binary, within 1.5 s, without output): containers KafkaImage and
//     KinesisMockImage run by testcontainers-go (kinesalite has no image). Kafka's Stop, Kill,
//     Start and Restart act on the container (same port, same data); Kafka.Close and Kinesis.Stop
//     remove it, and testcontainers' reaper removes what a dead test binary leaves;
//   - otherwise an error wrapping ErrUnavailable, which Require turns into t.Skip, or t.Fatal when
//     CI=true.
//
// Kafka start-up takes about 5-7 s on 2 cores, so share one broker per package (TestMain) and give
// each test its own topic and stream (STYLE.md rule 22).
//
// # Environment
//
//	FERRY_TEST_KAFKA, FERRY_TEST_KINESIS, FERRY_TEST_KINESALITE  use external services (above)
//	FERRY_TEST_REGISTRY       a Confluent-compatible registry URL instead of Apicurio
//	FERRY_TEST_CACHE          download cache root (default REPO/.cache): Kafka jars, built binaries
//	FERRY_TEST_RACE=1    BuildBinary builds with -race
//	FERRY_TEST_PID_REGISTRY   file that collects started process groups (.ci/run kills leftovers)
//	CI=true              Require fails instead of skipping
//
// The scripts read more (FERRY_TEST_KAFKA_HEAP, FERRY_TEST_KAFKA_PROPERTIES, FERRY_TEST_KINESIS_LOG_LEVEL, ...);
// see their headers.
//
// # Clients
//
//	func NewKinesisClient(endpoint string) *kinesis.Client
//	func CreateStream(ctx context.Context, c *kinesis.Client, name string, shards int32) error
//	func ReadAll(ctx context.Context, c *kinesis.Client, stream string) ([]StreamRecord, error)
//	func ListShardRanges(ctx context.Context, c *kinesis.Client, stream string) ([]shardmap.Shard, error) // closed shards too
//	func DeaggregateKCL(recs []StreamRecord, shards []shardmap.Shard) (KCLRead, error) // drops what the Java KCL drops
//	func CreateTopic(ctx context.Context, brokers []string, topic string, partitions int32) error
//	func Produce(ctx context.Context, brokers []string, records []*kgo.Record) ([]Produced, error)
//	func CommittedOffsets(ctx context.Context, brokers []string, group, topic string) (map[int32]int64, error)
//	func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int32]int64, error)
//
// # Processes
//
//	func BuildBinary(t testing.TB, pkg string) string
//	func Start(ctx context.Context, bin string, args, env []string, logPath string) (*Process, error)
//	func (p *Process) Signal(sig os.Signal) error
//	func (p *Process) Wait(timeout time.Duration) (exitCode int, err error)
//	func (p *Process) Kill()
//	func (p *Process) Close()
//	func (p *Process) Tail() string
//	func FreePort() int
//	func Require(t testing.TB, err error)
package harness
