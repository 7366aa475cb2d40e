// Package jsonscan reads JSON text in one pass without reflection: a
// decoder equivalent to encoding/json with UseNumber, object and array
// scans that hand out members' raw bytes, a Cursor for envelopes, and the
// Scanner pkg/avro's JSON-to-Avro encoder reads its input with. Nothing in
// it is about Avro.
package jsonscan
