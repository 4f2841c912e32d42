package config

import (
	"time"
)

// decode.value settings.
const (
	// DecodeNone passes every value to the mapping as it is.
	DecodeNone = "none"
	// DecodeAuto decodes values in the Confluent wire format (magic byte 0,
	// a 4-byte schema id) to JSON with the schema the registry holds for
	// that id, and passes other values (not starting with byte 0, or shorter
	// than the 5-byte header) unchanged.
	DecodeAuto = "auto"
)

// Decode turns schema-registry-encoded values into JSON before mapping, so
// json: partition keys, filters and envelopes see the decoded record.
type Decode struct {
	// Value is none (the default) or auto.
	Value    string   `koanf:"value" yaml:"value"`
	Registry Registry `koanf:"registry" yaml:"registry"`
}

// Registry is a Confluent-compatible schema registry (Confluent, Redpanda,
// Apicurio's /apis/ccompat/v7, Karapace).
type Registry struct {
	// URL is the registry's base URL, e.g. http://registry:8081.
	URL       string    `koanf:"url" yaml:"url"`
	BasicAuth BasicAuth `koanf:"basic_auth" yaml:"basic_auth"`
	// Timeout bounds fetching one schema, retries included: a registry that
	// stays unreachable (or keeps failing) that long stops ferry, which
	// resumes from its last commit when restarted. The poll loop waits
	// meanwhile, holding back rebalances, so it must stay below
	// kafka.rebalance_timeout.
	Timeout time.Duration `koanf:"timeout" yaml:"timeout"`
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Username string `koanf:"username" yaml:"username"`
	Password Secret `koanf:"password" yaml:"password"`
}

func defaultDecode() Decode {
	return Decode{Value: DecodeNone, Registry: Registry{Timeout: 30 * time.Second}}
}

func (c Config) validateDecode(p *problems) {
	d := c.Decode
	switch d.Value {
	case DecodeNone:
		return
	case DecodeAuto:
	default:
		p.add("decode.value", d.Value, "%q must be %s or %s", d.Value, DecodeNone, DecodeAuto)
		return
	}
	if d.Registry.URL == "" {
		p.add("decode.registry.url", nil, "is required when decode.value is %s", DecodeAuto)
	} else if msg := checkEndpoint(d.Registry.URL); msg != "" {
		p.add("decode.registry.url", d.Registry.URL, "%q %s", d.Registry.URL, msg)
	}
	if a := d.Registry.BasicAuth; (a.Username == "") != (a.Password == "") {
		p.add("decode.registry.basic_auth", nil, "username and password must be set together")
	}
	if d.Registry.Timeout <= 0 {
		p.add("decode.registry.timeout", d.Registry.Timeout, "%s must be positive", d.Registry.Timeout)
	} else if c.Kafka.RebalanceTimeout > 0 && d.Registry.Timeout >= c.Kafka.RebalanceTimeout {
		// The poll loop waits for the registry before it lets a rebalance
		// through; waiting longer would get the member evicted.
		p.add("decode.registry.timeout", d.Registry.Timeout, "%s must be less than kafka.rebalance_timeout (%s)",
			d.Registry.Timeout, c.Kafka.RebalanceTimeout)
	}
}
