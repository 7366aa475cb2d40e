// Package avro caches compiled Avro schemas by registry id and converts
// between JSON and Avro for the gateway and the sinks.
//
// It holds the repository's one model of an Avro schema: ParseSchema (or
// Codec.Root) gives a read-only view (Schema, Type, Field) of records
// with their fields, defaults and aliases, enums, fixed, arrays, maps,
// unions, primitives and logical types, named types shared so that
// walkers memoising on Type stay linear. The registry's compatibility
// checker, the search sink's mappings and the S3 sink's field checks walk
// it; Canonical is the registry's canonical text of a schema. Nothing
// outside this package parses schema text.
//
// Codecs.ByID fetches a schema once (ids are immutable) and returns a
// *Codec (NewCodec compiles a schema text directly). A Codec embeds the
// goavro codec (binary decode, NativeFromBinary) and adds:
//
//   - BinaryFromJSON(dst, text, Options): JSON text to Avro binary in one
//     pass directed by the schema (no intermediate maps; the gateway's hot
//     path). Options.Mode is PlainJSON (union branches inferred: the first
//     branch, in schema order, that accepts the value; the Avro-style
//     wrapped form is accepted too; bytes/fixed as base64) or AvroJSON (the
//     Avro specification's JSON encoding: unions wrapped {"type": value},
//     bytes as code points 0-255). Options.Root prefixes error paths.
//   - NativeFromJSON / BinaryFromJSONValue: the same conversion from an
//     already decoded value into goavro's native form and through goavro.
//     FuzzBinaryFromJSON checks that both paths accept the same inputs and
//     produce the same datum.
//   - AppendJSON / JSONFromBinary: the reverse, for sinks: record fields in
//     schema order; in PlainJSON mode unions unwrapped, timestamps RFC 3339
//     UTC strings, dates "2006-01-02", decimals strings, bytes base64.
//
// Logical types on input: timestamp-millis/micros (RFC 3339 or number),
// local-timestamp-millis/micros, date ("2006-01-02" or days), time-millis /
// time-micros ("15:04:05.000" or number), decimal (string or number checked
// against precision and scale; AvroJSON also takes the raw bytes string),
// uuid (checked). Unknown fields and missing fields without a default are
// errors. Every conversion error is a *FieldError whose Path names the
// field: "value.items[3].price: expected double, got string \"abc\"".
//
// DecodeJSON is a single-pass JSON parser equivalent to encoding/json with
// UseNumber (fuzzed against it); ScanObject and ScanArray walk a JSON
// envelope handing out members' raw bytes (as Valid, which later scans
// only delimit) without decoding them. They, Cursor and the scanner the encoder
// reads JSON with live in internal/jsonscan (nothing there is about
// Avro); this package re-exports what the gateway uses.
//
// Every pass over a record (ValidateBinary, NativeFromBinary, which shadows
// goavro's, JSONFromBinary, AppendJSON, BinaryFromJSON, EncodeAt,
// NativeFromJSON) is bounded by the codec's Limits: at most BaseSteps +
// StepsPerByte × the record's size steps (a value visited, or 16 bytes of
// output), and values nested at most MaxDepth deep, whatever the schema
// (shared named types make a 0-byte record a tree of 2^depth values).
// Past them the error is a *BudgetError, errors.Is(err, ErrBudget).
// NewCodec also refuses schemas whose field defaults expand into more than
// that for a record of the schema's size (goavro expands them at compile).
//
// Schemas with references to other subjects (Confluent's "references")
// are resolved through the registry and inlined into one self-contained
// schema (Inline). Every decoder and the JSON encoder work within a
// per-record budget proportional to the record's size (Limits, ErrBudget),
// and MeasureSchema/SchemaLimits bound a schema's expanded size and depth
// in time linear in its text.
package avro
