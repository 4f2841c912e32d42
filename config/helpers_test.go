package config

import (
	"errors"
	"testing"
	"time"
)

// validConfig uses every feature, so each Validate case breaks one rule of a
// config that otherwise passes.
func validConfig() Config {
	c := Default()
	c.Kafka.Brokers = []string{"kafka-1.internal:9092", "10.0.0.7:9093", "[::1]:9094"}
	c.Kafka.Topics = []string{"orders", "payments", "audit"}
	c.Kafka.TLS = TLS{Enabled: true, CAFile: "/etc/ferry/ca.pem", CertFile: "/etc/ferry/client.pem",
		KeyFile: "/etc/ferry/client.key", ServerName: "kafka.internal"}
	c.Kafka.SASL = SASL{Mechanism: SASLScramSHA512, Username: "ferry", Password: "sasl-hunter2"}
	c.Kinesis = Kinesis{
		Region:          "eu-west-1",
		Endpoint:        "https://kinesis.eu-west-1.amazonaws.com",
		RoleARN:         "arn:aws:iam::123456789012:role/ferry",
		ExternalID:      "ferry-external-id",
		SessionName:     "ferry",
		RoleDuration:    time.Hour,
		AccessKeyID:     "AKIAEXAMPLE",
		SecretAccessKey: "aws-secret-hunter2",
		SessionToken:    "aws-token-hunter2",
	}
	c.Routes = []Route{
		{Topics: []string{"orders"}, Stream: "orders-stream", PartitionKey: PartitionKeyKey},
		{Regex: "^(pay|aud)", Stream: "everything.else_1", PartitionKey: PartitionKeyPartition},
	}
	c.Delivery.OnInvalid = OnInvalidDLQ
	c.Delivery.DLQTopic = "ferry-dlq"
	c.Delivery.Batch.Linger = 0
	c.Delivery.DrainTimeout = 30 * time.Second
	return c
}

// validYAML is a file that, alone, loads without any error.
const validYAML = `
kafka:
  brokers: ["localhost:9092"]
  topics: [orders]
kinesis:
  region: eu-west-1
routes:
  - topics: [orders]
    stream: orders
`

// sourceErrors returns the leaves of a Load error that are not Validate's.
func sourceErrors(err error) []error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe FieldError
		if err != nil && !errors.As(err, &fe) {
			out = append(out, err)
		}
	}
	walk(err)
	return out
}

// mustLoad loads src and fails on any warning or any error that is not a
// Validate error.
func mustLoad(t *testing.T, src Sources) Config {
	t.Helper()
	cfg, warnings, err := Load(src)
	if errs := sourceErrors(err); len(errs) > 0 {
		t.Fatalf("Load: unexpected source errors: %v", errors.Join(errs...))
	}
	if len(warnings) > 0 {
		t.Fatalf("Load: unexpected warnings: %q", warnings)
	}
	return cfg
}

func hasPath(errs []FieldError, path string) bool {
	for _, e := range errs {
		if e.Path == path {
			return true
		}
	}
	return false
}
