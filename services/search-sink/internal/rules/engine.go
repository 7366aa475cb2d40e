package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Alert is one fired rule.
type Alert struct {
	Rule        string            `json:"rule"`
	Type        string            `json:"type"`
	Severity    string            `json:"severity"`
	Topic       string            `json:"topic,omitempty"`
	Key         string            `json:"key,omitempty"`
	Group       map[string]string `json:"group,omitempty"`
	Value       float64           `json:"value"`
	Threshold   float64           `json:"threshold"`
	Message     string            `json:"message"`
	WindowStart time.Time         `json:"window_start,omitzero"`
	WindowEnd   time.Time         `json:"window_end,omitzero"`
	RecordTime  time.Time         `json:"record_time"`
	FiredAt     time.Time         `json:"fired_at"`
	Notify      []string          `json:"-"`
}

// ID is stable for one rule, key and time: the alerts index uses it as
// _id. Keys hold record values (several group-by values and a term), so an
// id over Elasticsearch's 512 bytes is replaced by "sha256:" and the hex
// SHA-256 of it.
func (a *Alert) ID() string {
	id := a.Rule + "|" + a.Key + "|" + strconv.FormatInt(a.RecordTime.UnixMilli(), 10)
	if len(id) <= 512 {
		return id
	}
	h := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(h[:])
}

// Stats counts what the engine did, for metrics.
type Stats interface {
	Fired(rule string)
	Suppressed(rule string)
	Late(rule string)
	Dropped(rule, kind string) // state not remembered: DropSeries, DropTerm, DropValue, DropDedup
	Cut(rule string)           // a group-by value or term cut to Limits.TermBytes
}

type noStats struct{}

func (noStats) Fired(string)           {}
func (noStats) Suppressed(string)      {}
func (noStats) Late(string)            {}
func (noStats) Dropped(string, string) {}
func (noStats) Cut(string)             {}

// Engine evaluates rules on records. Observe is safe for concurrent use
// (each rule has its own lock) and never blocks on delivery: emit must
// hand alerts off without waiting.
type Engine struct {
	rules  []*rule
	emit   func(Alert)
	stats  Stats
	now    func() time.Time
	lim    Limits
	budget *budget
	log    *slog.Logger
}

// NewEngine compiles f's rules.
func NewEngine(f *File, emit func(Alert), stats Stats, opts ...Option) *Engine {
	if stats == nil {
		stats = noStats{}
	}
	e := &Engine{emit: emit, stats: stats, now: time.Now, lim: Limits{StateBytes: DefaultStateBytes, TermBytes: DefaultTermBytes}}
	for _, o := range opts {
		o(e)
	}
	e.budget = &budget{max: e.lim.StateBytes}
	for i := range f.Rules {
		e.rules = append(e.rules, compile(&f.Rules[i]))
	}
	return e
}

// SetClock replaces time.Now for FiredAt (tests).
func (e *Engine) SetClock(now func() time.Time) { e.now = now }

// Rules returns the number of rules.
func (e *Engine) Rules() int { return len(e.rules) }

// Observe feeds one record of topic at record time t.
func (e *Engine) Observe(topic string, t time.Time, fields map[string]any) {
	for _, r := range e.rules {
		if r.cfg.Topic != "" && r.cfg.Topic != topic {
			continue
		}
		r.observe(e, topic, t, fields)
	}
}

// Flush closes every window that the watermark allows as if the stream
// had advanced to t (used at shutdown and in tests).
func (e *Engine) Flush(t time.Time) {
	for _, r := range e.rules {
		r.mu.Lock()
		if r.windowed() && t.UnixNano() > r.maxTime {
			r.maxTime = t.UnixNano()
			r.closeWindows(e)
		}
		r.mu.Unlock()
	}
}

type path []string

func compilePath(s string) path {
	if s == "" {
		return nil
	}
	return strings.Split(s, ".")
}

