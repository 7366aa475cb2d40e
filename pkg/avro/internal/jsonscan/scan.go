package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds nesting as encoding/json does, so hostile input cannot
// exhaust the stack.
const MaxDepth = 10000

// Decode parses one JSON document into the values encoding/json would
// produce with UseNumber (map[string]any, []any, string, json.Number,
// bool, nil) in a single pass; it is several times faster than
// encoding/json for this shape, which matters on the gateway's hot path.
// Anything but whitespace after the value is an error.
func Decode(data []byte) (any, error) {
	p := Scanner{B: data}
	p.WS()
	v, err := p.Value(0)
	if err != nil {
		return nil, err
	}
	p.WS()
	if p.I < len(p.B) {
		return nil, p.Errorf("unexpected data after the JSON value")
	}
	return v, nil
}

// Scanner reads JSON text: B is the text, I the position. Its methods
// move I past what they read.
type Scanner struct {
	B []byte
	I int
}

// ErrEOF is the error for JSON text that ends inside a value.
var ErrEOF = errors.New("unexpected end of JSON input")

// Errorf is an error at the scanner's position.
func (p *Scanner) Errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.I, fmt.Sprintf(format, args...))
}

// WS skips whitespace.
func (p *Scanner) WS() {
	for p.I < len(p.B) {
		switch p.B[p.I] {
		case ' ', '\t', '\n', '\r':
			p.I++
		default:
			return
		}
	}
}

// Value decodes one value nested depth deep.
func (p *Scanner) Value(depth int) (any, error) {
	if p.I >= len(p.B) {
		return nil, ErrEOF
	}
	switch c := p.B[p.I]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.Str()
	case c == 't':
		return true, p.Literal("true")
	case c == 'f':
		return false, p.Literal("false")
	case c == 'n':
		return nil, p.Literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.Errorf("invalid character %q looking for beginning of value", c)
	}
}

// Literal consumes word (true, false, null).
func (p *Scanner) Literal(word string) error {
	if len(p.B)-p.I < len(word) {
		if string(p.B[p.I:]) == word[:len(p.B)-p.I] {
			return ErrEOF
		}
		return p.Errorf("invalid literal")
	}
	if string(p.B[p.I:p.I+len(word)]) != word {
		return p.Errorf("invalid literal")
	}
	p.I += len(word)
	return nil
}

func (p *Scanner) object(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, p.Errorf("exceeded max depth")
	}
	p.I++ // {
	m := make(map[string]any, 8)
	p.WS()
	if p.I < len(p.B) && p.B[p.I] == '}' {
		p.I++
		return m, nil
	}
	for {
		p.WS()
		if p.I >= len(p.B) {
			return nil, ErrEOF
		}
		if p.B[p.I] != '"' {
			return nil, p.Errorf("invalid character %q looking for beginning of object key string", p.B[p.I])
		}
		k, err := p.Str()
		if err != nil {
			return nil, err
		}
		p.WS()
		if p.I >= len(p.B) {
			return nil, ErrEOF
		}
		if p.B[p.I] != ':' {
			return nil, p.Errorf("invalid character %q after object key", p.B[p.I])
		}
		p.I++
		p.WS()
		v, err := p.Value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.WS()
		if p.I >= len(p.B) {
			return nil, ErrEOF
		}
		switch p.B[p.I] {
		case ',':
			p.I++
		case '}':
			p.I++
			return m, nil
		default:
			return nil, p.Errorf("invalid character %q after object key:value pair", p.B[p.I])
		}
	}
}

func (p *Scanner) array(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, p.Errorf("exceeded max depth")
	}
	p.I++ // [
	a := make([]any, 0, 4)
	p.WS()
	if p.I < len(p.B) && p.B[p.I] == ']' {
		p.I++
		return a, nil
	}
	for {
		p.WS()
		v, err := p.Value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.WS()
		if p.I >= len(p.B) {
			return nil, ErrEOF
		}
		switch p.B[p.I] {
		case ',':
			p.I++
		case ']':
			p.I++
			return a, nil
		default:
			return nil, p.Errorf("invalid character %q after array element", p.B[p.I])
		}
	}
}

