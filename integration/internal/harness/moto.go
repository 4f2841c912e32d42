package harness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// MotoAccount is the account moto files everything under.
const MotoAccount = "123456789012"

// Moto is a running moto server (STS, IAM and Kinesis) with signature checks on: it recomputes
// SigV4, rejects unknown keys, takes assumed-role keys only with their session token and
// evaluates trust policies, sts:ExternalId conditions included. StartMoto creates, before turning
// the checks on, one IAM user and three roles:
//
//   - User (UserARN, AccessKey, SecretKey) may call sts:AssumeRole,
//     sts:AssumeRoleWithWebIdentity and kinesis:*;
//   - RoleARN trusts User when the external id is ExternalID, and may use kinesis:*;
//   - UntrustedRoleARN trusts another user only;
//   - WebIdentityRoleARN trusts an OIDC provider (AssumeRoleWithWebIdentity), and may use
//     kinesis:*.
//
// Known limits of moto 5.2.5: AssumeRole without any external id passes a trust policy that
// requires one (its condition check sees no value and lets it through); expired credentials are
// still accepted; and an unsigned request (AssumeRoleWithWebIdentity is one) fails with a 500
// once the checks are on, so tests sign it on its way (see MotoSign).
type Moto struct {
	endpoint string
	dir      string
	once     sync.Once

	UserARN            string
	AccessKey          string
	SecretKey          string
	RoleARN            string
	ExternalID         string
	UntrustedRoleARN   string
	WebIdentityRoleARN string
}

// StartMoto starts moto_server through scripts/moto.sh (log in dir/moto.log; "" means a new
// temporary folder), creates the user and roles and turns signature checks on. Without the
// virtualenv that scripts/deps.sh makes, it returns an error wrapping ErrUnavailable.
func StartMoto(ctx context.Context, dir string) (*Moto, error) {
	repo, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	venv := os.Getenv("FERRY_TEST_MOTO_VENV")
	if venv == "" {
		venv = filepath.Join(cacheDir(repo), "venv-moto")
	}
	if _, err := os.Stat(filepath.Join(venv, "bin", "moto_server")); err != nil {
		return nil, fmt.Errorf("start moto: %s/bin/moto_server missing: %w", venv, ErrUnavailable)
	}
	dir, err = makeDir(dir, "ferry-moto-")
	if err != nil {
		return nil, err
	}
	endpoint, err := runScript(ctx, "moto.sh", "start", dir)
	if err != nil {
		return nil, err
	}
	m := &Moto{endpoint: endpoint, dir: dir}
	if err := m.setup(ctx); err != nil {
		m.Stop()
		return nil, fmt.Errorf("set up moto: %w", err)
	}
	return m, nil
}

// Endpoint is moto's base URL, http://127.0.0.1:PORT, for every service.
func (m *Moto) Endpoint() string { return m.endpoint }

// Stop stops moto; its data is in memory and is lost. Safe to call twice.
func (m *Moto) Stop() {
	m.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = runScript(ctx, "moto.sh", "stop", m.dir)
	})
}

// UserCredentials are the IAM user's keys.
func (m *Moto) UserCredentials() aws.Credentials {
	return aws.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey, Source: "moto user"}
}

// KinesisClient returns a Kinesis client for moto signed with the user's keys, with the standard
// retryer without its quota (as NewKinesisClient).
func (m *Moto) KinesisClient() *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       TestRegion,
		BaseEndpoint: aws.String(m.endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.RateLimiter = ratelimit.None
			o.MaxAttempts = 5
		}),
	})
}

// AssumeRole calls moto's STS directly as the user and returns the role's credentials.
func (m *Moto) AssumeRole(ctx context.Context, roleARN, session, externalID string, duration time.Duration) (aws.Credentials, error) {
	form := url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {roleARN},
		"RoleSessionName": {session}, "DurationSeconds": {fmt.Sprint(int(duration / time.Second))}}
	if externalID != "" {
		form.Set("ExternalId", externalID)
	}
	var out struct {
		Creds struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
			SessionToken    string `xml:"SessionToken"`
			Expiration      string `xml:"Expiration"`
		} `xml:"AssumeRoleResult>Credentials"`
	}
	if err := m.query(ctx, "sts", form, m.UserCredentials(), &out); err != nil {
		return aws.Credentials{}, err
	}
	exp, _ := time.Parse(time.RFC3339, out.Creds.Expiration)
	return aws.Credentials{AccessKeyID: out.Creds.AccessKeyID, SecretAccessKey: out.Creds.SecretAccessKey,
		SessionToken: out.Creds.SessionToken, CanExpire: true, Expires: exp}, nil
}

