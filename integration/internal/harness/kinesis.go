package harness

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/testcontainers/testcontainers-go"

	"github.com/ferrylabs/ferry/shardmap"
)

// Emulator kinds for StartKinesis.
const (
	KindMock       = "kinesis-mock" // npm kinesis-local; "mock" is accepted too
	KindKinesalite = "kinesalite"
)

// Test credentials and region. kinesis-mock files streams under the account named by a 12-digit
// access key id and under its default account (000000000000) for any other key, so every client
// using a non-numeric key, ferry included, sees the same streams.
const (
	TestRegion    = "us-east-1"
	TestAccessKey = "AKIDFERRYTEST"
	TestSecretKey = "ferry-test-secret"
)

// Kinesis is a running Kinesis emulator.
type Kinesis struct {
	kind     string
	endpoint string
	dir      string
	ctr      *testcontainers.DockerContainer
	once     sync.Once
}

// StartKinesis starts the emulator kind (KindMock or KindKinesalite) with its log in
// dir/kinesis.log ("" means a new temporary folder) and waits until it answers HTTP.
// FERRY_TEST_KINESIS (kinesis-mock) and FERRY_TEST_KINESALITE (kinesalite) name an endpoint to use
// instead.
func StartKinesis(ctx context.Context, kind, dir string) (*Kinesis, error) {
	env := "FERRY_TEST_KINESIS"
	switch kind {
	case KindMock, "mock":
		kind = KindMock
	case KindKinesalite:
		env = "FERRY_TEST_KINESALITE"
	default:
		return nil, fmt.Errorf("start kinesis: unknown kind %q", kind)
	}
	if ext := os.Getenv(env); ext != "" {
		return &Kinesis{kind: kind, endpoint: ext}, nil
	}
	repo, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	pkg := map[string]string{KindMock: "kinesis-local", KindKinesalite: "kinesalite"}[kind]
	_, errNode := execLookPath("node")
	if _, err := os.Stat(filepath.Join(repo, "node_modules", pkg, "package.json")); err != nil || errNode != nil {
		if kind == KindMock && dockerAvailable(ctx) {
			dir, err = makeDir(dir, "ferry-kinesis-")
			if err != nil {
				return nil, err
			}
			ctr, endpoint, err := startKinesisDocker(ctx, dir)
			if err != nil {
				return nil, err
			}
			return &Kinesis{kind: kind, endpoint: endpoint, ctr: ctr}, nil
		}
		return nil, fmt.Errorf("start %s: node or node_modules/%s missing (run npm ci), no Docker engine: %w",
			kind, pkg, ErrUnavailable)
	}
	dir, err = makeDir(dir, "ferry-kinesis-")
	if err != nil {
		return nil, err
	}
	endpoint, err := runScript(ctx, "kinesis.sh", "start", kind, dir)
	if err != nil {
		return nil, err
	}
	return &Kinesis{kind: kind, endpoint: endpoint, dir: dir}, nil
}

// Endpoint is the emulator's base URL, http://127.0.0.1:PORT.
func (k *Kinesis) Endpoint() string { return k.endpoint }

// Kind is KindMock or KindKinesalite.
func (k *Kinesis) Kind() string { return k.kind }

// Stop stops the emulator (its data is in memory and is lost). Safe to call twice; a no-op for an
// external endpoint.
func (k *Kinesis) Stop() {
	k.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		switch {
		case k.ctr != nil:
			stopContainer(ctx, k.ctr)
		case k.dir != "":
			_, _ = runScript(ctx, "kinesis.sh", "stop", k.dir)
		}
	})
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer: %w", url, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// NewKinesisClient returns a client for endpoint with static test credentials, region us-east-1,
// and the SDK's standard retryer without its retry quota (the token bucket would otherwise run dry
// in fault-injection tests; see RELIABILITY.md (d)8). No shared AWS config or env is read.
func NewKinesisClient(endpoint string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       TestRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(TestAccessKey, TestSecretKey, ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.RateLimiter = ratelimit.None
			o.MaxAttempts = 5
		}),
	})
}

// isCode reports whether err is an API error with one of codes.
func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// CreateStream creates a provisioned stream with shards shards and waits until it is ACTIVE.
// kinesis-mock's control-plane rate limit (LimitExceededException) is retried.
func CreateStream(ctx context.Context, c *kinesis.Client, name string, shards int32) error {
	for {
		_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
		if err == nil {
			break
		}
		if !isCode(err, "LimitExceededException") {
			return fmt.Errorf("create stream %s: %w", name, err)
		}
		if err := pause(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("create stream %s: %w", name, err)
		}
	}
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil && !isCode(err, "LimitExceededException") {
			return fmt.Errorf("describe stream %s: %w", name, err)
		}
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return nil
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("wait for stream %s: %w", name, err)
		}
	}
}

