package avro

import "errors"

// Cursor walks one JSON document in a single validating pass, for
// envelopes whose members are handled as they are met: a request with a
// thousand records is read once, instead of once per nesting level as with
// ScanObject on each level's raw bytes.
//
// Object and Array call back for each member or element; the callback must
// consume that value with exactly one call of Value, Object or Array.
type Cursor struct {
	p       jsonParser
	depth   int
	trusted bool // the text was validated before: Value only delimits
}

var errNotConsumed = errors.New("avro.Cursor: callback did not consume the value")

// NewCursor starts a walk over data.
func NewCursor(data []byte) *Cursor {
	c := &Cursor{p: jsonParser{b: data}}
	c.p.ws()
	return c
}

// Offset is the cursor's byte position, for error messages.
func (c *Cursor) Offset() int { return c.p.i }

// Value consumes one value, validating it, and returns its bytes.
func (c *Cursor) Value() (Valid, error) {
	start := c.p.i
	if c.trusted {
		c.p.delimit()
		return Valid(c.p.b[start:c.p.i]), nil
	}
	if err := c.p.skipValue(c.depth); err != nil {
		return nil, err
	}
	return Valid(c.p.b[start:c.p.i]), nil
}

// Object expects an object and calls fn with each member's decoded key,
// in order, the cursor standing on the member's value.
func (c *Cursor) Object(fn func(key string) error) error {
	p := &c.p
	if p.i >= len(p.b) {
		return errEOF
	}
	if p.b[p.i] != '{' {
		return p.errorf("want a JSON object, got %q", p.b[p.i])
	}
	if c.depth+1 > maxDepth {
		return p.errorf("exceeded max depth")
	}
	c.depth++
	defer func() { c.depth-- }()
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) {
			return errEOF
		}
		if p.b[p.i] != '"' {
			return p.errorf("invalid character %q looking for beginning of object key string", p.b[p.i])
		}
		k, err := p.key()
		if err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return errEOF
		}
		if p.b[p.i] != ':' {
			return p.errorf("invalid character %q after object key", p.b[p.i])
		}
		p.i++
		p.ws()
		if p.i >= len(p.b) {
			return errEOF
		}
		at := p.i
		if err := fn(k); err != nil {
			return err
		}
		if p.i == at {
			return errNotConsumed
		}
		p.ws()
		if p.i >= len(p.b) {
			return errEOF
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.errorf("invalid character %q after object key:value pair", p.b[p.i])
		}
	}
}

// Array expects an array and calls fn for each element, the cursor
// standing on it.
func (c *Cursor) Array(fn func(i int) error) error {
	p := &c.p
	if p.i >= len(p.b) {
		return errEOF
	}
	if p.b[p.i] != '[' {
		return p.errorf("want a JSON array, got %q", p.b[p.i])
	}
	if c.depth+1 > maxDepth {
		return p.errorf("exceeded max depth")
	}
	c.depth++
	defer func() { c.depth-- }()
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for n := 0; ; n++ {
		p.ws()
		if p.i >= len(p.b) {
			return errEOF
		}
		at := p.i
		if err := fn(n); err != nil {
			return err
		}
		if p.i == at {
			return errNotConsumed
		}
		p.ws()
		if p.i >= len(p.b) {
			return errEOF
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.errorf("invalid character %q after array element", p.b[p.i])
		}
	}
}

// End reports an error unless only whitespace follows.
func (c *Cursor) End() error { return c.p.end() }

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
	start, n := cur.p.i, len(dst)
	e := encoder{jsonParser: jsonParser{b: cur.p.b, i: start}, mode: o.Mode, p: pathBuf{root: o.Root},
		bud: c.limits.budget(len(cur.p.b) - start), base: cur.depth}
	out, err := e.enc(c.root, dst, cur.depth)
	if err == nil && e.bud.Used() <= c.limits.Steps(e.i-start) {
		cur.p.i = e.i
		return out, Valid(cur.p.b[start:e.i]), nil, nil
	}
	cur.p.i = start
	if raw, serr = cur.Value(); serr != nil {
		return dst[:n], nil, nil, serr
	}
	out, verr = c.BinaryFromJSON(dst[:n], raw, o)
	return out, raw, verr, nil
}