func (p path) get(m map[string]any) (any, bool) {
	var v any = m
	for _, k := range p {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		v, ok = mm[k]
		if !ok {
			return nil, false
		}
	}
	return v, true
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int:
		return float64(x), true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return string(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

type rule struct {
	cfg     *Rule
	kind    kind
	field   path
	groups  []path
	op      func(a, b float64) bool
	window  int64 // nanoseconds
	late    int64
	realert int64
	ring    int // windows kept open per series

	mu           sync.Mutex
	maxTime      int64 // highest record time seen (ns)
	closed       int64 // windows ending at or before this are closed (ns)
	series       map[string]*series
	fired        map[string]int64 // dedup key -> record time of last alert
	scratch      []byte
	expiry       int64 // new_term: terms unseen this long are forgotten (ns)
	firedSweepAt int   // size of fired that triggers dropping entries older than realert
	swept        int64 // new_term: record time of the last expiry sweep
	lastDropLog  map[string]time.Time
}

type bucket struct {
	start int64
	count int64
	sum   float64
	terms map[string]struct{}
}

type series struct {
	group   []string
	buckets []bucket // ring by window index
	history []float64
	hist    int   // values recorded in history
	lastAct int64 // window start of the latest record
	first   int64 // window start of the first record
	// outlier
	n        int
	mean, vr float64
	// new_term: term -> record time last seen (ns)
	terms     map[string]int64
	termCount int
	lastSeen  int64 // new_term: record time of the key's latest record
}

func compile(c *Rule) *rule {
	r := &rule{cfg: c, kind: kinds[c.Type], field: compilePath(c.Field), op: ops[c.Op], series: map[string]*series{}, fired: map[string]int64{},
		window: int64(c.Window), late: int64(*c.AllowedLateness), realert: int64(*c.Realert), expiry: int64(c.TermExpiry)}
	for _, g := range c.GroupBy {
		r.groups = append(r.groups, compilePath(g))
	}
	if r.window > 0 {
		r.ring = int(r.late/r.window) + 2
	}
	r.closed = math.MinInt64
	return r
}

func (r *rule) windowed() bool { return r.kind.windowed(r) }

// key builds the group key into the rule's scratch buffer (called with
// r.mu held); the returned bytes are only valid until the next call. Each
// value is cut to the term bound, so a key is at most groups x TermBytes.
func (r *rule) key(e *Engine, fields map[string]any) ([]byte, bool) {
	r.scratch = r.scratch[:0]
	for i, g := range r.groups {
		v, ok := g.get(fields)
		if !ok {
			return nil, false
		}
		if i > 0 {
			r.scratch = append(r.scratch, 0x1f)
		}
		s, ok := v.(string)
		if !ok {
			s = toString(v)
		}
		var cut bool
		r.scratch, cut = appendCapped(r.scratch, s, e.lim.TermBytes)
		if cut {
			e.stats.Cut(r.cfg.Name)
		}
	}
	return r.scratch, true
}

func (r *rule) seriesFor(e *Engine, kb []byte) *series {
	s := r.series[string(kb)] // no allocation for the lookup
	if s != nil {
		return s
	}
	key := string(kb)
	if len(r.series) >= r.cfg.MaxKeys || !e.budget.take(r.seriesCost(key)) {
		r.dropped(e, DropSeries) // bounded memory: new keys beyond max_keys or the byte budget are ignored
		return nil
	}
	s = &series{}
	if len(r.groups) > 0 {
		s.group = strings.Split(key, "\x1f")
	}
	if r.window > 0 {
		s.buckets = make([]bucket, r.ring)
		for i := range s.buckets {
			s.buckets[i].start = math.MinInt64
		}
		s.lastAct = math.MinInt64
		s.first = math.MaxInt64
	}
	if n := r.cfg.ReferenceWindows; n > 0 {
		s.history = make([]float64, n)
	}
	r.series[key] = s
	return s
}

func (r *rule) observe(e *Engine, topic string, t time.Time, fields map[string]any) {
	num, term, ok := r.kind.sample(e, r, fields)
	if !ok {
		return
	}
	ts := t.UnixNano()

	r.mu.Lock()
	defer r.mu.Unlock()
	kb, ok := r.key(e, fields)
	if !ok {
		return
	}
	if r.kind.observe(e, r, topic, kb, t, num, term) {
		return
	}
	// Windowed rules.
	if ts < r.closed {
		e.stats.Late(r.cfg.Name) // its window is closed: beyond allowed lateness
		return
	}
	s := r.seriesFor(e, kb)
	if s != nil {
		start := ts - mod(ts, r.window)
		b := &s.buckets[int(mod(start/r.window, int64(r.ring)))]
		if b.start != start {
			e.freeTerms(b.terms)
			*b = bucket{start: start, terms: b.terms}
		}
		b.count++
		b.sum += num
		r.kind.count(e, r, b, term)
		if start > s.lastAct {
			s.lastAct = start
		}
		if start < s.first {
			s.first = start
		}
	}
	if ts > r.maxTime || r.closed == math.MinInt64 {
		if r.closed == math.MinInt64 {
			// First record: windows ending before it minus the allowed
			// lateness are not observed.
			r.closed = ts - r.late - mod(ts-r.late, r.window)
			if ts > r.maxTime {
				r.maxTime = ts
			}
		}
		if ts > r.maxTime {
			r.maxTime = ts
		}
		r.closeWindows(e)
	}
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// closeWindows evaluates every window that ends at or before the
// watermark (max record time - allowed lateness).
func (r *rule) closeWindows(e *Engine) {
	wm := r.maxTime - r.late
	limit := wm - mod(wm, r.window) // windows ending at or before this close
	if r.closed == math.MinInt64 {
		r.closed = limit // nothing observed yet: no window to evaluate
		return
	}
	if limit <= r.closed {
		return
	}
	if (limit-r.closed)/r.window > 1000 { // a jump: evaluate the last windows only
		r.closed = limit - 1000*r.window
	}
	for start := r.closed; start < limit; start += r.window {
		r.closeWindow(e, start)
	}
	r.closed = limit
}

func (r *rule) closeWindow(e *Engine, start int64) {
	ws, we := time.Unix(0, start).UTC(), time.Unix(0, start+r.window).UTC()
	idx := int(mod(start/r.window, int64(r.ring)))
	for key, s := range r.series {
		if s.first > start {
			continue // the series did not exist yet
		}
		b := &s.buckets[idx]
		var count int64
		var sum float64
		var distinct int
		if b.start == start {
			count, sum, distinct = b.count, b.sum, len(b.terms)
			b.start = math.MinInt64
		}
		val := float64(count)
		if r.cfg.Agg == "sum" {
			val = sum
		} else if r.cfg.Agg == "avg" {
			if count == 0 {
				val = math.NaN()
			} else {
				val = sum / float64(count)
			}
		}
		r.kind.evaluate(e, r, key, s, closedWindow{ws: ws, we: we, count: count, val: val, distinct: distinct})
		if r.kind.idle(r, s, start) {
			r.deleteSeries(e, key, s)
		}
	}
}

func (r *rule) aggName() string {
	if r.cfg.Agg == "count" || r.cfg.Agg == "" {
		return "count"
	}
	return r.cfg.Agg + "(" + r.cfg.Field + ")"
}

func (r *rule) outlier(e *Engine, s *series, topic string, key []byte, t time.Time, x float64) {
	if s.n == 0 {
		s.mean, s.vr, s.n = x, 0, 1
		return
	}
	if s.n >= r.cfg.Warmup && s.vr > 0 {
		z := (x - s.mean) / math.Sqrt(s.vr)
		if math.Abs(z) > r.cfg.Z {
			r.fire(e, topic, string(key), s.group, t, time.Time{}, x, fmt.Sprintf("%s = %s is an outlier: z = %.2f (mean %s, threshold %s)", r.cfg.Field, fmtNum(x), z, fmtNum(s.mean), fmtNum(r.cfg.Z)))
		}
	}
	diff := x - s.mean
	incr := r.cfg.Alpha * diff
	s.mean += incr
	s.vr = (1 - r.cfg.Alpha) * (s.vr + diff*incr)
	s.n++
}

// fire de-duplicates per rule and key: within realert (record time) of
// the last alert for the same key, the alert is suppressed.
func (r *rule) fire(e *Engine, topic, key string, group []string, at, windowStart time.Time, val float64, msg string) {
	ts := at.UnixNano()
	if last, ok := r.fired[key]; ok && ts-last < r.realert && ts >= last {
		e.stats.Suppressed(r.cfg.Name)
		return
	}
	if len(r.fired) >= r.firedSweepAt {
		// Entries older than realert no longer suppress anything.
		for k, last := range r.fired {
			if ts-last >= r.realert || last > ts+r.realert {
				delete(r.fired, k)
				e.budget.give(termCost(k))
			}
		}
		r.firedSweepAt = max(64, 2*len(r.fired))
	}
	if len(r.fired) >= r.cfg.MaxKeys*2 {
		for k := range r.fired {
			e.budget.give(termCost(k))
		}
		clear(r.fired) // bounded: forgetting only risks an early re-alert
	}
	if _, ok := r.fired[key]; ok {
		r.fired[key] = ts
	} else if e.budget.take(termCost(key)) {
		r.fired[key] = ts
	} else {
		r.dropped(e, DropDedup) // not remembered: the next alert of this key is not suppressed
	}
	a := Alert{Rule: r.cfg.Name, Type: r.cfg.Type, Severity: r.cfg.Severity, Topic: topic, Key: strings.ReplaceAll(key, "\x1f", ","),
		Value: val, Message: msg, RecordTime: at.UTC(), FiredAt: e.now().UTC(), Notify: r.cfg.Notify}
	if r.cfg.Topic != "" {
		a.Topic = r.cfg.Topic
	}
	if r.cfg.Value != nil {
		a.Threshold = *r.cfg.Value
	} else if r.cfg.Factor != 0 {
		a.Threshold = r.cfg.Factor
	} else {
		a.Threshold = r.kind.threshold(r.cfg)
	}
	if len(group) > 0 {
		a.Group = make(map[string]string, len(group))
		for i, g := range r.cfg.GroupBy {
			if i < len(group) {
				a.Group[g] = group[i]
			}
		}
	}
	if !windowStart.IsZero() {
		a.WindowStart, a.WindowEnd = windowStart, at.UTC()
	}
	e.stats.Fired(r.cfg.Name)
	if e.emit != nil {
		e.emit(a)
	}
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// newTerm remembers term for the key and alerts when it was not seen (or
// was forgotten after term_expiry) once the key is past its warm-up.
func (r *rule) newTerm(e *Engine, topic string, kb []byte, term string, t time.Time) {
	ts := t.UnixNano()
	if ts > r.maxTime {
		r.maxTime = ts
	}
	r.expireTerms(e)
	s := r.seriesFor(e, kb)
	if s == nil {
		return
	}
	if ts > s.lastSeen {
		s.lastSeen = ts
	}
	if s.terms == nil {
		s.terms = map[string]int64{}
	}
	last, seen := s.terms[term]
	switch {
	case seen:
		if ts > last {
			s.terms[term] = ts
		}
	default:
		if e.budget.take(termCost(term)) {
			s.terms[term] = ts
		} else {
			r.dropped(e, DropTerm) // alerts anyway; a later sight of it alerts again (after realert)
		}
		if s.termCount >= r.cfg.Warmup {
			r.fire(e, topic, string(kb)+"\x1f"+term, s.group, t, time.Time{}, 1, fmt.Sprintf("new value %q of %s", term, r.cfg.Field))
		}
	}
	s.termCount++
}

// expireTerms forgets, at most every quarter of term_expiry of record
// time, the terms (and keys) not seen within term_expiry of the newest
// record time.
func (r *rule) expireTerms(e *Engine) {
	if r.expiry <= 0 || r.maxTime-r.swept < r.expiry/4 {
		return
	}
	r.swept = r.maxTime
	cutoff := r.maxTime - r.expiry
	for key, s := range r.series {
		for term, last := range s.terms {
			if last < cutoff {
				delete(s.terms, term)
				e.budget.give(termCost(term))
			}
		}
		if s.lastSeen < cutoff {
			r.deleteSeries(e, key, s)
		}
	}
}

// deleteSeries frees a series and everything it holds.
func (r *rule) deleteSeries(e *Engine, key string, s *series) {
	delete(r.series, key)
	e.budget.give(r.seriesCost(key))
	for term := range s.terms {
		e.budget.give(termCost(term))
	}
	for i := range s.buckets {
		e.freeTerms(s.buckets[i].terms)
	}
}

// freeTerms empties a cardinality bucket's values, returning their bytes.
func (e *Engine) freeTerms(m map[string]struct{}) {
	for term := range m {
		e.budget.give(termCost(term))
	}
	clear(m)
}
