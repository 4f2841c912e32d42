package connector

import (
	"encoding/json"
	"fmt"
	"strings"
)

// maxAvroDepth bounds the nesting inlineAvroRefs follows (it recurses).
const maxAvroDepth = 1000

// avroPrimitives are the type names that never refer to a named type.
var avroPrimitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true, "float": true,
	"double": true, "bytes": true, "string": true,
}

// inlineAvroRefs returns schema with the definition of each named type it
// uses from another schema (a registry reference: refs maps the type's full
// name to that schema's text) put in place of the type's first use, which
// is how one Avro schema defines a type another names. goavro compiles one
// self-contained schema, so references are resolved here.
func inlineAvroRefs(schema string, refs map[string]string) (string, error) {
	in := &avroInliner{refs: refs, defined: map[string]bool{}}
	root, err := parseJSON(schema)
	if err != nil {
		return "", err
	}
	out, err := in.walk(root, "", 0)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(out)
	return string(b), err
}

type avroInliner struct {
	refs    map[string]string
	defined map[string]bool
}

func parseJSON(s string) (any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber() // defaults keep their digits
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	return v, nil
}

// fullName qualifies name with namespace ns unless it has dots already.
func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

// walk returns node with referenced types inlined; ns is the enclosing
// namespace.
func (in *avroInliner) walk(node any, ns string, depth int) (any, error) {
	if depth > maxAvroDepth {
		return nil, fmt.Errorf("schema nests deeper than %d", maxAvroDepth)
	}
	switch n := node.(type) {
	case string:
		if avroPrimitives[n] {
			return n, nil
		}
		full := fullName(n, ns)
		text, ok := in.refs[full]
		if !ok || in.defined[full] {
			return n, nil
		}
		def, err := parseJSON(text)
		if err != nil {
			return nil, fmt.Errorf("reference %s: %w", full, err)
		}
		// Inlined once, whatever the definition declares: a reference
		// whose schema names itself must not unfold again.
		in.defined[full] = true
		// The referenced schema is a top-level one: it has no enclosing
		// namespace.
		return in.walk(def, "", depth+1)
	case []any: // a union
		for i, b := range n {
			w, err := in.walk(b, ns, depth+1)
			if err != nil {
				return nil, err
			}
			n[i] = w
		}
		return n, nil
	case map[string]any:
		typ, _ := n["type"].(string)
		switch typ {
		case "record", "error", "enum", "fixed":
			name, _ := n["name"].(string)
			if space, ok := n["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = space
			}
			full := fullName(name, ns)
			in.defined[full] = true
			if i := strings.LastIndexByte(full, '.'); i >= 0 {
				ns = full[:i]
			} else {
				ns = ""
			}
			if typ == "enum" || typ == "fixed" {
				return n, nil
			}
			fields, _ := n["fields"].([]any)
			for _, f := range fields {
				fm, ok := f.(map[string]any)
				if !ok {
					continue
				}
				w, err := in.walk(fm["type"], ns, depth+1)
				if err != nil {
					return nil, err
				}
				fm["type"] = w
			}
			return n, nil
		case "array":
			w, err := in.walk(n["items"], ns, depth+1)
			n["items"] = w
			return n, err
		case "map":
			w, err := in.walk(n["values"], ns, depth+1)
			n["values"] = w
			return n, err
		}
		if t, ok := n["type"]; ok && !avroPrimitives[typ] {
			// {"type": {...}}, {"type": [...]} or {"type": "com.acme.Address"}
			w, err := in.walk(t, ns, depth+1)
			n["type"] = w
			return n, err
		}
		return n, nil
	}
	return node, nil
}
