package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	awssasl "github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ferrylabs/ferry/config"
)

// KafkaClientOpts turns the connection part of the Kafka configuration
// (brokers, client id, TLS, SASL) into franz-go options. Group and consume
// options are added by the connector itself.
//
// With AWS_MSK_IAM it also builds the AWS credentials (those of
// config.MSKIdentity) and fetches them once, so that a refused role fails
// here, named; m (nil: none) counts their fetches under kafka_msk_iam.
func KafkaClientOpts(ctx context.Context, c config.Config, m *Metrics) ([]kgo.Opt, error) {
	cfg := c.Kafka
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
	}
	if cfg.TLS.Enabled || cfg.TLS.CAFile != "" || cfg.TLS.CertFile != "" {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch strings.ToUpper(cfg.SASL.Mechanism) {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: cfg.SASL.Username, Pass: cfg.SASL.Password.Reveal()}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASL.Username, Pass: cfg.SASL.Password.Reveal()}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASL.Username, Pass: cfg.SASL.Password.Reveal()}.AsSha512Mechanism()))
	case config.SASLAWSMSKIAM:
		mech, err := mskIAM(ctx, c.MSKIdentity(), m)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(mech))
	default:
		return nil, fmt.Errorf("kafka.sasl.mechanism: unsupported %q", cfg.SASL.Mechanism)
	}
	return opts, nil
}

// mskIAM is the AWS_MSK_IAM mechanism. franz-go calls its callback for
// every SASL session, each new connection and each re-authentication
// (KIP-368; MSK ends a session when its credentials expire, and after at
// most a few hours). The callback reads the cached credentials: one
// AssumeRole per expiry, not per connection (franz-go #731), under the one
// configured session name, because the broker refuses a re-authentication
// whose principal changed, and the session name is part of an assumed
// role's principal (centrifugo #1144). The region is the one in the
// broker's host name, or AWS_REGION.
func mskIAM(ctx context.Context, id config.AWSIdentity, m *Metrics) (sasl.Mechanism, error) {
	awsCfg, err := loadAWSConfig(ctx, id)
	if err != nil {
		return nil, err
	}
	creds := newCredentials(awsCfg, id, CredentialsMSKIAM, m)
	if err := fetchCredentials(ctx, creds, CredentialsMSKIAM); err != nil {
		return nil, err
	}
	return awssasl.ManagedStreamingIAM(func(ctx context.Context) (awssasl.Auth, error) {
		c, err := creds.Retrieve(ctx)
		if err != nil {
			return awssasl.Auth{}, fmt.Errorf("%s credentials: %w", CredentialsMSKIAM, err)
		}
		return awssasl.Auth{AccessKey: c.AccessKeyID, SecretKey: c.SecretAccessKey, SessionToken: c.SessionToken}, nil
	}), nil
}

func tlsConfig(cfg config.TLS) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         cfg.ServerName,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // an explicit, documented user choice
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: no certificates in %s", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
