package rules

import (
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Limits bound the memory rule state takes, whatever values producers send.
type Limits struct {
	// StateBytes bounds all rules' state together (series, remembered
	// terms, distinct values of cardinality windows, de-duplication keys).
	// What does not fit is not remembered, counted (Stats.Dropped) and
	// logged with the rule's name.
	StateBytes int64
	// TermBytes bounds each group-by value and term: a longer one is cut
	// and ends with "~" and 16 hex digits of its FNV-1a hash, so distinct
	// long values stay distinct (up to hash collisions) and the same value
	// always maps to the same cut form.
	TermBytes int
}

// Default limits (SEARCH_SINK_RULES_MAX_STATE_BYTES, SEARCH_SINK_RULES_MAX_TERM_BYTES).
const (
	DefaultStateBytes = 64 << 20
	DefaultTermBytes  = 256
)

// Kinds of dropped state (Stats.Dropped).
const (
	DropSeries = "series" // a new group-by key (also past max_keys)
	DropTerm   = "term"   // a new_term value not remembered
	DropValue  = "value"  // a cardinality value not counted
	DropDedup  = "dedup"  // a de-duplication key not remembered
)

// Approximate bytes of state entries beyond their strings: map entry,
// headers, and the fixed part of a series.
const (
	entryOverhead  = 64
	seriesOverhead = 256
	bucketBytes    = 64
)

// Option configures an Engine.
type Option func(*Engine)

// WithLimits sets the state bounds (zero fields keep the defaults).
func WithLimits(l Limits) Option {
	return func(e *Engine) {
		if l.StateBytes > 0 {
			e.lim.StateBytes = l.StateBytes
		}
		if l.TermBytes > 0 {
			e.lim.TermBytes = l.TermBytes
		}
	}
}

// WithLogger sets where dropped state is reported.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// budget is the byte budget all rules share.
type budget struct {
	max  int64
	used atomic.Int64
}

func (b *budget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) give(n int64) { b.used.Add(-n) }

// StateBytes returns the bytes of rule state now (approximate).
func (e *Engine) StateBytes() int64 { return e.budget.used.Load() }

func termCost(s string) int64 { return int64(len(s)) + entryOverhead }

func (r *rule) seriesCost(key string) int64 {
	return int64(len(key)) + seriesOverhead + int64(r.ring)*bucketBytes + int64(r.cfg.ReferenceWindows)*8
}

// dropped counts state that did not fit and logs it, at most once a minute
// per rule and kind (called with r.mu held).
func (r *rule) dropped(e *Engine, kind string) {
	e.stats.Dropped(r.cfg.Name, kind)
	now := time.Now()
	if last := r.lastDropLog[kind]; !last.IsZero() && now.Sub(last) < time.Minute {
		return
	}
	if r.lastDropLog == nil {
		r.lastDropLog = map[string]time.Time{}
	}
	r.lastDropLog[kind] = now
	if e.log != nil {
		e.log.Warn("rule state bound reached; not remembering new state", "rule", r.cfg.Name, "kind", kind,
			"state_bytes", e.budget.used.Load(), "max_state_bytes", e.budget.max, "max_keys", r.cfg.MaxKeys)
	}
}

// appendCapped appends s, cut to max bytes when longer (see Limits.TermBytes);
// it reports whether it cut.
func appendCapped(dst []byte, s string, max int) ([]byte, bool) {
	if len(s) <= max {
		return append(dst, s...), false
	}
	const suffix = 1 + 16 // "~" + hex
	cut := max - suffix
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	dst = append(dst, s[:cut]...)
	dst = append(dst, '~')
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	var hex [16]byte
	b := strconv.AppendUint(hex[:0], h, 16)
	for i := len(b); i < 16; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...), true
}

// capTerm returns s cut to the term bound.
func (e *Engine) capTerm(r *rule, s string) string {
	if len(s) <= e.lim.TermBytes {
		return s
	}
	b, _ := appendCapped(nil, s, e.lim.TermBytes)
	e.stats.Cut(r.cfg.Name)
	return string(b)
}
