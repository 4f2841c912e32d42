package config

import (
	"strings"
	"testing"
)

func TestValidateDecode(t *testing.T) {
	t.Parallel()
	auto := func(c *Config) {
		c.Decode.Value = DecodeAuto
		c.Decode.Registry.URL = "http://registry:8081"
	}
	tests := []struct {
		name     string
		mutate   func(*Config)
		wantPath string // "" for valid
		wantMsg  string
	}{
		{"default none", func(*Config) {}, "", ""},
		{"none ignores a bad registry", func(c *Config) { c.Decode.Registry.URL = "not a url" }, "", ""},
		{"auto", auto, "", ""},
		{"auto with auth and a path", func(c *Config) {
			auto(c)
			c.Decode.Registry.URL = "https://apicurio.internal/apis/ccompat/v7"
			c.Decode.Registry.BasicAuth = BasicAuth{Username: "ferry", Password: "hunter2"}
		}, "", ""},
		{"unknown value", func(c *Config) { c.Decode.Value = "avro" }, "decode.value", `"avro" must be none or auto`},
		{"auto without url", func(c *Config) { auto(c); c.Decode.Registry.URL = "" }, "decode.registry.url", "is required when decode.value is auto"},
		{"auto bad url", func(c *Config) { auto(c); c.Decode.Registry.URL = "registry:8081" }, "decode.registry.url", "absolute http:// or https:// URL"},
		{"user without password", func(c *Config) { auto(c); c.Decode.Registry.BasicAuth.Username = "ferry" }, "decode.registry.basic_auth", "set together"},
		{"password without user", func(c *Config) { auto(c); c.Decode.Registry.BasicAuth.Password = "x" }, "decode.registry.basic_auth", "set together"},
		{"zero timeout", func(c *Config) { auto(c); c.Decode.Registry.Timeout = 0 }, "decode.registry.timeout", "0s must be positive"},
		{"timeout past the rebalance timeout", func(c *Config) { auto(c); c.Decode.Registry.Timeout = c.Kafka.RebalanceTimeout },
			"decode.registry.timeout", "1m0s must be less than kafka.rebalance_timeout (1m0s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantPath == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			fes := FieldErrors(err)
			if len(fes) != 1 || fes[0].Path != tc.wantPath || !strings.Contains(fes[0].Error(), tc.wantMsg) {
				t.Fatalf("Validate() = %v; want one error at %s containing %q", err, tc.wantPath, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("Validate() leaks the password: %v", err)
			}
		})
	}
}

// The decode keys load from the file, and from the environment like every
// other key; the password stays redacted in the printed config.
func TestLoadDecode(t *testing.T) {
	t.Parallel()
	file := validYAML + `
decode:
  value: auto
  registry:
    url: http://registry:8081
    basic_auth: {username: ferry}
`
	c, _, err := Load(Sources{File: []byte(file), Environ: []string{
		"FERRY_DECODE_REGISTRY_BASIC_AUTH_PASSWORD=hunter2", "FERRY_DECODE_REGISTRY_TIMEOUT=5s",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Decode.Value != DecodeAuto || c.Decode.Registry.URL != "http://registry:8081" ||
		c.Decode.Registry.BasicAuth.Password.Reveal() != "hunter2" || c.Decode.Registry.Timeout.String() != "5s" {
		t.Fatalf("Load() decode = %+v", c.Decode)
	}
	if strings.Contains(c.Decode.Registry.BasicAuth.Password.String(), "hunter2") {
		t.Fatal("the password prints")
	}
}
