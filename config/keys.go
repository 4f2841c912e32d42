package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "FERRY_"

// KeyDoc describes one settable key, for the README reference and --help.
type KeyDoc struct {
	// Path is the dotted key path used in files and --set, e.g.
	// "delivery.batch.max_records".
	Path string
	// Env is the environment variable, e.g. "FERRY_DELIVERY_BATCH_MAX_RECORDS",
	// or "" for keys only the file can set (routes).
	Env string
	// Type is one of string, secret, bool, int, duration, size, list, routes.
	Type string
	// Default is Default()'s value in the form a user would write it.
	Default string
}

// keyInfo is one leaf of Config, found by walking its koanf tags.
type keyInfo struct {
	path  string
	env   string // always derived; fileOnly says whether it may be used
	typ   reflect.Type
	index []int // field index path from Config, for reflect.Value.FieldByIndex
	// fileOnly keys (slices of structs such as routes) have no env or --set form.
	fileOnly bool
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	secretType   = reflect.TypeFor[Secret]()
)

// keyTable lists Config's leaves in struct order. It is built once; a tag
// mistake or an env-name collision panics here, so any test catches it.
var keyTable, keyByPath, keyByEnv = buildKeyTable()

func buildKeyTable() ([]keyInfo, map[string]keyInfo, map[string]keyInfo) {
	var keys []keyInfo
	walkKeys(reflect.TypeFor[Config](), "", nil, &keys)
	byPath := make(map[string]keyInfo, len(keys))
	byEnv := make(map[string]keyInfo, len(keys))
	for _, k := range keys {
		if prev, dup := byPath[k.path]; dup {
			panic(fmt.Sprintf("config: key %q defined twice (%v and %v)", k.path, prev.index, k.index))
		}
		byPath[k.path] = k
		if prev, dup := byEnv[k.env]; dup {
			panic(fmt.Sprintf("config: keys %q and %q both map to %s", prev.path, k.path, k.env))
		}
		byEnv[k.env] = k
	}
	return keys, byPath, byEnv
}

func walkKeys(t reflect.Type, prefix string, index []int, out *[]keyInfo) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("koanf")
		if name == "" || name == "-" {
			panic(fmt.Sprintf("config: field %s.%s has no koanf tag", t.Name(), f.Name))
		}
		path := joinPath(prefix, name)
		idx := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct {
			walkKeys(f.Type, path, idx, out)
			continue
		}
		*out = append(*out, keyInfo{
			path:     path,
			env:      envName(path),
			typ:      f.Type,
			index:    idx,
			fileOnly: f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct,
		})
	}
}

// envName maps a key path to its variable: FERRY_ + the path in upper case
// with dots (and the underscores already there) as underscores.
func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// fieldByTag finds the field of struct type t whose koanf tag is name.
// Matching is exact: keys are case-sensitive, as users write them.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("koanf") == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// Keys lists every key Load accepts, in struct order, with Default()'s value.
func Keys() []KeyDoc {
	def := reflect.ValueOf(Default())
	docs := make([]KeyDoc, 0, len(keyTable))
	for _, k := range keyTable {
		d := KeyDoc{Path: k.path, Type: typeName(k.typ), Default: formatValue(def.FieldByIndex(k.index))}
		if !k.fileOnly {
			d.Env = k.env
		}
		docs = append(docs, d)
	}
	return docs
}

func typeName(t reflect.Type) string {
	switch t {
	case durationType:
		return "duration"
	case byteSizeType:
		return "size"
	case secretType:
		return "secret"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64:
		return "int"
	case reflect.String:
		return "string"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return strings.ToLower(t.Elem().Name()) + "s"
		}
		return "list"
	}
	return t.String()
}

// formatValue writes a leaf the way a user would type it in env or --set.
func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case ByteSize:
		return x.String()
	case Secret:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	}
	if v.Kind() == reflect.Slice {
		return ""
	}
	return fmt.Sprint(v.Interface())
}
