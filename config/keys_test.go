package config

import (
	"strings"
	"testing"
)

func TestKeysEnvNamesUnique(t *testing.T) {
	t.Parallel()
	paths, envs := map[string]bool{}, map[string]string{}
	for _, k := range Keys() {
		if paths[k.Path] {
			t.Errorf("key %s listed twice", k.Path)
		}
		paths[k.Path] = true
		if k.Env == "" {
			if k.Path != "routes" {
				t.Errorf("key %s has no environment variable", k.Path)
			}
			continue
		}
		if other, dup := envs[k.Env]; dup {
			t.Errorf("keys %s and %s both map to %s", other, k.Path, k.Env)
		}
		envs[k.Env] = k.Path
		if want := "FERRY_" + strings.ToUpper(strings.ReplaceAll(k.Path, ".", "_")); k.Env != want {
			t.Errorf("key %s: Env = %s, want %s", k.Path, k.Env, want)
		}
	}
	if len(paths) != len(keyTable) {
		t.Errorf("Keys() has %d keys, the table %d", len(paths), len(keyTable))
	}
}

func TestKeysOrderAndDefaults(t *testing.T) {
	t.Parallel()
	keys := Keys()
	if keys[0].Path != "kafka.brokers" || keys[len(keys)-1].Path != "observability.log_format" {
		t.Errorf("Keys() not in struct order: first %s, last %s", keys[0].Path, keys[len(keys)-1].Path)
	}
	want := map[string]KeyDoc{
		"kafka.session_timeout":      {Path: "kafka.session_timeout", Env: "FERRY_KAFKA_SESSION_TIMEOUT", Type: "duration", Default: "45s"},
		"delivery.batch.max_bytes":   {Path: "delivery.batch.max_bytes", Env: "FERRY_DELIVERY_BATCH_MAX_BYTES", Type: "size", Default: "5MiB"},
		"delivery.batch.max_records": {Path: "delivery.batch.max_records", Env: "FERRY_DELIVERY_BATCH_MAX_RECORDS", Type: "int", Default: "500"},
		"kafka.sasl.password":        {Path: "kafka.sasl.password", Env: "FERRY_KAFKA_SASL_PASSWORD", Type: "secret", Default: ""},
		"kafka.brokers":              {Path: "kafka.brokers", Env: "FERRY_KAFKA_BROKERS", Type: "list", Default: ""},
		"routes":                     {Path: "routes", Type: "routes"},
	}
	for _, k := range keys {
		if w, ok := want[k.Path]; ok && k != w {
			t.Errorf("Keys() %s = %+v, want %+v", k.Path, k, w)
		}
	}
}

// Setting every key to its documented default, by env or by --set, changes
// nothing: each Default string parses, and each Env and Path is accepted.
func TestKeysDefaultsLoad(t *testing.T) {
	t.Parallel()
	base, warnings, err := Load(Sources{})
	if len(sourceErrors(err)) > 0 || len(warnings) > 0 {
		t.Fatal(warnings, err)
	}
	var env, sets []string
	for _, k := range Keys() {
		if k.Env != "" {
			env = append(env, k.Env+"="+k.Default)
			sets = append(sets, k.Path+"="+k.Default)
		}
	}
	for name, src := range map[string]Sources{"env": {Environ: env}, "set": {Sets: sets}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := mustLoad(t, src)
			a, _ := got.YAML()
			b, _ := base.YAML()
			if string(a) != string(b) {
				t.Errorf("setting the defaults changed the config:\n%s\nwant\n%s", a, b)
			}
		})
	}
}
