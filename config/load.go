package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// Sources are the inputs Load merges. The caller does the I/O: it reads the
// file and passes os.Environ() and the repeated --set values.
type Sources struct {
	// File is the YAML config file's content; empty means no file.
	File []byte
	// Environ is the process environment as "NAME=value" entries; only names
	// starting with FERRY_ are read.
	Environ []string
	// Sets are "key.path=value" entries from --set, applied in order.
	Sets []string
}

// ErrUnknownKey is wrapped by the errors for a file key or --set key that
// names no configuration key. (An unknown environment variable is a warning.)
var ErrUnknownKey = errors.New("unknown key")

// Reserved FERRY_ variables that are not configuration keys.
const (
	envConfigFile = EnvPrefix + "CONFIG" // the file path, read by cmd/ferry
	envTestPrefix = EnvPrefix + "TEST_"  // test harness settings
)

// Load merges Default() < File < Environ < Sets, decodes the result, and
// validates it.
//
// It reports every problem at once: unknown keys in the file or --set,
// malformed --set entries, values that do not parse, and every Validate
// failure come back joined in one error (FieldErrors extracts the Validate
// part). A value that does not parse is skipped, so the lower layer's value
// stays and no second, misleading error follows from it. Only a file that is
// not YAML stops Load early. The returned Config is the best effort even when
// err != nil; callers must treat any error as fatal.
//
// A FERRY_ variable that names no key is not an error but a warning, naming
// the closest key's variable when one is a likely typo: the environment of a
// pod or container holds variables nobody wrote for ferry. Variables shaped
// like Kubernetes service links or Docker links (FERRY_SERVICE_HOST,
// FERRY_PORT_9090_TCP, ...), FERRY_CONFIG and FERRY_TEST_* are skipped
// without one. Callers should show the warnings and carry on.
//
// Load normalises two values: kafka.sasl.mechanism to upper case and an empty
// routes[].partition_key to "key".
func Load(src Sources) (cfg Config, warnings []string, err error) {
	k := koanf.New(".")
	if err := k.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		return Default(), nil, fmt.Errorf("load defaults: %w", err)
	}

	var errs []error
	if len(bytes.TrimSpace(src.File)) > 0 {
		fk := koanf.New(".")
		if err := fk.Load(rawbytes.Provider(src.File), yaml.Parser()); err != nil {
			return Default(), nil, fmt.Errorf("config file: %w", err)
		}
		m := cleanStruct(reflect.TypeFor[Config](), "", fk.Raw(), &errs)
		if err := k.Load(confmap.Provider(m, ""), nil); err != nil {
			return Default(), nil, fmt.Errorf("config file: %w", err)
		}
	}

	envResult, envProvider := envLayer(src.Environ)
	if err := k.Load(envProvider, nil); err != nil {
		return Default(), nil, fmt.Errorf("environment: %w", err)
	}
	errs = append(errs, envResult.errs...)
	warnings = envResult.warnings

	sets, setErrs := setLayer(src.Sets)
	errs = append(errs, setErrs...)
	if err := k.Load(confmap.Provider(sets, "."), nil); err != nil {
		return Default(), nil, fmt.Errorf("set: %w", err)
	}

	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: decoderConfig()}); err != nil {
		// Every value was already decoded on its own above, so this is a bug.
		return cfg, warnings, errors.Join(append(errs, fmt.Errorf("decode config: %w", err))...)
	}
	cfg.normalize()
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg, warnings, errors.Join(errs...)
}

// normalize applies the documented spellings Load accepts loosely.
func (c *Config) normalize() {
	c.Kafka.SASL.Mechanism = strings.ToUpper(c.Kafka.SASL.Mechanism)
	for i := range c.Routes {
		if c.Routes[i].PartitionKey == "" {
			c.Routes[i].PartitionKey = PartitionKeyKey
		}
	}
}

