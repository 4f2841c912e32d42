package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/ferrylabs/ferry/mapping"
)

// protoSchemaFile is the path the registry's schema text compiles under,
// one no import names.
const protoSchemaFile = "ferry.registry/schema.proto"

// protoSchema is a compiled protobuf schema: the file whose messages the
// values' message indexes point into.
type protoSchema struct {
	file protoreflect.FileDescriptor
}

// protoJSON writes field names as the .proto file spells them, so that a
// json:/order_id pointer is the field's own name; unset fields are left
// out, as protojson does by default.
var protoJSON = protojson.MarshalOptions{UseProtoNames: true}

// wellKnownProto reports an import of a well-known type, which protocompile
// carries itself (registries often list them as references too).
func wellKnownProto(path string) bool { return strings.HasPrefix(path, "google/protobuf/") }

// compileProto compiles the registry's schema text, with imports the text
// of each file it imports (from its registry references) by import path.
func compileProto(s sr.Schema, imports map[string]string) (*protoSchema, error) {
	srcs := make(map[string]string, len(imports)+1)
	maps.Copy(srcs, imports)
	srcs[protoSchemaFile] = s.Schema
	for _, ref := range s.References {
		if _, ok := srcs[ref.Name]; !ok && !wellKnownProto(ref.Name) {
			return nil, fmt.Errorf("reference %q (subject %s version %d) was not fetched", ref.Name, ref.Subject, ref.Version)
		}
	}
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(srcs),
		}),
	}
	// Compiling parses text already in memory; the context only bounds it.
	files, err := c.Compile(context.Background(), protoSchemaFile)
	if err != nil {
		return nil, err
	}
	return &protoSchema{file: files[0]}, nil
}

// decodeProto decodes a protobuf payload: the message-index path that
// names its message type in the schema file, then the message itself, as
// protojson with the .proto field names (64-bit integers as strings, bytes
// as base64, enums by name, well-known types in their JSON forms).
func (d *decoder) decodeProto(id uint32, ps *protoSchema, payload []byte) ([]byte, error) {
	idx, rest, err := mapping.SplitMessageIndexes(d.idx[:0], payload)
	d.idx = idx
	if err != nil {
		return nil, badValue(reasonCorrupt, "protobuf payload of schema id %d: %w", id, err)
	}
	md, err := ps.message(idx)
	if err != nil {
		return nil, badValue(reasonCorrupt, "protobuf payload of schema id %d: %w", id, err)
	}
	msg := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(rest, msg); err != nil {
		return nil, badValue(reasonCorrupt, "protobuf payload does not match message %s of schema id %d: %w", md.FullName(), id, err)
	}
	out, err := protoJSON.Marshal(msg)
	if err != nil {
		return nil, badValue(reasonCorrupt, "protobuf payload of schema id %d has no JSON form: %w", id, err)
	}
	// protojson varies its whitespace on purpose; the same record must
	// give the same bytes each time it is delivered.
	d.buf.Reset()
	if err := json.Compact(&d.buf, out); err != nil {
		return nil, badValue(reasonCorrupt, "protobuf payload of schema id %d has no JSON form: %w", id, err)
	}
	return d.buf.Bytes(), nil
}

// message follows a message-index path: the first index picks among the
// file's top-level messages, each next one among the previous message's
// nested messages.
func (ps *protoSchema) message(idx []int) (protoreflect.MessageDescriptor, error) {
	msgs := ps.file.Messages()
	var md protoreflect.MessageDescriptor
	for depth, i := range idx {
		if i >= msgs.Len() {
			return nil, fmt.Errorf("message index %v: no message %d at depth %d (%d there)", idx, i, depth, msgs.Len())
		}
		md = msgs.Get(i)
		msgs = md.Messages()
	}
	if md == nil {
		return nil, errors.New("empty message index")
	}
	return md, nil
}