func (p *Scanner) number() (any, error) {
	span, err := p.NumberSpan()
	if err != nil {
		return nil, err
	}
	return json.Number(span), nil
}

// NumberSpan consumes a JSON number and returns its bytes.
func (p *Scanner) NumberSpan() ([]byte, error) {
	start := p.I
	b := p.B
	if b[p.I] == '-' {
		p.I++
	}
	if p.I >= len(b) {
		return nil, ErrEOF
	}
	switch {
	case b[p.I] == '0':
		p.I++
	case b[p.I] >= '1' && b[p.I] <= '9':
		for p.I < len(b) && b[p.I] >= '0' && b[p.I] <= '9' {
			p.I++
		}
	default:
		return nil, p.Errorf("invalid character %q in numeric literal", b[p.I])
	}
	if p.I < len(b) && b[p.I] == '.' {
		p.I++
		if p.I >= len(b) {
			return nil, ErrEOF
		}
		if b[p.I] < '0' || b[p.I] > '9' {
			return nil, p.Errorf("invalid character %q after decimal point in numeric literal", b[p.I])
		}
		for p.I < len(b) && b[p.I] >= '0' && b[p.I] <= '9' {
			p.I++
		}
	}
	if p.I < len(b) && (b[p.I] == 'e' || b[p.I] == 'E') {
		p.I++
		if p.I < len(b) && (b[p.I] == '+' || b[p.I] == '-') {
			p.I++
		}
		if p.I >= len(b) {
			return nil, ErrEOF
		}
		if b[p.I] < '0' || b[p.I] > '9' {
			return nil, p.Errorf("invalid character %q in exponent of numeric literal", b[p.I])
		}
		for p.I < len(b) && b[p.I] >= '0' && b[p.I] <= '9' {
			p.I++
		}
	}
	return b[start:p.I], nil
}

