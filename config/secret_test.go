package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	cfg := validConfig()
	secrets := []string{"sasl-hunter2", "aws-secret-hunter2", "aws-token-hunter2"}

	render := map[string]func() string{
		"YAML": func() string {
			b, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		},
		"json": func() string {
			b, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		},
		"slog json": func() string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("config loaded",
				"config", cfg, "password", cfg.Kafka.SASL.Password, "kinesis", cfg.Kinesis)
			return buf.String()
		},
		"slog text": func() string {
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("config loaded",
				"config", cfg, "password", cfg.Kafka.SASL.Password)
			return buf.String()
		},
		"Redacted reveal": func() string {
			r := cfg.Redacted()
			return r.Kafka.SASL.Password.Reveal() + r.Kinesis.SecretAccessKey.Reveal() + r.Kinesis.SessionToken.Reveal()
		},
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		render["fmt "+verb] = func() string {
			return fmt.Sprintf(verb, cfg) + fmt.Sprintf(verb, cfg.Kafka.SASL.Password) + fmt.Sprintf(verb, &cfg)
		}
	}
	for name, fn := range render {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := fn()
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("output leaks %q:\n%s", s, out)
				}
			}
			if !strings.Contains(out, redacted) {
				t.Errorf("output has no %q:\n%s", redacted, out)
			}
		})
	}

	if got := cfg.Kafka.SASL.Password.Reveal(); got != "sasl-hunter2" {
		t.Errorf("Reveal() = %q, want the value", got)
	}
	if cfg.Redacted().Kafka.Brokers[0] = "changed"; cfg.Kafka.Brokers[0] == "changed" {
		t.Error("Redacted shares slices with the original")
	}
}

func TestSecretEmptyStaysEmpty(t *testing.T) {
	t.Parallel()
	var s Secret
	text, _ := s.MarshalText()
	y, _ := s.MarshalYAML()
	if s.String() != "" || string(text) != "" || y != "" || s.LogValue().String() != "" || fmt.Sprintf("%v", s) != "" {
		t.Errorf("empty Secret prints as non-empty")
	}
}

func TestSecretsNotInLoadErrors(t *testing.T) {
	t.Parallel()
	_, warnings, err := Load(Sources{
		File:    []byte(validYAML),
		Environ: []string{"FERRY_KAFKA_SASL_PASWORD=env-hunter2"},
		Sets:    []string{"kafka.sasl.pasword=set-hunter2", "set-hunter3"},
	})
	if err == nil {
		t.Fatal("want errors for the misspelt keys")
	}
	if len(warnings) != 1 {
		t.Errorf("warnings = %q, want one for FERRY_KAFKA_SASL_PASWORD", warnings)
	}
	for _, s := range []string{"env-hunter2", "set-hunter2", "set-hunter3"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %q: %v", s, err)
		}
		for _, w := range warnings {
			if strings.Contains(w, s) {
				t.Errorf("warning leaks %q: %s", s, w)
			}
		}
	}
}

func TestSecretDecodes(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, Sources{
		File:    []byte("kafka:\n  sasl:\n    password: file-pw\n"),
		Environ: []string{"FERRY_KINESIS_SECRET_ACCESS_KEY=env-sk"},
		Sets:    []string{"kinesis.session_token=set=tok"},
	})
	if cfg.Kafka.SASL.Password.Reveal() != "file-pw" || cfg.Kinesis.SecretAccessKey.Reveal() != "env-sk" ||
		cfg.Kinesis.SessionToken.Reveal() != "set=tok" {
		t.Errorf("secrets = %q %q %q", cfg.Kafka.SASL.Password.Reveal(), cfg.Kinesis.SecretAccessKey.Reveal(),
			cfg.Kinesis.SessionToken.Reveal())
	}
}
