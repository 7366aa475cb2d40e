package avro

import (
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/avro/internal/jsonscan"
	"github.com/sluicehq/sluice/pkg/service"
)

// Limits bound the work of one pass over one record (decoding, validating,
// rendering as JSON, encoding from JSON), whatever its schema: a schema of
// shared named types (T0 {a: T1, b: T1}, T1 {a: T2, b: T2}, ...) makes a
// record of 0 bytes a tree of 2^depth values, and a recursive type with a
// required self-reference makes it infinite. A pass may take at most
//
//	BaseSteps + StepsPerByte × (the record's size in bytes)
//
// steps, and values may nest at most MaxDepth deep. A step is one value
// visited (a record, a field, an array item, a map entry, a union branch,
// a scalar) or 16 bytes of output or of scanned text. Past either limit the
// pass fails with a *BudgetError (errors.Is(err, ErrBudget)); the sinks
// dead-letter such records, the gateway refuses them.
//
// Services embed Limits in their configuration; the zero value means the
// defaults. Realistic records take well under 3 steps per byte (0.3 for an
// order of 2,000 items, 2 for optional fields all null); goavro builds at
// worst about 200 bytes of values per step. The services' READMEs give the
// reasoning for the defaults.
type Limits struct {
	BaseSteps    int `env:"AVRO_DECODE_BASE_STEPS" default:"65536" help:"steps (values visited, or 16 bytes of output) every Avro record may take whatever its size; covers values that take no bytes (null, empty records)"`
	StepsPerByte int `env:"AVRO_DECODE_STEPS_PER_BYTE" default:"8" help:"steps an Avro record may take per byte of its encoding (per byte of JSON text when encoding from JSON), on top of AVRO_DECODE_BASE_STEPS"`
	MaxDepth     int `env:"AVRO_MAX_DEPTH" default:"256" help:"deepest nesting of values in an Avro record (each record field, array item, map value and union branch is a level)"`
}

// Default limits; see Limits and the services' READMEs for the reasoning.
const (
	DefaultBaseSteps    = 65536
	DefaultStepsPerByte = 8
	DefaultMaxDepth     = 256
)

// The limits a BudgetError names (and the limit label of BudgetCounter).
const (
	LimitSteps = "steps" // AVRO_DECODE_BASE_STEPS + AVRO_DECODE_STEPS_PER_BYTE × size
	LimitDepth = "depth" // AVRO_MAX_DEPTH
)

// outputPerStep is how many bytes of output (or of text scanned again)
// count as one step.
const outputPerStep = 16

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{BaseSteps: DefaultBaseSteps, StepsPerByte: DefaultStepsPerByte, MaxDepth: DefaultMaxDepth}
}

// Validate checks the values, naming the variable of a bad one.
func (l *Limits) Validate() error {
	if l.BaseSteps < 1 {
		return service.Invalid("AVRO_DECODE_BASE_STEPS", "must be positive")
	}
	if l.StepsPerByte < 1 {
		return service.Invalid("AVRO_DECODE_STEPS_PER_BYTE", "must be positive")
	}
	if l.MaxDepth < 1 || l.MaxDepth > jsonscan.MaxDepth {
		return service.Invalid("AVRO_MAX_DEPTH", "must be between 1 and %d", jsonscan.MaxDepth)
	}
	return nil
}