// Str reads a string; the fast path (no escapes, valid UTF-8) copies once.
func (p *Scanner) Str() (string, error) {
	p.I++ // opening quote
	start := p.I
	n, ascii := StringSpan(p.B[start:])
	p.I += n
	for p.I < len(p.B) {
		c := p.B[p.I]
		switch {
		case c == '"':
			s := p.B[start:p.I]
			p.I++
			if !ascii && !utf8.Valid(s) {
				return string(FixUTF8(s)), nil
			}
			return string(s), nil
		case c == '\\':
			return p.slowStr(start)
		case c < 0x20:
			return "", p.Errorf("invalid character %q in string literal", c)
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.I++
	}
	return "", ErrEOF
}

// FixUTF8 replaces invalid UTF-8 in s with U+FFFD, as encoding/json does.
func FixUTF8(s []byte) []byte {
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

func (p *Scanner) slowStr(start int) (string, error) {
	out := make([]byte, 0, p.I-start+16)
	out = append(out, p.B[start:p.I]...)
	for p.I < len(p.B) {
		c := p.B[p.I]
		switch {
		case c == '"':
			p.I++
			if !utf8.Valid(out) {
				return string(FixUTF8(out)), nil
			}
			return string(out), nil
		case c < 0x20:
			return "", p.Errorf("invalid character %q in string literal", c)
		case c != '\\':
			out = append(out, c)
			p.I++
			continue
		}
		p.I++
		if p.I >= len(p.B) {
			return "", ErrEOF
		}
		switch e := p.B[p.I]; e {
		case '"', '\\', '/':
			out = append(out, e)
			p.I++
		case 'b':
			out = append(out, '\b')
			p.I++
		case 'f':
			out = append(out, '\f')
			p.I++
		case 'n':
			out = append(out, '\n')
			p.I++
		case 'r':
			out = append(out, '\r')
			p.I++
		case 't':
			out = append(out, '\t')
			p.I++
		case 'u':
			r, ok := hex4(p.B[p.I+1:])
			if !ok {
				if len(p.B)-p.I-1 < 4 {
					return "", ErrEOF
				}
				return "", p.Errorf("invalid character in \\u hexadecimal character escape")
			}
			p.I += 5
			if utf16.IsSurrogate(r) {
				if p.I+1 < len(p.B) && p.B[p.I] == '\\' && p.B[p.I+1] == 'u' {
					if x, ok := hex4(p.B[p.I+2:]); ok {
						if dec := utf16.DecodeRune(r, x); dec != utf8.RuneError {
							p.I += 6
							out = utf8.AppendRune(out, dec)
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.Errorf("invalid character %q in string escape code", e)
		}
	}
	return "", ErrEOF
}

// SkipValue consumes one JSON value, validating it, without building it.
func (p *Scanner) SkipValue(depth int) error {
	if p.I >= len(p.B) {
		return ErrEOF
	}
	switch c := p.B[p.I]; {
	case c == '{':
		if depth+1 > MaxDepth {
			return p.Errorf("exceeded max depth")
		}
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
			if err := p.skipString(); err != nil {
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
			if err := p.SkipValue(depth + 1); err != nil {
				return err
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
	case c == '[':
		if depth+1 > MaxDepth {
			return p.Errorf("exceeded max depth")
		}
		p.I++
		p.WS()
		if p.I < len(p.B) && p.B[p.I] == ']' {
			p.I++
			return nil
		}
		for {
			p.WS()
			if err := p.SkipValue(depth + 1); err != nil {
				return err
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
	case c == '"':
		return p.skipString()
	case c == 't':
		return p.Literal("true")
	case c == 'f':
		return p.Literal("false")
	case c == 'n':
		return p.Literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := p.number()
		return err
	}
	return p.Errorf("invalid character %q looking for beginning of value", p.B[p.I])
}

// skipString consumes a string, validating escapes.
func (p *Scanner) skipString() error {
	p.I++ // opening quote
	for p.I < len(p.B) {
		n, _ := StringSpan(p.B[p.I:])
		p.I += n
		if p.I >= len(p.B) {
			break
		}
		c := p.B[p.I]
		switch {
		case c == '"':
			p.I++
			return nil
		case c < 0x20:
			return p.Errorf("invalid character %q in string literal", c)
		case c == '\\':
			p.I++
			if p.I >= len(p.B) {
				return ErrEOF
			}
			switch p.B[p.I] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.I++
			case 'u':
				if _, ok := hex4(p.B[p.I+1:]); !ok {
					if len(p.B)-p.I-1 < 4 {
						return ErrEOF
					}
					return p.Errorf("invalid character in \\u hexadecimal character escape")
				}
				p.I += 5
			default:
				return p.Errorf("invalid character %q in string escape code", p.B[p.I])
			}
		default:
			p.I++
		}
	}
	return ErrEOF
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

// Delimit moves past one value of already validated JSON.
func (p *Scanner) Delimit() {
	depth := 0
	for p.I < len(p.B) {
		switch c := p.B[p.I]; c {
		case '"':
			p.I++
			for {
				q := bytes.IndexByte(p.B[p.I:], '"')
				if q < 0 {
					p.I = len(p.B)
					return
				}
				p.I += q
				// The quote is escaped when an odd run of backslashes precedes it.
				bs := 0
				for j := p.I - 1; j >= 0 && p.B[j] == '\\'; j-- {
					bs++
				}
				if bs%2 == 0 {
					break
				}
				p.I++
			}
			p.I++ // closing quote
			if depth == 0 {
				return
			}
		case '{', '[':
			depth++
			p.I++
		case '}', ']':
			if depth == 0 {
				return
			}
			depth--
			p.I++
			if depth == 0 {
				return
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return
			}
			p.I++
		default:
			p.I++
		}
	}
}

// End reports an error unless only whitespace is left.
func (p *Scanner) End() error {
	p.WS()
	if p.I < len(p.B) {
		return p.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// key reads an object key; the usual keys of request envelopes are
// returned without allocating.
func (p *Scanner) key() (string, error) {
	start := p.I + 1
	for j := start; j < len(p.B); j++ {
		c := p.B[j]
		if c == '"' {
			switch string(p.B[start:j]) {
			case "key":
				p.I = j + 1
				return "key", nil
			case "value":
				p.I = j + 1
				return "value", nil
			case "headers":
				p.I = j + 1
				return "headers", nil
			case "timestamp":
				p.I = j + 1
				return "timestamp", nil
			case "partition":
				p.I = j + 1
				return "partition", nil
			case "records":
				p.I = j + 1
				return "records", nil
			}
			break
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	return p.Str()
}
