package config

import (
	"fmt"
	"log/slog"
)

// redacted is what every printing path shows instead of a non-empty Secret.
const redacted = "[redacted]"

// Secret is a string that must not reach logs, errors or printed configs.
// Every formatting path (fmt verbs including %#v and %d, encoding/json and
// other TextMarshaler users, YAML and slog) shows "[redacted]" for a non-empty
// value and "" for an empty one, so "was it set?" stays visible. Call Reveal
// where the real value is needed, and nowhere else.
//
// Secret decodes from a plain string (its kind is string), so koanf and
// mapstructure need no hook for it.
type Secret string

// Reveal returns the secret value itself.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString makes %#v redacted too.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format covers every fmt verb. Without it a verb that does not consult
// String (%d, %x on a string kind after a bad verb) would print the raw
// value, and so would any struct that embeds a Secret.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	fmt.Fprint(f, s.String())
}

// MarshalText returns the redacted form; encoding/json uses it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML returns the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// LogValue returns the redacted form for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
