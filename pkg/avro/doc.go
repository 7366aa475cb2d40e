// Package avro caches compiled Avro schemas by registry id and converts
// between JSON and Avro for the gateway and the sinks.
//
// Codecs.ByID fetches a schema once (ids are immutable) and returns a
// *Codec: a goavro codec for binary, plus
//
//   - NativeFromJSON / BinaryFromJSON: JSON in (plain JSON with union
//     inference, or strict Avro JSON with wrapped unions), validated against
//     the schema, with *FieldError naming the path of the bad field
//     ("value.items[3].price: expected double, got string \"abc\"").
//     Logical types: timestamp-millis/micros from RFC 3339 strings or
//     numbers, date from "2006-01-02" or days, time-millis/micros, decimal
//     from strings or numbers (checked against precision and scale), uuid.
//   - AppendJSON / JSONFromBinary: the reverse, for sinks: timestamps as RFC
//     3339 UTC strings, decimals as strings, bytes as base64 (PlainJSON) or
//     the Avro JSON encoding (AvroJSON), record fields in schema order.
//
// Schemas with references to other subjects are not supported.
package avro
