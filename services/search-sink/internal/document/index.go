package document

import (
	"fmt"
	"strings"
	"time"
)

// IndexMode selects plain daily indices or data streams.
type IndexMode string

// Index modes.
const (
	ModeIndex      IndexMode = "index"      // <topic>-{yyyy.MM.dd}, op_type index, overwrite by _id
	ModeDataStream IndexMode = "datastream" // logs-<topic>-default, op_type create
)

// Namer maps a topic and a record time to the target index or data stream.
// Date patterns are resolved from the record timestamp, not the clock, so a
// replayed record always lands in the same index (server-side date math
// would move it to "today's" index and break idempotency).
type Namer struct {
	mode   IndexMode
	prefix string // before <topic>
	suffix []part // after <topic>
	dsType string
	dsNS   string
}

type part struct {
	lit    string
	layout string // Go time layout when non-empty
}

// NewNamer compiles a pattern such as "<topic>-{yyyy.MM.dd}" (index mode)
// or uses "<type>-<topic>-<namespace>" (data stream mode).
func NewNamer(mode IndexMode, pattern, dsType, dsNamespace string) (*Namer, error) {
	n := &Namer{mode: mode, dsType: dsType, dsNS: dsNamespace}
	switch mode {
	case ModeDataStream:
		if dsType == "" || dsNamespace == "" || strings.ContainsAny(dsType+dsNamespace, "-*,\\/?\"<>| #:") || strings.ToLower(dsType+dsNamespace) != dsType+dsNamespace {
			return nil, fmt.Errorf("data stream type %q and namespace %q must be non-empty lowercase names without '-'", dsType, dsNamespace)
		}
		return n, nil
	case ModeIndex:
	default:
		return nil, fmt.Errorf("unknown index mode %q (want index or datastream)", mode)
	}
	i := strings.Index(pattern, "<topic>")
	if i < 0 {
		return nil, fmt.Errorf("index pattern %q must contain <topic>", pattern)
	}
	n.prefix = pattern[:i]
	if strings.ContainsAny(n.prefix, "{}") {
		return nil, fmt.Errorf("index pattern %q: date parts must come after <topic>", pattern)
	}
	rest := pattern[i+len("<topic>"):]
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.ContainsRune(rest, '}') {
				return nil, fmt.Errorf("index pattern %q: unbalanced }", pattern)
			}
			n.suffix = append(n.suffix, part{lit: rest})
			break
		}
		if open > 0 {
			n.suffix = append(n.suffix, part{lit: rest[:open]})
		}
		closeIdx := strings.IndexByte(rest, '}')
		if closeIdx < open {
			return nil, fmt.Errorf("index pattern %q: unbalanced {", pattern)
		}
		layout, err := javaDateLayout(rest[open+1 : closeIdx])
		if err != nil {
			return nil, fmt.Errorf("index pattern %q: %w", pattern, err)
		}
		n.suffix = append(n.suffix, part{layout: layout})
		rest = rest[closeIdx+1:]
	}
	if strings.ToLower(n.prefix) != n.prefix {
		return nil, fmt.Errorf("index pattern %q must be lowercase", pattern)
	}
	return n, nil
}

// javaDateLayout translates the Joda/Java date tokens Elasticsearch users
// know (yyyy, yy, MM, dd, HH) into a Go layout.
func javaDateLayout(f string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(f); {
		switch {
		case strings.HasPrefix(f[i:], "yyyy"):
			b.WriteString("2006")
			i += 4
		case strings.HasPrefix(f[i:], "yy"):
			b.WriteString("06")
			i += 2
		case strings.HasPrefix(f[i:], "MM"):
			b.WriteString("01")
			i += 2
		case strings.HasPrefix(f[i:], "dd"):
			b.WriteString("02")
			i += 2
		case strings.HasPrefix(f[i:], "HH"):
			b.WriteString("15")
			i += 2
		case f[i] == '.' || f[i] == '-' || f[i] == '_':
			b.WriteByte(f[i])
			i++
		default:
			return "", fmt.Errorf("unsupported date token at %q (use yyyy, yy, MM, dd, HH and . - _)", f[i:])
		}
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("empty date part {}")
	}
	return b.String(), nil
}

// Mode returns the index mode.
func (n *Namer) Mode() IndexMode { return n.mode }

// Name returns the index or data stream for a record of topic at time t.
func (n *Namer) Name(topic string, t time.Time) string {
	st := SanitizeTopic(topic)
	if n.mode == ModeDataStream {
		return n.dsType + "-" + st + "-" + n.dsNS
	}
	var b strings.Builder
	b.Grow(len(n.prefix) + len(st) + 16)
	b.WriteString(n.prefix)
	b.WriteString(st)
	t = t.UTC()
	for _, p := range n.suffix {
		if p.layout != "" {
			b.WriteString(t.Format(p.layout))
		} else {
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// Pattern returns the index pattern a template for topic must match.
func (n *Namer) Pattern(topic string) string {
	return n.pattern(SanitizeTopic(topic))
}

func (n *Namer) pattern(st string) string {
	if n.mode == ModeDataStream {
		return n.dsType + "-" + st + "-*"
	}
	var b strings.Builder
	b.WriteString(n.prefix)
	b.WriteString(st)
	for _, p := range n.suffix {
		if p.layout != "" {
			b.WriteByte('*')
		} else {
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// SanitizeTopic lowercases a topic and replaces characters Elasticsearch
// forbids in index names.
func SanitizeTopic(topic string) string {
	b := []byte(strings.ToLower(topic))
	for i, c := range b {
		switch c {
		case '\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':':
			b[i] = '_'
		}
	}
	for len(b) > 0 && (b[0] == '_' || b[0] == '-' || b[0] == '+') {
		b = b[1:]
	}
	return string(b)
}
