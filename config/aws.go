package config

import "time"

// AWSIdentity is everything that decides one client's AWS credentials: the
// base credentials (static keys, or the SDK's default chain when
// AccessKeyID is empty) and the role assumed on top of them, if any.
type AWSIdentity struct {
	Region          string
	RoleARN         string
	ExternalID      string
	SessionName     string
	RoleDuration    time.Duration
	AccessKeyID     string
	SecretAccessKey Secret
	SessionToken    Secret
}

// Identity is the AWS identity Kinesis is written with.
func (k Kinesis) Identity() AWSIdentity {
	return AWSIdentity{
		Region:          k.Region,
		RoleARN:         k.RoleARN,
		ExternalID:      k.ExternalID,
		SessionName:     k.SessionName,
		RoleDuration:    k.RoleDuration,
		AccessKeyID:     k.AccessKeyID,
		SecretAccessKey: k.SecretAccessKey,
		SessionToken:    k.SessionToken,
	}
}

// MSKIdentity is the AWS identity AWS_MSK_IAM signs with: the Kinesis
// identity, with each kafka.sasl.aws field that is set taking its place. The
// access keys go as a set: kafka.sasl.aws.access_key_id replaces all three.
// With a role of its own, the MSK identity drops Kinesis' external id.
func (c Config) MSKIdentity() AWSIdentity {
	id := c.Kinesis.Identity()
	a := c.Kafka.SASL.AWS
	if a.RoleARN != "" {
		id.RoleARN, id.ExternalID = a.RoleARN, ""
	}
	if a.ExternalID != "" {
		id.ExternalID = a.ExternalID
	}
	if a.SessionName != "" {
		id.SessionName = a.SessionName
	}
	if a.AccessKeyID != "" {
		id.AccessKeyID, id.SecretAccessKey, id.SessionToken = a.AccessKeyID, a.SecretAccessKey, a.SessionToken
	}
	return id
}
