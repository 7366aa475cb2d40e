package service

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// OtherLabel is the label value LabelLimit reports for values past its bound.
const OtherLabel = "_other"

// LabelLimit bounds the distinct values of a metric label that producers
// influence (topic names a wildcard API key may create, index names derived
// from record timestamps), so a hostile or unlucky producer cannot grow a
// process's series without end. The first Max distinct values are reported
// as they are; later ones as OtherLabel, each time counted in Overflow.
type LabelLimit struct {
	max      int
	overflow prometheus.Counter

	mu   sync.RWMutex
	seen map[string]struct{}
}

// NewLabelLimit admits max distinct values (max <= 0: unbounded); overflow
// (may be nil) counts values reported as OtherLabel.
func NewLabelLimit(max int, overflow prometheus.Counter) *LabelLimit {
	return &LabelLimit{max: max, overflow: overflow, seen: map[string]struct{}{}}
}

// Value returns v if it is (or can become) one of the admitted values, and
// OtherLabel otherwise.
func (l *LabelLimit) Value(v string) string {
	if l == nil || l.max <= 0 {
		return v
	}
	l.mu.RLock()
	_, ok := l.seen[v]
	full := len(l.seen) >= l.max
	l.mu.RUnlock()
	if ok {
		return v
	}
	if !full {
		l.mu.Lock()
		if _, ok := l.seen[v]; ok || len(l.seen) < l.max {
			l.seen[v] = struct{}{}
			l.mu.Unlock()
			return v
		}
		l.mu.Unlock()
	}
	if l.overflow != nil {
		l.overflow.Inc()
	}
	return OtherLabel
}

// Forget frees v's place (a topic was deleted, an index expired); a series
// already exported for it stays until the caller deletes it.
func (l *LabelLimit) Forget(v string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.seen, v)
	l.mu.Unlock()
}