// cleanStruct checks a parsed YAML mapping against struct type t. It reports
// keys that t does not have, drops nulls (a null leaves the lower layer's
// value), and decodes each leaf on its own so a bad value names its key and
// is dropped. The result holds typed values ready to merge.
func cleanStruct(t reflect.Type, prefix string, raw map[string]any, errs *[]error) map[string]any {
	out := make(map[string]any, len(raw))
	// Known keys in struct order, then unknown ones sorted, so errors come
	// out in the order of the reference documentation.
	names := make([]string, 0, len(raw))
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("koanf"); hasKey(raw, name) {
			names = append(names, name)
		}
	}
	var unknown []string
	for name := range raw {
		if _, ok := fieldByTag(t, name); !ok {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	names = append(names, unknown...)
	for _, name := range names {
		v, path := raw[name], joinPath(prefix, name)
		f, ok := fieldByTag(t, name)
		if !ok {
			*errs = append(*errs, fmt.Errorf("config file: %w %q", ErrUnknownKey, path))
			continue
		}
		if v == nil {
			continue
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			m, ok := v.(map[string]any)
			if !ok {
				*errs = append(*errs, fmt.Errorf("config file: %s: want a mapping of keys, got %s", path, describe(v)))
				continue
			}
			out[name] = cleanStruct(f.Type, path, m, errs)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			list, ok := v.([]any)
			if !ok {
				*errs = append(*errs, fmt.Errorf("config file: %s: want a list, got %s", path, describe(v)))
				continue
			}
			items := make([]any, len(list))
			for i, item := range list {
				ipath := fmt.Sprintf("%s[%d]", path, i)
				m, ok := item.(map[string]any)
				if !ok {
					*errs = append(*errs, fmt.Errorf("config file: %s: want a mapping of keys, got %s", ipath, describe(item)))
					m = nil // keep the slot so later indexes in errors stay right
				}
				items[i] = cleanStruct(f.Type.Elem(), ipath, m, errs)
			}
			out[name] = items
		default:
			cv, err := decodeValue(f.Type, v)
			if err != nil {
				*errs = append(*errs, fmt.Errorf("config file: %s: %w", path, err))
				continue
			}
			out[name] = cv
		}
	}
	return out
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

// envProblems collects what envLayer finds while koanf reads it.
type envProblems struct {
	errs     []error
	warnings []string
}

// envLayer builds the koanf env provider over environ. Problems are collected
// while koanf reads it, so the result is filled only after k.Load returns.
func envLayer(environ []string) (*envProblems, *env.Env) {
	res := &envProblems{}
	p := env.Provider(".", env.Opt{
		Prefix: EnvPrefix,
		// Always set: a nil EnvironFunc would make the provider read os.Environ.
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			if name == envConfigFile || strings.HasPrefix(name, envTestPrefix) {
				return "", nil
			}
			k, ok := keyByEnv[name]
			switch {
			case !ok && linkVariable(name):
				return "", nil
			case !ok:
				res.warnings = append(res.warnings, unknownEnvWarning(name))
				return "", nil
			case k.fileOnly:
				res.errs = append(res.errs, fmt.Errorf("environment variable %s: %s can only be set in the config file", name, k.path))
				return "", nil
			}
			v, err := decodeValue(k.typ, value)
			if err != nil {
				res.errs = append(res.errs, fmt.Errorf("environment variable %s (%s): %w", name, k.path, err))
				return "", nil
			}
			return k.path, v
		},
	})
	return res, p
}

// setLayer parses --set entries into a flat key map; a later entry for the
// same key wins. Errors never echo an entry's value: it may be a secret.
func setLayer(sets []string) (map[string]any, []error) {
	out := make(map[string]any, len(sets))
	var errs []error
	for i, s := range sets {
		key, value, ok := strings.Cut(s, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			errs = append(errs, fmt.Errorf("set entry %d: want key.path=value", i+1))
			continue
		}
		k, ok := keyByPath[key]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("set: %w %q", ErrUnknownKey, key))
			continue
		case k.fileOnly:
			errs = append(errs, fmt.Errorf("set: %s can only be set in the config file", key))
			continue
		}
		v, err := decodeValue(k.typ, value)
		if err != nil {
			errs = append(errs, fmt.Errorf("set %s: %w", key, err))
			continue
		}
		out[key] = v
	}
	return out, errs
}

// decodeValue decodes one raw value (a YAML scalar or list, or an env/--set
// string) into a value of type t with the same hooks as the final decode.
func decodeValue(t reflect.Type, raw any) (any, error) {
	ptr := reflect.New(t)
	dc := decoderConfig()
	dc.Result = ptr.Interface()
	d, err := mapstructure.NewDecoder(dc)
	if err != nil {
		return nil, err
	}
	if err := d.Decode(raw); err != nil {
		// Unwrap mapstructure's "'' ..." prefix: the caller names the key.
		var de *mapstructure.DecodeError
		if errors.As(err, &de) && de.Name() == "" && de.Unwrap() != nil {
			err = de.Unwrap()
		}
		// mapstructure's own conversion errors do not name the value; the
		// hooks' errors (durations, sizes) already do.
		var pe *mapstructure.ParseError
		var ue *mapstructure.UnconvertibleTypeError
		if errors.As(err, &pe) || errors.As(err, &ue) {
			if t == secretType {
				return nil, fmt.Errorf("invalid %s value", typeName(t))
			}
			return nil, fmt.Errorf("invalid %s value %s", typeName(t), describeValue(raw))
		}
		return nil, err
	}
	return ptr.Elem().Interface(), nil
}

// decoderConfig is the mapstructure setup for every decode: exact key names,
// unknown keys rejected, and strings weakly typed so "500" from env is an int.
func decoderConfig() *mapstructure.DecoderConfig {
	return &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			stringToListHook,
			numberToDurationHook,
			stringToDurationHook,
			numberToIntHook,
			mapstructure.TextUnmarshallerHookFunc(),
		),
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		TagName:          "koanf",
		MatchName:        func(mapKey, fieldName string) bool { return mapKey == fieldName },
	}
}

// stringToListHook splits "a, b,,c" into [a b c] for []string targets.
func stringToListHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeFor[[]string]() {
		return data, nil
	}
	parts := strings.Split(reflect.ValueOf(data).String(), ",")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// numberToDurationHook rejects a bare number for a duration: YAML "linger: 50"
// would otherwise mean 50ns. Zero needs no unit.
func numberToDurationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if reflect.ValueOf(data).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("invalid duration %v: a number needs a unit, like \"%vs\" or \"%vms\"", data, data, data)
	}
	return data, nil
}

// stringToDurationHook is mapstructure.StringToTimeDurationHookFunc with an
// error that says what a duration looks like.
func stringToDurationHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != durationType {
		return data, nil
	}
	s := reflect.ValueOf(data).String()
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("invalid duration %q: want a number with a unit (ns, us, ms, s, m, h), like 500ms or 1m30s", s)
	}
	return d, nil
}

// numberToIntHook rejects fractions for integer targets (sizes, counts);
// mapstructure would silently truncate 1.5 to 1.
func numberToIntHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.Float32 && from.Kind() != reflect.Float64 {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f := reflect.ValueOf(data).Float()
		if f != math.Trunc(f) || f > math.MaxInt64 || f < math.MinInt64 {
			return nil, fmt.Errorf("invalid %s value %v: not a whole number", typeName(to), data)
		}
		return int64(f), nil
	}
	return data, nil
}

// describe names a YAML value's shape for an error.
func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%s %s", reflect.TypeOf(v).Kind(), describeValue(v))
}

func describeValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%v", v)
}