// orDefaults fills zero values with the defaults.
func (l Limits) orDefaults() Limits {
	if l.BaseSteps <= 0 {
		l.BaseSteps = DefaultBaseSteps
	}
	if l.StepsPerByte <= 0 {
		l.StepsPerByte = DefaultStepsPerByte
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Steps is the number of steps a pass over a record of size bytes may take.
func (l Limits) Steps(size int) int64 {
	l = l.orDefaults()
	if size < 0 {
		size = 0
	}
	s := int64(l.BaseSteps) + int64(l.StepsPerByte)*int64(size)
	if s < 0 { // overflow: only with absurd settings
		return math.MaxInt64
	}
	return s
}

// ErrBudget is what every *BudgetError is: errors.Is(err, avro.ErrBudget).
var ErrBudget = errors.New("decode budget exceeded")

// BudgetError reports a record that needs more work than its size allows.
type BudgetError struct {
	// Limit is LimitSteps or LimitDepth.
	Limit string
	// RecordBytes is the size the budget was computed from.
	RecordBytes int
	// Max is the number of steps allowed, or the maximum depth.
	Max int64
	// Base and PerByte are the limits the steps were computed from.
	Base, PerByte int
}

// Error names the limit and the record size, e.g. "decode budget exceeded:
// a record of 0 bytes needs more than 65536 steps (AVRO_DECODE_BASE_STEPS
// 65536 + AVRO_DECODE_STEPS_PER_BYTE 8 per byte)".
func (e *BudgetError) Error() string {
	if e.Limit == LimitDepth {
		return fmt.Sprintf("%v: a record of %d bytes nests deeper than AVRO_MAX_DEPTH %d", ErrBudget, e.RecordBytes, e.Max)
	}
	return fmt.Sprintf("%v: a record of %d bytes needs more than %d steps (AVRO_DECODE_BASE_STEPS %d + AVRO_DECODE_STEPS_PER_BYTE %d per byte)",
		ErrBudget, e.RecordBytes, e.Max, e.Base, e.PerByte)
}

// Is makes errors.Is(err, ErrBudget) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudget }

// Budget meters one pass over one record. The zero value is not usable;
// a nil *Budget is unlimited (schema-time work, bounded elsewhere). It is
// exported for decoders outside this package (the search-sink transcoder)
// so that every walker of untrusted Avro counts the same way.
type Budget struct {
	left     int64
	max      int64
	size     int
	maxDepth int
	l        Limits
}

// NewBudget starts the budget of one pass over a record of size bytes.
func (l Limits) NewBudget(size int) *Budget {
	b := l.budget(size)
	return &b
}

// unlimited is the budget of schema-time work (encoding a field default
// once), which checkDefaults bounded when the codec was compiled.
func unlimited() Budget {
	return Budget{left: math.MaxInt64, max: math.MaxInt64, maxDepth: jsonscan.MaxDepth}
}

// budget is NewBudget by value, for walkers that hold it in place (no
// allocation on the gateway's hot path).
func (l Limits) budget(size int) Budget {
	l = l.orDefaults()
	s := l.Steps(size)
	return Budget{left: s, max: s, size: size, maxDepth: l.MaxDepth, l: l}
}

// Step charges n steps.
func (b *Budget) Step(n int64) error {
	if b == nil {
		return nil
	}
	b.left -= n
	if b.left < 0 {
		b.left = -1 // stays exceeded, without wrapping around
		return b.exceeded()
	}
	return nil
}

// Need fails, charging nothing, when n more steps would exceed the budget:
// a block header claiming 2^20 items is refused before they are walked.
func (b *Budget) Need(n int64) error {
	if b == nil || n <= b.left {
		return nil
	}
	b.left = -1
	return b.exceeded()
}

// Output charges n bytes of output or of text scanned again.
func (b *Budget) Output(n int) error {
	if b == nil || n < outputPerStep {
		return nil
	}
	return b.Step(int64(n / outputPerStep))
}

// Depth checks a nesting depth (0 for the record itself).
func (b *Budget) Depth(d int) error {
	if b == nil || d <= b.maxDepth {
		return nil
	}
	return b.tooDeep()
}

func (b *Budget) tooDeep() error {
	return &BudgetError{Limit: LimitDepth, RecordBytes: b.size, Max: int64(b.maxDepth), Base: b.l.BaseSteps, PerByte: b.l.StepsPerByte}
}

// Used is the number of steps taken so far.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	if b.left < 0 {
		return b.max + 1
	}
	return b.max - b.left
}

func (b *Budget) exceeded() error {
	return &BudgetError{Limit: LimitSteps, RecordBytes: b.size, Max: b.max, Base: b.l.BaseSteps, PerByte: b.l.StepsPerByte}
}

// BudgetCounter counts records refused for exceeding the decode budget,
// by topic and limit (LimitSteps or LimitDepth): sluice_<service>_avro_budget_exceeded_total.
type BudgetCounter struct{ v *prometheus.CounterVec }

// NewBudgetCounter registers sluice_<service>_avro_budget_exceeded_total
// on reg; service is the metric prefix of the service ("s3sink").
func NewBudgetCounter(reg prometheus.Registerer, service string) *BudgetCounter {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_" + service + "_avro_budget_exceeded_total",
		Help: "Records refused because decoding them took more steps than their size allows or nested deeper than AVRO_MAX_DEPTH, by topic and limit.",
	}, []string{"topic", "limit"})
	reg.MustRegister(v)
	return &BudgetCounter{v: v}
}

// Observe counts err if it is a *BudgetError and reports whether it was.
// A nil counter only reports.
func (c *BudgetCounter) Observe(topic string, err error) bool {
	var be *BudgetError
	if !errors.As(err, &be) {
		return false
	}
	if c != nil {
		c.v.WithLabelValues(topic, be.Limit).Inc()
	}
	return true
}
