package rules

import (
	"fmt"
	"math"
	"time"
)

// kind is what one rule type does. A rule holds what every type shares
// (group keys, series, windows and the watermark, de-duplication, the
// state budget) and asks its kind the type's questions; adding a type is
// adding a kind to kinds.
type kind interface {
	// validate checks the type's settings and fills their defaults.
	validate(c ruleCheck, d Defaults) error
	// windowed reports whether records are counted into windows that
	// close behind the watermark.
	windowed(r *rule) bool
	// sample reads what a record contributes (a number, a term); false
	// skips the record. It runs before the rule's lock is taken.
	sample(e *Engine, r *rule, fields map[string]any) (num float64, term string, ok bool)
	// observe judges a record of series key kb at once (r.mu held); false
	// leaves it to the windows.
	observe(e *Engine, r *rule, topic string, kb []byte, t time.Time, num float64, term string) bool
	// count adds a record's term to its window (cardinality).
	count(e *Engine, r *rule, b *bucket, term string)
	// evaluate judges series s's window [ws, we) once it closes.
	evaluate(e *Engine, r *rule, key string, s *series, w closedWindow)
	// idle reports whether series s, whose window starting at start just
	// closed, is to be freed.
	idle(r *rule, s *series, start int64) bool
	// threshold is what an alert reports as its threshold when the rule
	// has neither a value nor a factor.
	threshold(c *Rule) float64
}

// kinds are the rule types by name.
var kinds = map[string]kind{
	"threshold":   thresholdKind{},
	"spike":       changeKind{},
	"drop":        changeKind{},
	"flatline":    flatlineKind{},
	"outlier":     outlierKind{},
	"new_term":    newTermKind{},
	"cardinality": cardinalityKind{},
}

// closedWindow is one series' aggregate over a window that closed.
type closedWindow struct {
	ws, we   time.Time
	count    int64
	val      float64 // the rule's aggregate (count, sum or avg; NaN: avg of nothing)
	distinct int
}

// windowBase is the behaviour windowed kinds share.
type windowBase struct{}

func (windowBase) windowed(*rule) bool { return true }
func (windowBase) sample(*Engine, *rule, map[string]any) (float64, string, bool) {
	return 0, "", true
}
func (windowBase) observe(*Engine, *rule, string, []byte, time.Time, float64, string) bool {
	return false
}
func (windowBase) count(*Engine, *rule, *bucket, string) {}
func (windowBase) idle(r *rule, s *series, start int64) bool {
	return s.lastAct < start-int64(r.cfg.ReferenceWindows+10)*r.window
}
func (windowBase) threshold(*Rule) float64 { return 0 }

// recordBase is the behaviour of kinds that judge each record as it
// comes and keep no windows.
type recordBase struct{}

func (recordBase) windowed(*rule) bool                                    { return false }
func (recordBase) count(*Engine, *rule, *bucket, string)                  {}
func (recordBase) evaluate(*Engine, *rule, string, *series, closedWindow) {}
func (recordBase) idle(*rule, *series, int64) bool                        { return false }
func (recordBase) threshold(*Rule) float64                                { return 0 }

// numeric reads the rule's field as a number.
func numeric(r *rule, fields map[string]any) (float64, bool) {
	v, ok := r.field.get(fields)
	if !ok {
		return 0, false
	}
	return toFloat(v)
}

// aggSample reads the field an aggregate needs (none for a windowed
// count).
func aggSample(r *rule, fields map[string]any) (float64, string, bool) {
	if r.cfg.Agg == "count" && r.window != 0 {
		return 0, "", true
	}
	num, ok := numeric(r, fields)
	return num, "", ok
}

// thresholdKind compares a field per record, or an aggregate per window,
// with a value.
type thresholdKind struct{ windowBase }

func (thresholdKind) validate(c ruleCheck, _ Defaults) error {
	r := c.r
	if err := c.needOpValue(); err != nil {
		return err
	}
	if r.Agg == "" && r.Window == 0 {
		return c.needField() // per-record threshold on a field
	}
	if err := c.needWindow(); err != nil {
		return err
	}
	return c.aggField()
}

func (thresholdKind) windowed(r *rule) bool { return r.window > 0 }

func (thresholdKind) sample(_ *Engine, r *rule, fields map[string]any) (float64, string, bool) {
	return aggSample(r, fields)
}

func (thresholdKind) observe(e *Engine, r *rule, topic string, kb []byte, t time.Time, num float64, _ string) bool {
	if r.window != 0 {
		return false
	}
	if r.op(num, *r.cfg.Value) {
		s := r.seriesFor(e, kb)
		var g []string
		if s != nil {
			g = s.group
		}
		r.fire(e, topic, string(kb), g, t, time.Time{}, num, fmt.Sprintf("%s = %s %s %s", r.cfg.Field, fmtNum(num), r.cfg.Op, fmtNum(*r.cfg.Value)))
	}
	return true
}

