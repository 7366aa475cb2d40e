package avro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting as encoding/json does, so hostile input cannot
// exhaust the stack.
const maxDepth = 10000

// DecodeJSON parses one JSON document into the values encoding/json would
// produce with UseNumber (map[string]any, []any, string, json.Number,
// bool, nil) in a single pass; it is several times faster than
// encoding/json for this shape, which matters on the gateway's hot path.
// Anything but whitespace after the value is an error.
func DecodeJSON(data []byte) (any, error) {
	p := jsonParser{b: data}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i < len(p.b) {
		return nil, p.errorf("unexpected data after the JSON value")
	}
	return v, nil
}

type jsonParser struct {
	b []byte
	i int
}

var errEOF = errors.New("unexpected end of JSON input")

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.b) {
		return nil, errEOF
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (p *jsonParser) literal(word string) error {
	if len(p.b)-p.i < len(word) {
		if string(p.b[p.i:]) == word[:len(p.b)-p.i] {
			return errEOF
		}
		return p.errorf("invalid literal")
	}
	if string(p.b[p.i:p.i+len(word)]) != word {
		return p.errorf("invalid literal")
	}
	p.i += len(word)
	return nil
}

func (p *jsonParser) object(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("exceeded max depth")
	}
	p.i++ // {
	m := make(map[string]any, 8)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) {
			return nil, errEOF
		}
		if p.b[p.i] != '"' {
			return nil, p.errorf("invalid character %q looking for beginning of object key string", p.b[p.i])
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.b) {
			return nil, errEOF
		}
		if p.b[p.i] != ':' {
			return nil, p.errorf("invalid character %q after object key", p.b[p.i])
		}
		p.i++
		p.ws()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.ws()
		if p.i >= len(p.b) {
			return nil, errEOF
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, nil
		default:
			return nil, p.errorf("invalid character %q after object key:value pair", p.b[p.i])
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("exceeded max depth")
	}
	p.i++ // [
	a := make([]any, 0, 4)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, nil
	}
	for {
		p.ws()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.ws()
		if p.i >= len(p.b) {
			return nil, errEOF
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return a, nil
		default:
			return nil, p.errorf("invalid character %q after array element", p.b[p.i])
		}
	}
}

func (p *jsonParser) number() (any, error) {
	span, err := p.numberSpan()
	if err != nil {
		return nil, err
	}
	return json.Number(span), nil
}

// numberSpan consumes a JSON number and returns its bytes.
func (p *jsonParser) numberSpan() ([]byte, error) {
	start := p.i
	b := p.b
	if b[p.i] == '-' {
		p.i++
	}
	if p.i >= len(b) {
		return nil, errEOF
	}
	switch {
	case b[p.i] == '0':
		p.i++
	case b[p.i] >= '1' && b[p.i] <= '9':
		for p.i < len(b) && b[p.i] >= '0' && b[p.i] <= '9' {
			p.i++
		}
	default:
		return nil, p.errorf("invalid character %q in numeric literal", b[p.i])
	}
	if p.i < len(b) && b[p.i] == '.' {
		p.i++
		if p.i >= len(b) {
			return nil, errEOF
		}
		if b[p.i] < '0' || b[p.i] > '9' {
			return nil, p.errorf("invalid character %q after decimal point in numeric literal", b[p.i])
		}
		for p.i < len(b) && b[p.i] >= '0' && b[p.i] <= '9' {
			p.i++
		}
	}
	if p.i < len(b) && (b[p.i] == 'e' || b[p.i] == 'E') {
		p.i++
		if p.i < len(b) && (b[p.i] == '+' || b[p.i] == '-') {
			p.i++
		}
		if p.i >= len(b) {
			return nil, errEOF
		}
		if b[p.i] < '0' || b[p.i] > '9' {
			return nil, p.errorf("invalid character %q in exponent of numeric literal", b[p.i])
		}
		for p.i < len(b) && b[p.i] >= '0' && b[p.i] <= '9' {
			p.i++
		}
	}
	return b[start:p.i], nil
}

// str reads a string; the fast path (no escapes, valid UTF-8) copies once.
func (p *jsonParser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	n, ascii := stringSpan(p.b[start:])
	p.i += n
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return string(fixUTF8(s)), nil
			}
			return string(s), nil
		case c == '\\':
			return p.slowStr(start)
		case c < 0x20:
			return "", p.errorf("invalid character %q in string literal", c)
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return "", errEOF
}

func fixUTF8(s []byte) []byte {
	out := make([]byte, 0, len(s)+8)
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		out = utf8.AppendRune(out, r) // RuneError for invalid bytes, as encoding/json
		s = s[size:]
	}
	return out
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(n), true
}

