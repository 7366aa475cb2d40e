package avro

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/linkedin/goavro/v2"
	"golang.org/x/sync/singleflight"

	"github.com/sluicehq/sluice/pkg/registry"
)

// ErrUnusableSchema marks schemas the registry returned but that cannot
// be used here (not Avro, or not valid Avro), as opposed to lookup failures.
var ErrUnusableSchema = errors.New("unusable schema")

// SchemaSource is the part of the registry client Codecs needs.
type SchemaSource interface {
	SchemaByID(ctx context.Context, id int) (*registry.Schema, error)
}

// Codec is a compiled schema with its registry id. The embedded goavro
// codec encodes and decodes binary; the methods added here convert between
// JSON and goavro's native values with errors that name the field.
//
// Every method that reads a record (ValidateBinary, NativeFromBinary,
// JSONFromBinary, AppendJSON, BinaryFromJSON, EncodeAt, NativeFromJSON)
// is bounded by the codec's Limits: see Limits.
type Codec struct {
	ID     int
	Schema *registry.Schema
	*goavro.Codec
	root   *node
	limits Limits
}

// NewCodec compiles an Avro schema text with the default limits; id is
// informational (0 when the schema is not registered).
func NewCodec(id int, schema string) (*Codec, error) {
	return newCodec(id, schema, DefaultLimits())
}

func newCodec(id int, schema string, l Limits) (*Codec, error) {
	l = l.orDefaults()
	root, err := parseSchema(schema)
	if err != nil {
		return nil, fmt.Errorf("parsing schema: %w", err)
	}
	// goavro encodes every field default when it compiles a schema, each
	// expanded into a tree: refuse defaults that would take it longer than
	// decoding a record the size of the schema may take.
	if err := checkDefaults(root, l.Steps(len(schema))); err != nil {
		return nil, err
	}
	gc, err := goavro.NewCodec(schema)
	if err != nil {
		return nil, fmt.Errorf("compiling schema: %w", err)
	}
	return &Codec{ID: id, Schema: &registry.Schema{ID: id, Schema: schema}, Codec: gc, root: root, limits: l}, nil
}

// CheckDefaults refuses (an ErrBudget error) a schema whose field
// defaults goavro would expand beyond what decoding a record the size of
// the schema may cost under the default Limits: goavro.NewCodec expands
// and encodes every default eagerly, exponentially for nested shared
// types, so anything that hands untrusted schema text to goavro (the
// registry, on every register, lookup and check) calls this first. Text
// this package cannot parse is not judged here (nil): goavro gives the
// reason.
func CheckDefaults(schema string) error {
	root, err := parseSchema(schema)
	if err != nil {
		return nil
	}
	return checkDefaults(root, DefaultLimits().Steps(len(schema)))
}

// WithLimits returns a copy of the codec that applies l (zero fields: the
// defaults) to every record.
func (c *Codec) WithLimits(l Limits) *Codec {
	cp := *c
	cp.limits = l.orDefaults()
	return &cp
}

// Limits returns the limits the codec applies.
func (c *Codec) Limits() Limits { return c.limits }

// Codecs compiles each schema id once and keeps it: ids are immutable, so
// the cache never needs invalidation.
type Codecs struct {
	src    SchemaSource
	limits Limits
	sf     singleflight.Group
	mu     sync.RWMutex
	m      map[int]*Codec
}

// Option configures a Codecs cache.
type Option interface{ apply(*Codecs) }

type limitsOption Limits

func (o limitsOption) apply(c *Codecs) { c.limits = Limits(o).orDefaults() }

// WithLimits makes every codec of the cache apply l (zero fields: the
// defaults).
func WithLimits(l Limits) Option { return limitsOption(l) }

// NewCodecs returns an empty cache backed by src; its codecs apply the
// default limits unless WithLimits says otherwise.
func NewCodecs(src SchemaSource, opts ...Option) *Codecs {
	c := &Codecs{src: src, limits: DefaultLimits(), m: map[int]*Codec{}}
	for _, o := range opts {
		o.apply(c)
	}
	return c
}

// ByID returns the codec for a schema id, fetching and compiling it once.
func (c *Codecs) ByID(ctx context.Context, id int) (*Codec, error) {
	c.mu.RLock()
	cd, ok := c.m[id]
	c.mu.RUnlock()
	if ok {
		return cd, nil
	}
	v, err, _ := c.sf.Do(fmt.Sprint(id), func() (any, error) {
		s, err := c.src.SchemaByID(ctx, id)
		if err != nil {
			return nil, err
		}
		if t := s.SchemaType(); t != "AVRO" {
			return nil, fmt.Errorf("%w: schema id %d is %s, not AVRO", ErrUnusableSchema, id, t)
		}
		if len(s.References) > 0 {
			rs, ok := c.src.(ReferenceSource)
			if !ok {
				return nil, fmt.Errorf("%w: schema id %d: %w", ErrUnusableSchema, id, errNoReferenceSource)
			}
			text, err := Inline(ctx, rs, s)
			if err != nil {
				return nil, fmt.Errorf("schema id %d: resolving references: %w", id, err)
			}
			// Users of the codec (container file headers, mappings) see
			// one self-contained schema.
			inlined := *s
			inlined.Schema, inlined.References = text, nil
			s = &inlined
		}
		cd, err := newCodec(id, s.Schema, c.limits)
		if err != nil {
			return nil, fmt.Errorf("%w: schema id %d: %w", ErrUnusableSchema, id, err)
		}
		cd.Schema = s
		c.mu.Lock()
		c.m[id] = cd
		c.mu.Unlock()
		return cd, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Codec), nil
}
