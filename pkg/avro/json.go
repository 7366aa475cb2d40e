package avro

import "github.com/sluicehq/sluice/pkg/avro/internal/jsonscan"

// The JSON scanner is not about Avro: it lives in internal/jsonscan, and
// these are the parts of it the gateway uses, next to the encoder that
// reads JSON with it (BinaryFromJSON, EncodeAt).

// DecodeJSON parses one JSON document into the values encoding/json would
// produce with UseNumber (map[string]any, []any, string, json.Number,
// bool, nil) in a single pass; it is several times faster than
// encoding/json for this shape, which matters on the gateway's hot path.
// Anything but whitespace after the value is an error.
func DecodeJSON(data []byte) (any, error) { return jsonscan.Decode(data) }

// Valid is JSON text that ScanObject or ScanArray already validated:
// scanning it again only delimits members, which is several times cheaper.
type Valid = jsonscan.Valid

// Cursor walks one JSON document in a single validating pass (see
// jsonscan.Cursor); EncodeAt encodes the value it stands on.
type Cursor = jsonscan.Cursor

// NewCursor starts a walk over data.
func NewCursor(data []byte) *Cursor { return jsonscan.NewCursor(data) }

// ScanObject calls fn for each member of the JSON object data, in order,
// with the decoded key and the member's raw value bytes. It validates all
// of data (unless data is a Valid handed out by an earlier scan), which
// must hold exactly one object (whitespace around allowed), without
// decoding the values: request envelopes use it to hand record values to
// BinaryFromJSON untouched.
func ScanObject[T []byte | Valid](data T, fn func(key string, value Valid) error) error {
	return jsonscan.ScanObject(data, fn)
}

// ScanArray calls fn for each element of the JSON array data with its raw
// bytes, validating all of data unless it is a Valid.
func ScanArray[T []byte | Valid](data T, fn func(i int, value Valid) error) error {
	return jsonscan.ScanArray(data, fn)
}
