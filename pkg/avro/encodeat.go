package avro

import "github.com/sluicehq/sluice/pkg/avro/internal/jsonscan"

// EncodeAt appends the Avro encoding of the JSON value at cur to dst and
// moves cur past the value, reading the value's text once: a request's
// records are encoded while its envelope is parsed. It returns the
// value's text (for dead letters and error reports) and either the
// encoding or verr, the value's *FieldError, exactly as BinaryFromJSON on
// that text would (anything the single pass cannot encode takes that
// path). serr reports malformed JSON in the value: the document itself is
// then malformed and cur is left unusable.
//
// The value's length is only known once it is read, so the single pass is
// bounded by the codec's Limits for the rest of the document, and a value
// that took more steps than its own length allows takes the
// BinaryFromJSON path, which refuses it exactly as it would on its own.
func (c *Codec) EncodeAt(dst []byte, cur *Cursor, o Options) (out []byte, raw Valid, verr, serr error) {
	start, n := cur.P.I, len(dst)
	e := encoder{Scanner: jsonscan.Scanner{B: cur.P.B, I: start}, mode: o.Mode, p: pathBuf{root: o.Root},
		bud: c.limits.budget(len(cur.P.B) - start), base: cur.Depth}
	out, err := e.enc(c.root, dst, cur.Depth)
	if err == nil && e.bud.Used() <= c.limits.Steps(e.I-start) {
		cur.P.I = e.I
		return out, Valid(cur.P.B[start:e.I]), nil, nil
	}
	cur.P.I = start
	if raw, serr = cur.Value(); serr != nil {
		return dst[:n], nil, nil, serr
	}
	out, verr = c.BinaryFromJSON(dst[:n], raw, o)
	return out, raw, verr, nil
}
