package fastsink

import (
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	ferryconfig "github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/connector"
)

// TestFerryClientSurvivesEarlyAnswers is the regression test for the
// duplicate-on-success race (see connector.bodyWithoutWriterTo): a server
// that answers as soon as it has the body, clients hammering it from several
// goroutines on 2 cores. With the SDK's own HTTP client some requests fail
// with "deserialization failed ... use of closed network connection" after a
// 200 (the batch was stored); with ferry's client none may.
func TestFerryClientSurvivesEarlyAnswers(t *testing.T) {
	s := startSink(t)
	c, err := connector.NewKinesisClient(t.Context(), ferryconfig.Kinesis{Region: "us-east-1", Endpoint: s.URL(),
		AccessKeyID: "a", SecretAccessKey: "b"}, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]types.PutRecordsRequestEntry, 500)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{Data: make([]byte, 256), PartitionKey: aws.String("k")}
	}
	const workers, perWorker = 4, 150
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []error
	)
	for range workers {
		wg.Go(func() {
			for range perWorker {
				if _, err := c.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs}); err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed, e.g. %v", len(failed), workers*perWorker, errors.Join(failed[0]))
	}
	if st := s.Stats(); st.Records != workers*perWorker*500 || st.PutRecordsRequests != workers*perWorker {
		t.Fatalf("sink stats %+v", st)
	}
}
