package config

import (
	"strings"
	"testing"
	"time"
)

func TestMSKIdentityInheritsKinesis(t *testing.T) {
	t.Parallel()
	kinesis := Kinesis{Region: "eu-west-1", RoleARN: "arn:aws:iam::1:role/k", ExternalID: "ext-k", SessionName: "ferry",
		RoleDuration: time.Hour, AccessKeyID: "AKIDK", SecretAccessKey: "sk-k", SessionToken: "tok-k"}
	tests := []struct {
		name string
		aws  SASLAWS
		want AWSIdentity
	}{
		{"nothing set: the kinesis identity", SASLAWS{}, kinesis.Identity()},
		{"own role drops the kinesis external id", SASLAWS{RoleARN: "arn:aws:iam::1:role/m"}, AWSIdentity{
			Region: "eu-west-1", RoleARN: "arn:aws:iam::1:role/m", SessionName: "ferry", RoleDuration: time.Hour,
			AccessKeyID: "AKIDK", SecretAccessKey: "sk-k", SessionToken: "tok-k"}},
		{"own role and external id", SASLAWS{RoleARN: "arn:aws:iam::1:role/m", ExternalID: "ext-m"}, AWSIdentity{
			Region: "eu-west-1", RoleARN: "arn:aws:iam::1:role/m", ExternalID: "ext-m", SessionName: "ferry",
			RoleDuration: time.Hour, AccessKeyID: "AKIDK", SecretAccessKey: "sk-k", SessionToken: "tok-k"}},
		{"own session name", SASLAWS{SessionName: "ferry-msk"}, AWSIdentity{
			Region: "eu-west-1", RoleARN: "arn:aws:iam::1:role/k", ExternalID: "ext-k", SessionName: "ferry-msk",
			RoleDuration: time.Hour, AccessKeyID: "AKIDK", SecretAccessKey: "sk-k", SessionToken: "tok-k"}},
		{"own keys replace all three", SASLAWS{AccessKeyID: "AKIDM", SecretAccessKey: "sk-m"}, AWSIdentity{
			Region: "eu-west-1", RoleARN: "arn:aws:iam::1:role/k", ExternalID: "ext-k", SessionName: "ferry",
			RoleDuration: time.Hour, AccessKeyID: "AKIDM", SecretAccessKey: "sk-m"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Config{Kinesis: kinesis}
			c.Kafka.SASL.AWS = tc.aws
			if got := c.MSKIdentity(); got != tc.want {
				t.Errorf("MSKIdentity() =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// msk turns validConfig into one that uses AWS_MSK_IAM.
func msk(c *Config) {
	c.Kafka.SASL = SASL{Mechanism: SASLAWSMSKIAM}
}

func TestValidateAWSValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"role with external id", func(*Config) {}},
		{"role without external id", func(c *Config) { c.Kinesis.ExternalID = "" }},
		{"default chain, no role", func(c *Config) {
			c.Kinesis.RoleARN, c.Kinesis.ExternalID, c.Kinesis.AccessKeyID, c.Kinesis.SecretAccessKey, c.Kinesis.SessionToken = "", "", "", "", ""
		}},
		{"shortest duration", func(c *Config) { c.Kinesis.RoleDuration = 15 * time.Minute }},
		{"longest duration", func(c *Config) { c.Kinesis.RoleDuration = 12 * time.Hour }},
		{"session name of every allowed character", func(c *Config) { c.Kinesis.SessionName = "ferry_+=,.@-Prod1" }},
		{"external id with colon and slash", func(c *Config) { c.Kinesis.ExternalID = "tenant:42/ferry" }},
		{"msk iam inheriting kinesis", msk},
		{"msk iam with its own identity", func(c *Config) {
			msk(c)
			c.Kafka.SASL.AWS = SASLAWS{RoleARN: "arn:aws:iam::123456789012:role/msk", ExternalID: "msk-ext",
				SessionName: "ferry-msk", AccessKeyID: "AKIDMSK", SecretAccessKey: "msk-secret", SessionToken: "msk-token"}
		}},
		{"msk iam with its own external id on the kinesis role", func(c *Config) {
			msk(c)
			c.Kafka.SASL.AWS.ExternalID = "msk-ext"
		}},
		{"msk iam lower case", func(c *Config) { msk(c); c.Kafka.SASL.Mechanism = "aws_msk_iam" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.mutate(&c)
			c.normalize()
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func TestValidateAWSRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mutate   func(*Config)
		wantPath string
		wantMsg  string
	}{
		{"duration too short", func(c *Config) { c.Kinesis.RoleDuration = 14 * time.Minute }, "kinesis.role_duration", "15m0s..12h0m0s"},
		{"duration too long", func(c *Config) { c.Kinesis.RoleDuration = 13 * time.Hour }, "kinesis.role_duration", "within"},
		{"no session name", func(c *Config) { c.Kinesis.SessionName = "" }, "kinesis.session_name", "2 to 64"},
		{"session name with a space", func(c *Config) { c.Kinesis.SessionName = "ferry prod" }, "kinesis.session_name", `"ferry prod"`},
		{"session name too long", func(c *Config) { c.Kinesis.SessionName = strings.Repeat("f", 65) }, "kinesis.session_name", "2 to 64"},
		{"external id without role", func(c *Config) { c.Kinesis.RoleARN = "" }, "kinesis.external_id", "set kinesis.role_arn"},
		{"external id too short", func(c *Config) { c.Kinesis.ExternalID = "x" }, "kinesis.external_id", "2 to 1224"},
		{"external id with a space", func(c *Config) { c.Kinesis.ExternalID = "a b" }, "kinesis.external_id", "2 to 1224"},
		{"role not a role arn", func(c *Config) { c.Kinesis.RoleARN = "ferry" }, "kinesis.role_arn", "not an IAM role ARN"},
		{"msk iam without tls", func(c *Config) { msk(c); c.Kafka.TLS = TLS{} }, "kafka.tls.enabled", "TLS listeners only"},
		{"msk iam with a password", func(c *Config) { msk(c); c.Kafka.SASL.Password = "x" }, "kafka.sasl.username", "not used by AWS_MSK_IAM"},
		{"aws block without msk iam", func(c *Config) { c.Kafka.SASL.AWS.RoleARN = "arn:aws:iam::1:role/m" }, "kafka.sasl.aws", "only used by AWS_MSK_IAM"},
		{"msk role not a role arn", func(c *Config) { msk(c); c.Kafka.SASL.AWS.RoleARN = "arn:aws:iam::1:user/m" }, "kafka.sasl.aws.role_arn", "not an IAM role ARN"},
		{"msk external id without any role", func(c *Config) {
			msk(c)
			c.Kinesis.RoleARN, c.Kinesis.ExternalID = "", ""
			c.Kafka.SASL.AWS.ExternalID = "msk-ext"
		}, "kafka.sasl.aws.external_id", "set kafka.sasl.aws.role_arn"},
		{"msk session name bad", func(c *Config) { msk(c); c.Kafka.SASL.AWS.SessionName = "a/b" }, "kafka.sasl.aws.session_name", `"a/b"`},
		{"msk secret without key", func(c *Config) { msk(c); c.Kafka.SASL.AWS.SecretAccessKey = "s" }, "kafka.sasl.aws.access_key_id", "required"},
		{"msk key without secret", func(c *Config) { msk(c); c.Kafka.SASL.AWS.AccessKeyID = "AKID" }, "kafka.sasl.aws.secret_access_key", "required"},
		{"msk token without keys", func(c *Config) { msk(c); c.Kafka.SASL.AWS.SessionToken = "t" }, "kafka.sasl.aws.session_token", "needs"},
		{"unknown mechanism lists msk iam", func(c *Config) { c.Kafka.SASL.Mechanism = "OAUTHBEARER" }, "kafka.sasl.mechanism", "or AWS_MSK_IAM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.mutate(&c)
			errs := FieldErrors(c.Validate())
			if len(errs) != 1 {
				t.Fatalf("Validate() = %v, want exactly one error at %s", errs, tc.wantPath)
			}
			if errs[0].Path != tc.wantPath || !strings.Contains(errs[0].Error(), tc.wantMsg) {
				t.Errorf("error %q, want path %s and %q", errs[0].Error(), tc.wantPath, tc.wantMsg)
			}
		})
	}
}

// The new keys load from every source, and the MSK secrets are redacted.
func TestLoadAWSKeys(t *testing.T) {
	t.Parallel()
	file := `
kafka:
  brokers: ["localhost:9092"]
  topics: [orders]
kinesis:
  region: eu-west-1
  role_arn: arn:aws:iam::123456789012:role/ferry
  external_id: file-ext
routes:
  - topics: [orders]
    stream: orders
`
	cfg := mustLoad(t, Sources{
		File: []byte(file),
		Environ: []string{
			"FERRY_KINESIS_SESSION_NAME=ferry-prod", "FERRY_KAFKA_SASL_MECHANISM=AWS_MSK_IAM", "FERRY_KAFKA_TLS_ENABLED=true",
			"FERRY_KAFKA_SASL_AWS_ACCESS_KEY_ID=AKIDMSK", "FERRY_KAFKA_SASL_AWS_SECRET_ACCESS_KEY=msk-secret-hunter2",
		},
		Sets: []string{"kinesis.role_duration=2h", "kafka.sasl.aws.session_name=ferry-msk"},
	})
	k := cfg.Kinesis
	if k.ExternalID != "file-ext" || k.SessionName != "ferry-prod" || k.RoleDuration != 2*time.Hour {
		t.Errorf("kinesis = %+v", k)
	}
	id := cfg.MSKIdentity()
	if id.AccessKeyID != "AKIDMSK" || id.SecretAccessKey.Reveal() != "msk-secret-hunter2" || id.SessionName != "ferry-msk" ||
		id.RoleARN != "arn:aws:iam::123456789012:role/ferry" || id.ExternalID != "file-ext" {
		t.Errorf("MSKIdentity() = %+v", id)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") {
		t.Errorf("ferry config shows a kafka.sasl.aws secret:\n%s", out)
	}
	if d := Default().Kinesis; d.SessionName != "ferry" || d.RoleDuration != time.Hour {
		t.Errorf("defaults: session name %q, duration %s", d.SessionName, d.RoleDuration)
	}
}
