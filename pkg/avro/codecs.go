package avro

import (
	"context"
	"fmt"
	"sync"

	"github.com/linkedin/goavro/v2"
	"golang.org/x/sync/singleflight"

	"github.com/sluicehq/sluice/pkg/registry"
)

// SchemaSource is the part of the registry client Codecs needs.
type SchemaSource interface {
	SchemaByID(ctx context.Context, id int) (*registry.Schema, error)
}

// Codec is a compiled schema with its registry id.
type Codec struct {
	ID     int
	Schema *registry.Schema
	*goavro.Codec
}

// Codecs compiles each schema id once and keeps it: ids are immutable, so
// the cache never needs invalidation.
type Codecs struct {
	src SchemaSource
	sf  singleflight.Group
	mu  sync.RWMutex
	m   map[int]*Codec
}

// NewCodecs returns an empty cache backed by src.
func NewCodecs(src SchemaSource) *Codecs {
	return &Codecs{src: src, m: map[int]*Codec{}}
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
			return nil, fmt.Errorf("schema id %d is %s, not AVRO", id, t)
		}
		gc, err := goavro.NewCodec(s.Schema)
		if err != nil {
			return nil, fmt.Errorf("compiling schema id %d: %w", id, err)
		}
		cd := &Codec{ID: id, Schema: s, Codec: gc}
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
