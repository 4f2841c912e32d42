package config

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Redacted returns a deep copy of c in which every non-empty Secret is
// replaced by "[redacted]", so even Reveal on the copy cannot leak. Use it
// for anything that prints or ships the config.
func (c Config) Redacted() Config {
	r := c
	r.Kafka.Brokers = slices.Clone(c.Kafka.Brokers)
	r.Kafka.Topics = slices.Clone(c.Kafka.Topics)
	r.Kafka.SASL.Password = redact(c.Kafka.SASL.Password)
	r.Kinesis.SecretAccessKey = redact(c.Kinesis.SecretAccessKey)
	r.Kinesis.SessionToken = redact(c.Kinesis.SessionToken)
	r.Kafka.SASL.AWS.SecretAccessKey = redact(c.Kafka.SASL.AWS.SecretAccessKey)
	r.Kafka.SASL.AWS.SessionToken = redact(c.Kafka.SASL.AWS.SessionToken)
	if c.Routes != nil {
		r.Routes = make([]Route, len(c.Routes))
		for i, rt := range c.Routes {
			rt.Topics = slices.Clone(rt.Topics)
			r.Routes[i] = rt
		}
	}
	return r
}

func redact(s Secret) Secret { return Secret(s.String()) }

// YAML renders the effective configuration with the file's key names, in
// struct order, secrets as "[redacted]", durations as "45s" and sizes as
// "5MiB". Load reads the output back to the same Config, secrets aside.
func (c Config) YAML() ([]byte, error) {
	node, err := yamlNode(reflect.ValueOf(c.Redacted()))
	if err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return buf.Bytes(), nil
}

// yamlNode builds the document by hand because yaml.v3 alone would write a
// time.Duration as nanoseconds; walking the koanf tags also keeps struct order.
func yamlNode(v reflect.Value) (*yaml.Node, error) {
	switch x := v.Interface().(type) {
	case time.Duration:
		return strNode(x.String()), nil
	case Secret:
		return strNode(x.String()), nil
	case ByteSize:
		s := x.String()
		if strings.Trim(s, "0123456789") == "" { // no unit: write a YAML integer
			n := &yaml.Node{}
			return n, n.Encode(int64(x))
		}
		return strNode(s), nil
	}
	switch v.Kind() {
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for i := range v.NumField() {
			child, err := yamlNode(v.Field(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, strNode(v.Type().Field(i).Tag.Get("koanf")), child)
		}
		return n, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if v.Type().Elem().Kind() != reflect.Struct || v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			child, err := yamlNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, child)
		}
		return n, nil
	}
	n := &yaml.Node{}
	return n, n.Encode(v.Interface())
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}