func (thresholdKind) evaluate(e *Engine, r *rule, key string, s *series, w closedWindow) {
	if !math.IsNaN(w.val) && r.op(w.val, *r.cfg.Value) {
		r.fire(e, "", key, s.group, w.we, w.ws, w.val, fmt.Sprintf("%s = %s %s %s over %s", r.aggName(), fmtNum(w.val), r.cfg.Op, fmtNum(*r.cfg.Value), r.cfg.Window.D()))
	}
}

// changeKind (spike, drop) compares a window's aggregate with the mean of
// the reference windows before it.
type changeKind struct{ windowBase }

func (changeKind) validate(c ruleCheck, _ Defaults) error {
	r := c.r
	if err := c.needWindow(); err != nil {
		return err
	}
	if err := c.aggField(); err != nil {
		return err
	}
	if r.Factor <= 1 || math.IsInf(r.Factor, 0) || math.IsNaN(r.Factor) {
		return c.bad("factor", "must be greater than 1, got %v", r.Factor)
	}
	if r.Direction == "" {
		r.Direction = "up"
		if r.Type == "drop" {
			r.Direction = "down"
		}
	}
	if r.Direction != "up" && r.Direction != "down" && r.Direction != "both" {
		return c.bad("direction", "want up, down or both, got %q", r.Direction)
	}
	if r.ReferenceWindows == 0 {
		r.ReferenceWindows = 1
	}
	if r.ReferenceWindows < 0 || r.ReferenceWindows > 100 {
		return c.bad("reference_windows", "must be between 1 and 100")
	}
	if r.MinReference < 0 {
		return c.bad("min_reference", "must not be negative")
	}
	return nil
}

func (changeKind) sample(_ *Engine, r *rule, fields map[string]any) (float64, string, bool) {
	return aggSample(r, fields)
}

func (changeKind) evaluate(e *Engine, r *rule, key string, s *series, w closedWindow) {
	val := w.val
	if math.IsNaN(val) {
		val = 0
	}
	n := r.cfg.ReferenceWindows
	if s.hist >= n {
		var ref float64
		for _, h := range s.history {
			ref += h
		}
		ref /= float64(n)
		if ref > 0 && ref >= r.cfg.MinReference {
			up := val >= ref*r.cfg.Factor
			down := val <= ref/r.cfg.Factor
			dir := r.cfg.Direction
			if (up && (dir == "up" || dir == "both")) || (down && (dir == "down" || dir == "both")) {
				word := "spike"
				if down {
					word = "drop"
				}
				r.fire(e, "", key, s.group, w.we, w.ws, val, fmt.Sprintf("%s: %s = %s vs reference %s (factor %s) over %s", word, r.aggName(), fmtNum(val), fmtNum(ref), fmtNum(r.cfg.Factor), r.cfg.Window.D()))
			}
		}
	}
	copy(s.history, s.history[1:])
	s.history[n-1] = val
	s.hist++
}

// flatlineKind alerts on windows with fewer records than min_count.
type flatlineKind struct{ windowBase }

func (flatlineKind) validate(c ruleCheck, _ Defaults) error {
	if err := c.needWindow(); err != nil {
		return err
	}
	if c.r.MinCount <= 0 {
		return c.bad("min_count", "must be at least 1")
	}
	return nil
}

func (flatlineKind) evaluate(e *Engine, r *rule, key string, s *series, w closedWindow) {
	if w.count < int64(r.cfg.MinCount) {
		r.fire(e, "", key, s.group, w.we, w.ws, float64(w.count), fmt.Sprintf("only %d events in %s (minimum %d)", w.count, r.cfg.Window.D(), r.cfg.MinCount))
	}
}

// idle: a series silent for 100 windows stops being alerted about.
func (flatlineKind) idle(r *rule, s *series, start int64) bool {
	return s.lastAct < start-int64(100)*r.window
}

func (flatlineKind) threshold(c *Rule) float64 { return float64(c.MinCount) }

// cardinalityKind compares the number of distinct values of a field in a
// window with a value.
type cardinalityKind struct{ windowBase }

func (cardinalityKind) validate(c ruleCheck, _ Defaults) error {
	if err := c.needField(); err != nil {
		return err
	}
	if err := c.needWindow(); err != nil {
		return err
	}
	return c.needOpValue()
}