func (m *Moto) setup(ctx context.Context) error {
	// While the checks are off, any keys sign; the service comes from the credential scope.
	setupKeys := aws.Credentials{AccessKeyID: "AKIDSETUP", SecretAccessKey: "setup"}
	iam := func(out any, kv ...string) error {
		form := url.Values{"Version": {"2010-05-08"}}
		for i := 0; i+1 < len(kv); i += 2 {
			form.Set(kv[i], kv[i+1])
		}
		return m.query(ctx, "iam", form, setupKeys, out)
	}
	policy := func(statements ...map[string]any) string {
		b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
		return string(b)
	}
	allow := func(actions ...string) map[string]any {
		return map[string]any{"Effect": "Allow", "Action": actions, "Resource": "*"}
	}
	const user = "ferry-test"
	m.UserARN = "arn:aws:iam::" + MotoAccount + ":user/" + user
	m.ExternalID = fmt.Sprintf("ferry-ext-%06d", rand.IntN(1e6))
	var key struct {
		ID     string `xml:"CreateAccessKeyResult>AccessKey>AccessKeyId"`
		Secret string `xml:"CreateAccessKeyResult>AccessKey>SecretAccessKey"`
	}
	type step struct {
		out any
		kv  []string
	}
	steps := []step{
		{nil, []string{"Action", "CreateUser", "UserName", user}},
		{&key, []string{"Action", "CreateAccessKey", "UserName", user}},
		{nil, []string{"Action", "PutUserPolicy", "UserName", user, "PolicyName", "ferry",
			"PolicyDocument", policy(allow("sts:AssumeRole", "sts:AssumeRoleWithWebIdentity", "kinesis:*"))}},
	}
	roles := []struct {
		arn   *string
		name  string
		trust map[string]any
	}{
		{&m.RoleARN, "ferry-writer", map[string]any{"Effect": "Allow", "Action": "sts:AssumeRole",
			"Principal": map[string]any{"AWS": m.UserARN},
			"Condition": map[string]any{"StringEquals": map[string]any{"sts:ExternalId": m.ExternalID}}}},
		{&m.UntrustedRoleARN, "ferry-untrusted", map[string]any{"Effect": "Allow", "Action": "sts:AssumeRole",
			"Principal": map[string]any{"AWS": "arn:aws:iam::" + MotoAccount + ":user/someone-else"}}},
		{&m.WebIdentityRoleARN, "ferry-irsa", map[string]any{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
			"Principal": map[string]any{"Federated": "arn:aws:iam::" + MotoAccount + ":oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/FERRY"}}},
	}
	for _, r := range roles {
		*r.arn = "arn:aws:iam::" + MotoAccount + ":role/" + r.name
		steps = append(steps,
			step{nil, []string{"Action", "CreateRole", "RoleName", r.name, "AssumeRolePolicyDocument", policy(r.trust)}},
			step{nil, []string{"Action", "PutRolePolicy", "RoleName", r.name, "PolicyName", "kinesis",
				"PolicyDocument", policy(allow("kinesis:*"))}})
	}
	for _, s := range steps {
		if err := iam(s.out, s.kv...); err != nil {
			return err
		}
	}
	if key.ID == "" || key.Secret == "" {
		return fmt.Errorf("CreateAccessKey returned no key")
	}
	m.AccessKey, m.SecretKey = key.ID, key.Secret

	// From here on every request must be signed by keys moto issued.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.endpoint+"/moto-api/reset-auth", strings.NewReader("0"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset-auth: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset-auth: %s: %s", resp.Status, body)
	}
	return nil
}

// query sends one Query-protocol request (IAM, STS) signed with creds, and decodes the XML answer
// into out (nil: discard).
func (m *Moto) query(ctx context.Context, service string, form url.Values, creds aws.Credentials, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.endpoint+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if err := MotoSign(ctx, req, creds, service); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", service, form.Get("Action"), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", service, form.Get("Action"), resp.Status, body)
	}
	if out != nil {
		if err := xml.Unmarshal(body, out); err != nil {
			return fmt.Errorf("%s %s: %w", service, form.Get("Action"), err)
		}
	}
	return nil
}

// MotoSign signs req (whose body it reads and restores) with SigV4 for service in TestRegion.
func MotoSign(ctx context.Context, req *http.Request, creds aws.Credentials, service string) error {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return err
		}
		body = b
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	return v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), service, TestRegion, time.Now())
}

var sharedMoto struct {
	mu   sync.Mutex
	moto *Moto
	dir  string
}

// SharedMoto returns the test binary's shared moto, starting it on first use; CloseShared stops it.
func SharedMoto(ctx context.Context) (*Moto, error) {
	sharedMoto.mu.Lock()
	defer sharedMoto.mu.Unlock()
	if sharedMoto.moto != nil {
		return sharedMoto.moto, nil
	}
	dir, err := os.MkdirTemp("", "ferry-moto-")
	if err != nil {
		return nil, err
	}
	m, err := StartMoto(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	sharedMoto.moto, sharedMoto.dir = m, dir
	return m, nil
}

func closeSharedMoto() {
	sharedMoto.mu.Lock()
	defer sharedMoto.mu.Unlock()
	if sharedMoto.moto != nil {
		sharedMoto.moto.Stop()
		_ = os.RemoveAll(sharedMoto.dir)
		sharedMoto.moto = nil
	}
}
