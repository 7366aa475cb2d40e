package jsonscan

import "errors"

// Cursor walks one JSON document in a single validating pass, for
// envelopes whose members are handled as they are met: a request with a
// thousand records is read once, instead of once per nesting level as with
// ScanObject on each level's raw bytes.
//
// Object and Array call back for each member or element; the callback must
// consume that value with exactly one call of Value, Object or Array.
type Cursor struct {
	P       Scanner
	Depth   int  // JSON nesting of the value the cursor stands on
	trusted bool // the text was validated before: Value only delimits
}

var errNotConsumed = errors.New("avro.Cursor: callback did not consume the value")

// NewCursor starts a walk over data.
func NewCursor(data []byte) *Cursor {
	c := &Cursor{P: Scanner{B: data}}
	c.P.WS()
	return c
}

// Offset is the cursor's byte position, for error messages.
func (c *Cursor) Offset() int { return c.P.I }

// Value consumes one value, validating it, and returns its bytes.
func (c *Cursor) Value() (Valid, error) {
	start := c.P.I
	if c.trusted {
		c.P.Delimit()
		return Valid(c.P.B[start:c.P.I]), nil
	}
	if err := c.P.SkipValue(c.Depth); err != nil {
		return nil, err
	}
	return Valid(c.P.B[start:c.P.I]), nil
}

// Object expects an object and calls fn with each member's decoded key,
// in order, the cursor standing on the member's value.
func (c *Cursor) Object(fn func(key string) error) error {
	p := &c.P
	if p.I >= len(p.B) {
		return ErrEOF
	}
	if p.B[p.I] != '{' {
		return p.Errorf("want a JSON object, got %q", p.B[p.I])
	}
	if c.Depth+1 > MaxDepth {
		return p.Errorf("exceeded max depth")
	}
	c.Depth++
	defer func() { c.Depth-- }()
	p.I++
	p.WS()
	if p.I < len(p.B) && p.B[p.I] == '}' {
		p.I++
		return nil
	}
	for {
		p.WS()
		if p.I >= len(p.B) {
			return ErrEOF
		}
		if p.B[p.I] != '"' {
			return p.Errorf("invalid character %q looking for beginning of object key string", p.B[p.I])
		}
		k, err := p.key()
		if err != nil {
			return err
		}
		p.WS()
		if p.I >= len(p.B) {
			return ErrEOF
		}
		if p.B[p.I] != ':' {
			return p.Errorf("invalid character %q after object key", p.B[p.I])
		}
		p.I++
		p.WS()
		if p.I >= len(p.B) {
			return ErrEOF
		}
		at := p.I
		if err := fn(k); err != nil {
			return err
		}
		if p.I == at {
			return errNotConsumed
		}
		p.WS()
		if p.I >= len(p.B) {
			return ErrEOF
		}
		switch p.B[p.I] {
		case ',':
			p.I++
		case '}':
			p.I++
			return nil
		default:
			return p.Errorf("invalid character %q after object key:value pair", p.B[p.I])
		}
	}
}

// Array expects an array and calls fn for each element, the cursor
// standing on it.
func (c *Cursor) Array(fn func(i int) error) error {
	p := &c.P
	if p.I >= len(p.B) {
		return ErrEOF
	}
	if p.B[p.I] != '[' {
		return p.Errorf("want a JSON array, got %q", p.B[p.I])
	}
	if c.Depth+1 > MaxDepth {
		return p.Errorf("exceeded max depth")
	}
	c.Depth++
	defer func() { c.Depth-- }()
	p.I++
	p.WS()
	if p.I < len(p.B) && p.B[p.I] == ']' {
		p.I++
		return nil
	}
	for n := 0; ; n++ {
		p.WS()
		if p.I >= len(p.B) {
			return ErrEOF
		}
		at := p.I
		if err := fn(n); err != nil {
			return err
		}
		if p.I == at {
			return errNotConsumed
		}
		p.WS()
		if p.I >= len(p.B) {
			return ErrEOF
		}
		switch p.B[p.I] {
		case ',':
			p.I++
		case ']':
			p.I++
			return nil
		default:
			return p.Errorf("invalid character %q after array element", p.B[p.I])
		}
	}
}

// End reports an error unless only whitespace follows.
func (c *Cursor) End() error { return c.P.End() }