func (cardinalityKind) sample(e *Engine, r *rule, fields map[string]any) (float64, string, bool) {
	v, ok := r.field.get(fields)
	if !ok {
		return 0, "", false
	}
	return 0, e.capTerm(r, toString(v)), true
}

func (cardinalityKind) count(e *Engine, r *rule, b *bucket, term string) {
	if b.terms == nil {
		b.terms = map[string]struct{}{}
	}
	if _, ok := b.terms[term]; !ok {
		if e.budget.take(termCost(term)) {
			b.terms[term] = struct{}{}
		} else {
			r.dropped(e, DropValue)
		}
	}
}

func (cardinalityKind) evaluate(e *Engine, r *rule, key string, s *series, w closedWindow) {
	if r.op(float64(w.distinct), *r.cfg.Value) {
		r.fire(e, "", key, s.group, w.we, w.ws, float64(w.distinct), fmt.Sprintf("%d distinct %s %s %s over %s", w.distinct, r.cfg.Field, r.cfg.Op, fmtNum(*r.cfg.Value), r.cfg.Window.D()))
	}
}

// outlierKind alerts on values far from a series' moving average (an
// exponentially weighted mean and variance).
type outlierKind struct{ recordBase }

func (outlierKind) validate(c ruleCheck, _ Defaults) error {
	r := c.r
	if err := c.needField(); err != nil {
		return err
	}
	if r.Alpha == 0 {
		r.Alpha = 0.1
	}
	if r.Alpha <= 0 || r.Alpha >= 1 {
		return c.bad("alpha", "must be between 0 and 1 (exclusive), got %v", r.Alpha)
	}
	if r.Z == 0 {
		r.Z = 3
	}
	if r.Z <= 0 {
		return c.bad("z", "must be positive")
	}
	if r.Warmup == 0 {
		r.Warmup = 30
	}
	if r.Warmup < 2 {
		return c.bad("warmup", "must be at least 2 samples")
	}
	return nil
}

func (outlierKind) sample(_ *Engine, r *rule, fields map[string]any) (float64, string, bool) {
	num, ok := numeric(r, fields)
	return num, "", ok
}

func (outlierKind) observe(e *Engine, r *rule, topic string, kb []byte, t time.Time, num float64, _ string) bool {
	if s := r.seriesFor(e, kb); s != nil {
		r.outlier(e, s, topic, kb, t, num)
	}
	return true
}

func (outlierKind) threshold(c *Rule) float64 { return c.Z }

// newTermKind alerts on values of a field a key has not had before.
type newTermKind struct{ recordBase }

func (newTermKind) validate(c ruleCheck, d Defaults) error {
	r := c.r
	if err := c.needField(); err != nil {
		return err
	}
	if r.Warmup < 0 {
		return c.bad("warmup", "must not be negative")
	}
	if r.TermExpiry == 0 {
		r.TermExpiry = d.TermExpiry
	}
	if r.TermExpiry == 0 {
		r.TermExpiry = DefaultTermExpiry
	}
	if r.TermExpiry < 0 {
		return c.bad("term_expiry", "must be positive")
	}
	return nil
}

func (newTermKind) sample(e *Engine, r *rule, fields map[string]any) (float64, string, bool) {
	return cardinalityKind{}.sample(e, r, fields)
}

func (newTermKind) observe(e *Engine, r *rule, topic string, kb []byte, t time.Time, _ float64, term string) bool {
	r.newTerm(e, topic, kb, term, t)
	return true
}

// ruleCheck carries the checks several kinds share while a rule is
// validated.
type ruleCheck struct{ r *Rule }

func (c ruleCheck) bad(field, format string, a ...any) error {
	return &RuleError{c.r.Name, field, fmt.Sprintf(format, a...)}
}

func (c ruleCheck) needWindow() error {
	if c.r.Window <= 0 {
		return c.bad("window", "required for type %s (e.g. 1m)", c.r.Type)
	}
	return nil
}

func (c ruleCheck) needField() error {
	if c.r.Field == "" {
		return c.bad("field", "required for type %s", c.r.Type)
	}
	return nil
}

func (c ruleCheck) needOpValue() error {
	if _, ok := ops[c.r.Op]; !ok {
		return c.bad("op", "want one of > >= < <= == !=, got %q", c.r.Op)
	}
	if c.r.Value == nil {
		return c.bad("value", "required for type %s", c.r.Type)
	}
	return nil
}

func (c ruleCheck) aggField() error {
	switch c.r.Agg {
	case "", "count":
		c.r.Agg = "count"
	case "sum", "avg":
		if c.r.Field == "" {
			return c.bad("field", "required for agg %s", c.r.Agg)
		}
	default:
		return c.bad("agg", "want count, sum or avg, got %q", c.r.Agg)
	}
	return nil
}
