// Package avroschema validates Avro schemas (with goavro) and builds the
// key that decides schema identity in the registry from pkg/avro's
// canonical form (avro.Canonical).
package avroschema

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/pkg/avro"
)

// Validate parses schema with goavro, with the referenced schemas (in
// dependency order) defining named types it may use. The error carries the
// parser's reason.
func Validate(schema string, refs []string) error {
	if strings.TrimSpace(schema) == "" {
		return errors.New("empty schema")
	}
	spec := schema
	if len(refs) > 0 {
		// goavro has no API for externally defined names: parse one record
		// whose fields carry the referenced schemas first, then the schema
		// itself, so the names are defined in order. The wrapper has no
		// namespace, the same as a top-level schema.
		var b strings.Builder
		b.WriteString(`{"type":"record","name":"sluice_reference_wrapper_","fields":[`)
		for i, r := range refs {
			fmt.Fprintf(&b, `{"name":"r%d","type":%s},`, i, r)
		}
		fmt.Fprintf(&b, `{"name":"main","type":%s}]}`, schema)
		spec = b.String()
	}
	// goavro expands every field default when it compiles: exponential
	// for nested shared types, and lookups (read-only callers) reach here
	// without the schema limits.
	if err := avro.CheckDefaults(spec); err != nil {
		return err
	}
	return newCodec(spec)
}

// newCodec runs goavro's parser, turning its panics (it has some on
// hostile recursive defaults) into errors: a schema must never take the
// registry down.
func newCodec(spec string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("schema cannot be parsed (parser failure: %v)", p)
		}
	}()
	if _, cerr := goavro.NewCodec(spec); cerr != nil {
		return trimGoavro(cerr)
	}
	return nil
}

func trimGoavro(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "cannot create Codec: ")
	return errors.New(msg)
}

// Reference is a named type defined under another subject.
type Reference struct {
	Name    string
	Subject string
	Version int
}

// IdentityKey is the string two registrations compare equal on: the
// canonical schema plus its references, sorted by name.
func IdentityKey(schemaType, canonical string, refs []Reference) string {
	if schemaType == "" {
		schemaType = "AVRO"
	}
	if len(refs) == 0 {
		return schemaType + "|" + canonical
	}
	r := append([]Reference(nil), refs...)
	sort.Slice(r, func(i, j int) bool { return r[i].Name < r[j].Name })
	var b strings.Builder
	b.WriteString(schemaType)
	b.WriteByte('|')
	b.WriteString(canonical)
	for _, x := range r {
		b.WriteString("|" + x.Name + "=" + x.Subject + "/" + strconv.Itoa(x.Version))
	}
	return b.String()
}