func (p *jsonParser) slowStr(start int) (string, error) {
	out := make([]byte, 0, p.i-start+16)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return string(fixUTF8(out)), nil
			}
			return string(out), nil
		case c < 0x20:
			return "", p.errorf("invalid character %q in string literal", c)
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			return "", errEOF
		}
		switch e := p.b[p.i]; e {
		case '"', '\\', '/':
			out = append(out, e)
			p.i++
		case 'b':
			out = append(out, '\b')
			p.i++
		case 'f':
			out = append(out, '\f')
			p.i++
		case 'n':
			out = append(out, '\n')
			p.i++
		case 'r':
			out = append(out, '\r')
			p.i++
		case 't':
			out = append(out, '\t')
			p.i++
		case 'u':
			r, ok := hex4(p.b[p.i+1:])
			if !ok {
				if len(p.b)-p.i-1 < 4 {
					return "", errEOF
				}
				return "", p.errorf("invalid character in \\u hexadecimal character escape")
			}
			p.i += 5
			if utf16.IsSurrogate(r) {
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					if x, ok := hex4(p.b[p.i+2:]); ok {
						if dec := utf16.DecodeRune(r, x); dec != utf8.RuneError {
							p.i += 6
							out = utf8.AppendRune(out, dec)
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.errorf("invalid character %q in string escape code", e)
		}
	}
	return "", errEOF
}

// skipValue consumes one JSON value, validating it, without building it.
func (p *jsonParser) skipValue(depth int) error {
	if p.i >= len(p.b) {
		return errEOF
	}
	switch c := p.b[p.i]; {
	case c == '{':
		if depth+1 > maxDepth {
			return p.errorf("exceeded max depth")
		}
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
			if err := p.skipString(); err != nil {
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
			if err := p.skipValue(depth + 1); err != nil {
				return err
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
	case c == '[':
		if depth+1 > maxDepth {
			return p.errorf("exceeded max depth")
		}
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return nil
		}
		for {
			p.ws()
			if err := p.skipValue(depth + 1); err != nil {
				return err
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
	case c == '"':
		return p.skipString()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.number()
		return err
	}
	return p.errorf("invalid character %q looking for beginning of value", p.b[p.i])
}

// skipString consumes a string, validating escapes.
func (p *jsonParser) skipString() error {
	p.i++ // opening quote
	for p.i < len(p.b) {
		n, _ := stringSpan(p.b[p.i:])
		p.i += n
		if p.i >= len(p.b) {
			break
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return nil
		case c < 0x20:
			return p.errorf("invalid character %q in string literal", c)
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return errEOF
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				if _, ok := hex4(p.b[p.i+1:]); !ok {
					if len(p.b)-p.i-1 < 4 {
						return errEOF
					}
					return p.errorf("invalid character in \\u hexadecimal character escape")
				}
				p.i += 5
			default:
				return p.errorf("invalid character %q in string escape code", p.b[p.i])
			}
		default:
			p.i++
		}
	}
	return errEOF
}

// Valid is JSON text that ScanObject or ScanArray already validated:
// scanning it again only delimits members, which is several times cheaper.
type Valid []byte

// ScanObject calls fn for each member of the JSON object data, in order,
// with the decoded key and the member's raw value bytes. It validates all
// of data (unless data is a Valid handed out by an earlier scan), which
// must hold exactly one object (whitespace around allowed), without
// decoding the values: request envelopes use it to hand record values to
// BinaryFromJSON untouched.
func ScanObject[T []byte | Valid](data T, fn func(key string, value Valid) error) error {
	c := scanCursor(data)
	err := c.Object(func(k string) error {
		v, err := c.Value()
		if err != nil {
			return err
		}
		return fn(k, v)
	})
	if err != nil {
		return err
	}
	return c.End()
}

// ScanArray calls fn for each element of the JSON array data with its raw
// bytes, validating all of data unless it is a Valid.
func ScanArray[T []byte | Valid](data T, fn func(i int, value Valid) error) error {
	c := scanCursor(data)
	err := c.Array(func(i int) error {
		v, err := c.Value()
		if err != nil {
			return err
		}
		return fn(i, v)
	})
	if err != nil {
		return err
	}
	return c.End()
}

// scanCursor walks data, only delimiting values when data is a Valid.
func scanCursor[T []byte | Valid](data T) *Cursor {
	_, trusted := any(data).(Valid)
	c := NewCursor([]byte(data))
	c.trusted = trusted
	return c
}

// delimit moves past one value of already validated JSON.
func (p *jsonParser) delimit() {
	depth := 0
	for p.i < len(p.b) {
		switch c := p.b[p.i]; c {
		case '"':
			p.i++
			for {
				q := bytes.IndexByte(p.b[p.i:], '"')
				if q < 0 {
					p.i = len(p.b)
					return
				}
				p.i += q
				// The quote is escaped when an odd run of backslashes precedes it.
				bs := 0
				for j := p.i - 1; j >= 0 && p.b[j] == '\\'; j-- {
					bs++
				}
				if bs%2 == 0 {
					break
				}
				p.i++
			}
			p.i++ // closing quote
			if depth == 0 {
				return
			}
		case '{', '[':
			depth++
			p.i++
		case '}', ']':
			if depth == 0 {
				return
			}
			depth--
			p.i++
			if depth == 0 {
				return
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return
			}
			p.i++
		default:
			p.i++
		}
	}
}

func (p *jsonParser) end() error {
	p.ws()
	if p.i < len(p.b) {
		return p.errorf("unexpected data after the JSON value")
	}
	return nil
}

// key reads an object key; the usual keys of request envelopes are
// returned without allocating.
func (p *jsonParser) key() (string, error) {
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			switch string(p.b[start:j]) {
			case "key":
				p.i = j + 1
				return "key", nil
			case "value":
				p.i = j + 1
				return "value", nil
			case "headers":
				p.i = j + 1
				return "headers", nil
			case "timestamp":
				p.i = j + 1
				return "timestamp", nil
			case "partition":
				p.i = j + 1
				return "partition", nil
			case "records":
				p.i = j + 1
				return "records", nil
			}
			break
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	return p.str()
}