// StreamRecord is one record read back from a stream.
type StreamRecord struct {
	ShardID        string
	SequenceNumber string
	PartitionKey   string
	Data           []byte
}

// ListShardIDs returns the ids of every shard of stream, open or closed, paging through ListShards.
func ListShardIDs(ctx context.Context, c *kinesis.Client, stream string) ([]string, error) {
	shards, err := ListShardRanges(ctx, c, stream)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(shards))
	for i, s := range shards {
		ids[i] = s.ID
	}
	return ids, nil
}

// ListShardRanges returns every shard of stream with its inclusive hash-key range, paging through
// ListShards without a filter: that lists closed shards too (a parent after a split or merge, still
// within retention; kinesis-mock keeps them, with an EndingSequenceNumber), and Open is false for
// them.
func ListShardRanges(ctx context.Context, c *kinesis.Client, stream string) ([]shardmap.Shard, error) {
	var shards []shardmap.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := c.ListShards(ctx, in)
		if err != nil {
			if isCode(err, "LimitExceededException") {
				if err := pause(ctx, 200*time.Millisecond); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range out.Shards {
			id := aws.ToString(s.ShardId)
			if s.HashKeyRange == nil {
				return nil, fmt.Errorf("list shards of %s: %s has no hash-key range", stream, id)
			}
			start, err := shardmap.ParseHash(aws.ToString(s.HashKeyRange.StartingHashKey))
			if err != nil {
				return nil, fmt.Errorf("list shards of %s: %s: starting hash key: %w", stream, id, err)
			}
			end, err := shardmap.ParseHash(aws.ToString(s.HashKeyRange.EndingHashKey))
			if err != nil {
				return nil, fmt.Errorf("list shards of %s: %s: ending hash key: %w", stream, id, err)
			}
			open := s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil
			shards = append(shards, shardmap.Shard{ID: id, Start: start, End: end, Open: open})
		}
		if out.NextToken == nil {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// ReadAll reads every record of every shard of stream (including closed parent shards) from
// TRIM_HORIZON up to the end, and returns them sorted by shard id, then by sequence number (as big
// integers): per-shard Kinesis order. It stops reading an open shard at the first empty page that
// is not behind the tip, so call it after the writers are done.
func ReadAll(ctx context.Context, c *kinesis.Client, stream string) ([]StreamRecord, error) {
	shards, err := ListShardIDs(ctx, c, stream)
	if err != nil {
		return nil, err
	}
	var out []StreamRecord
	for _, shard := range shards {
		recs, err := readShard(ctx, c, stream, shard)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	seq := func(s string) *big.Int {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return new(big.Int)
		}
		return n
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].ShardID != out[j].ShardID {
			return out[i].ShardID < out[j].ShardID
		}
		return seq(out[i].SequenceNumber).Cmp(seq(out[j].SequenceNumber)) < 0
	})
	return out, nil
}

// getRecordsPause spaces GetRecords calls on one shard when the emulator reports a throughput or
// rate limit (real Kinesis allows 5 calls per second per shard).
const getRecordsPause = 200 * time.Millisecond

func readShard(ctx context.Context, c *kinesis.Client, stream, shard string) ([]StreamRecord, error) {
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String(stream),
		ShardId:           aws.String(shard),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		return nil, fmt.Errorf("shard iterator for %s/%s: %w", stream, shard, err)
	}
	var out []StreamRecord
	iter := it.ShardIterator
	for iter != nil {
		page, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		if err != nil {
			if isCode(err, "ProvisionedThroughputExceededException", "LimitExceededException") {
				if err := pause(ctx, getRecordsPause); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("get records from %s/%s: %w", stream, shard, err)
		}
		for _, r := range page.Records {
			out = append(out, StreamRecord{ShardID: shard, SequenceNumber: aws.ToString(r.SequenceNumber),
				PartitionKey: aws.ToString(r.PartitionKey), Data: r.Data})
		}
		if len(page.Records) == 0 && aws.ToInt64(page.MillisBehindLatest) == 0 {
			break // at the tip of an open shard
		}
		iter = page.NextShardIterator // nil once a closed shard is read to its end
	}
	return out, nil
}
