// Package rules is streaming anomaly detection over decoded records:
// threshold, spike/drop, flatline, EWMA outlier, new_term and cardinality
// rules from a YAML file, evaluated in record-time tumbling windows with
// group-by keys, allowed lateness and per rule+key de-duplication.
package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// File is the YAML rules file.
type File struct {
	Defaults Defaults `yaml:"defaults"`
	Rules    []Rule   `yaml:"rules"`
}

// Defaults apply to every rule that does not set its own.
type Defaults struct {
	AllowedLateness Duration `yaml:"allowed_lateness"`
	Realert         Duration `yaml:"realert"`
	Severity        string   `yaml:"severity"`
	Notify          []string `yaml:"notify"`
	MaxKeys         int      `yaml:"max_keys"`
	TermExpiry      Duration `yaml:"term_expiry"`
}

// Rule is one detection rule.
type Rule struct {
	Name     string   `yaml:"name"`
	Topic    string   `yaml:"topic"` // empty: every topic
	Type     string   `yaml:"type"`  // threshold, spike, drop, flatline, outlier, new_term, cardinality
	Field    string   `yaml:"field"`
	Agg      string   `yaml:"agg"` // count, sum, avg (threshold over a window, spike, drop)
	Op       string   `yaml:"op"`  // > >= < <= == !=
	Value    *float64 `yaml:"value"`
	Window   Duration `yaml:"window"`
	GroupBy  []string `yaml:"group_by"`
	Severity string   `yaml:"severity"`
	Notify   []string `yaml:"notify"`

	Factor           float64 `yaml:"factor"`            // spike/drop: current vs reference
	Direction        string  `yaml:"direction"`         // spike: up (default), down, both
	ReferenceWindows int     `yaml:"reference_windows"` // spike/drop: windows averaged as reference (default 1)
	MinReference     float64 `yaml:"min_reference"`     // spike/drop: ignore when reference is smaller
	MinCount         int     `yaml:"min_count"`         // flatline: alert when fewer events
	Alpha            float64 `yaml:"alpha"`             // outlier: EWMA weight (default 0.1)
	Z                float64 `yaml:"z"`                 // outlier: |z| threshold (default 3)
	Warmup           int     `yaml:"warmup"`            // outlier: samples; new_term: records per key before alerting

	AllowedLateness *Duration `yaml:"allowed_lateness"`
	Realert         *Duration `yaml:"realert"`
	MaxKeys         int       `yaml:"max_keys"`
	// TermExpiry (new_term): a term not seen for this long (record time)
	// is forgotten, and counts as new again. Default 168h.
	TermExpiry Duration `yaml:"term_expiry"`
}

// DefaultTermExpiry is how long a new_term rule remembers a term it has
// not seen again.
const DefaultTermExpiry = Duration(7 * 24 * time.Hour)

// Duration is a time.Duration in YAML ("30s", "5m").
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration like 30s or 5m", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Notifier names accepted in notify lists.
var Notifiers = []string{"slack", "webhook", "kafka", "index"}

// LoadFile reads and validates a rules file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading rules file: %w", err)
	}
	return Parse(b)
}

// Parse decodes and validates rules YAML. Unknown keys are errors, and
// every validation error names the rule and the field.
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing rules: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// RuleError names the rule and field of a validation failure.
type RuleError struct {
	Rule  string
	Field string
	Msg   string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("rule %q: %s: %s", e.Rule, e.Field, e.Msg)
}

// Validate checks every rule and fills defaults.
func (f *File) Validate() error {
	if f.Defaults.AllowedLateness < 0 {
		return &RuleError{"defaults", "allowed_lateness", "must not be negative"}
	}
	seen := map[string]bool{}
	for i := range f.Rules {
		r := &f.Rules[i]
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
			return &RuleError{name, "name", "is required"}
		}
		if seen[name] {
			return &RuleError{name, "name", "duplicate rule name"}
		}
		seen[name] = true
		if err := r.validate(f.Defaults); err != nil {
			return err
		}
	}
	return nil
}

func (r *Rule) validate(d Defaults) error {
	bad := func(field, format string, a ...any) error {
		return &RuleError{r.Name, field, fmt.Sprintf(format, a...)}
	}
	if r.AllowedLateness == nil {
		l := d.AllowedLateness
		r.AllowedLateness = &l
	}
	if *r.AllowedLateness < 0 {
		return bad("allowed_lateness", "must not be negative")
	}
	if r.Realert == nil {
		v := d.Realert
		if v == 0 {
			v = Duration(10 * time.Minute)
		}
		r.Realert = &v
	}
	if *r.Realert < 0 {
		return bad("realert", "must not be negative")
	}
	if r.Severity == "" {
		r.Severity = d.Severity
	}
	if r.Severity == "" {
		r.Severity = "warning"
	}
	switch r.Severity {
	case "info", "warning", "critical":
	default:
		return bad("severity", "want info, warning or critical, got %q", r.Severity)
	}
	if r.Notify == nil {
		r.Notify = d.Notify
	}
	for _, n := range r.Notify {
		ok := false
		for _, k := range Notifiers {
			ok = ok || n == k
		}
		if !ok {
			return bad("notify", "unknown destination %q (want %s)", n, strings.Join(Notifiers, ", "))
		}
	}
	if r.MaxKeys == 0 {
		r.MaxKeys = d.MaxKeys
	}
	if r.MaxKeys == 0 {
		r.MaxKeys = 10000
	}
	if r.MaxKeys < 0 {
		return bad("max_keys", "must be positive")
	}
	for i, g := range r.GroupBy {
		if g == "" {
			return bad(fmt.Sprintf("group_by[%d]", i), "empty field path")
		}
	}
	k, known := kinds[r.Type]
	switch {
	case r.Type == "":
		return bad("type", "is required (threshold, spike, drop, flatline, outlier, new_term or cardinality)")
	case !known:
		return bad("type", "unknown type %q (want threshold, spike, drop, flatline, outlier, new_term or cardinality)", r.Type)
	}
	if err := k.validate(ruleCheck{r}, d); err != nil {
		return err
	}
	if r.Window > 0 && *r.AllowedLateness > 0 && r.AllowedLateness.D()/r.Window.D() > 1000 {
		return bad("allowed_lateness", "at most 1000 windows")
	}
	return nil
}

var ops = map[string]func(a, b float64) bool{
	">":  func(a, b float64) bool { return a > b },
	">=": func(a, b float64) bool { return a >= b },
	"<":  func(a, b float64) bool { return a < b },
	"<=": func(a, b float64) bool { return a <= b },
	"==": func(a, b float64) bool { return a == b },
	"!=": func(a, b float64) bool { return a != b },
}
