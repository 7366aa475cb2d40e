package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/registry"
)

// ValueCodec is the codec of topic's latest <topic>-value schema, for
// encoding values while a request is parsed; nil when it cannot be had
// (unknown subject, registry down: Produce then reports the problem).
func (e *Engine) ValueCodec(ctx context.Context, topic string) *avro.Codec {
	if !e.cfg.Topics.Allowed(topic) {
		return nil
	}
	c, err := e.valueCodec(ctx, &Batch{Topic: topic})
	if err != nil {
		return nil
	}
	return c
}

func registryError(err error, what string) *Error {
	if registry.IsNotFound(err) {
		return Errorf(KindNoSchema, "%s: %v", what, err)
	}
	var re *registry.Error
	if errors.As(err, &re) && re.Status == 422 {
		return Errorf(KindInvalidSchema, "%s: %s", what, re.Message)
	}
	if errors.As(err, &re) && re.Status == 409 {
		return Errorf(KindInvalidSchema, "%s: schema is incompatible with the subject's earlier versions: %s", what, re.Message)
	}
	if errors.As(err, &re) && re.Status < 500 {
		return Errorf(KindBadRequest, "%s: %v", what, err)
	}
	return Errorf(KindRegistryUnavailable, "%s: schema registry unavailable: %v", what, err)
}

func (e *Engine) resolve(ctx context.Context, subject string, ref SchemaRef) (*avro.Codec, *Error) {
	if ref.Subject != "" {
		subject = ref.Subject
	}
	id := ref.ID
	switch {
	case id > 0:
	case ref.Schema != "":
		key := subject + "\x00" + ref.Schema
		e.inlineMu.Lock()
		cached, ok := e.inline[key]
		e.inlineMu.Unlock()
		if ok {
			id = cached
			break
		}
		if _, err := avro.NewCodec(0, ref.Schema); err != nil {
			return nil, Errorf(KindInvalidSchema, "Invalid schema: %v", err)
		}
		// Look up first: an inline schema is usually registered already,
		// and a lookup needs only the read-only credential the gateway
		// runs with by default; only a new schema needs Register (rw).
		got, err := e.reg.Lookup(ctx, subject, "AVRO", ref.Schema, nil)
		if registry.IsNotFound(err) {
			got, err = e.reg.Register(ctx, subject, "AVRO", ref.Schema, nil)
			if err != nil {
				return nil, registryError(err, "registering schema under "+subject)
			}
		} else if err != nil {
			return nil, registryError(err, "looking up schema under "+subject)
		}
		e.inlineMu.Lock()
		if len(e.inline) > 10000 {
			clear(e.inline)
		}
		e.inline[key] = got
		e.inlineMu.Unlock()
		id = got
	case ref.Version > 0:
		s, err := e.reg.ByVersion(ctx, subject, ref.Version)
		if err != nil {
			return nil, registryError(err, fmt.Sprintf("version %d of subject %s", ref.Version, subject))
		}
		id = s.ID
	default:
		s, err := e.reg.Latest(ctx, subject)
		if err != nil {
			if registry.IsNotFound(err) {
				return nil, Errorf(KindNoSchema, "subject %s has no registered schema", subject)
			}
			return nil, registryError(err, "latest schema of "+subject)
		}
		id = s.ID
	}
	c, err := e.codecs.ByID(ctx, id)
	if err != nil {
		if registry.IsNotFound(err) {
			return nil, Errorf(KindNoSchema, "schema id %d not found", id)
		}
		var re *registry.Error
		if errors.As(err, &re) {
			return nil, registryError(err, fmt.Sprintf("schema id %d", id))
		}
		if errors.Is(err, avro.ErrUnusableSchema) {
			return nil, Errorf(KindInvalidSchema, "schema id %d cannot be used: %v", id, err)
		}
		return nil, Errorf(KindRegistryUnavailable, "schema id %d: schema registry unavailable: %v", id, err)
	}
	return c, nil
}

// checkSchemaOwner refuses a schema the producer chose (an id, or a
// version or latest of another subject) that is not registered under the
// topic's own subject (TopicNameStrategy), unless the topic's policy
// allows any schema (GATEWAY_ANY_SCHEMA_TOPICS). Versions and the latest
// of the topic's own subject, and inline schemas (registered under it),
// belong to it by construction and cost nothing here.
func (e *Engine) checkSchemaOwner(ctx context.Context, topic, subject, field string, ref SchemaRef, c *avro.Codec) *Error {
	if ref.ID <= 0 && (ref.Subject == "" || ref.Subject == subject) {
		return nil
	}
	if MatchTopic(e.cfg.Topics.AnySchema, topic) {
		return nil
	}
	ok, err := e.reg.IDInSubject(ctx, c.ID, subject)
	if err != nil {
		return registryError(err, fmt.Sprintf("subjects of schema id %d", c.ID))
	}
	if !ok {
		return &Error{Kind: KindSchemaNotOfTopic, Field: field, Message: fmt.Sprintf(
			"schema id %d is not a version of subject %s: topic %s takes only schemas registered under its own subject", c.ID, subject, topic)}
	}
	return nil
}

func (e *Engine) valueCodec(ctx context.Context, b *Batch) (*avro.Codec, *Error) {
	return e.resolve(ctx, b.Topic+"-value", b.Value)
}

// keyCodec returns the key schema for JSON keys: an explicit one, or the
// latest of <topic>-key when that subject exists (remembered absent for a
// short while).
func (e *Engine) keyCodec(ctx context.Context, b *Batch) (*avro.Codec, *Error) {
	subject := b.Topic + "-key"
	if b.KeySchema != nil {
		return e.resolve(ctx, subject, *b.KeySchema)
	}
	hasJSONKey := false
	for i := range b.Records {
		if b.Records[i].KeyJSON != nil {
			hasJSONKey = true
			break
		}
	}
	if !hasJSONKey {
		return nil, nil
	}
	e.mu.Lock()
	until, absent := e.noKey[subject]
	e.mu.Unlock()
	if absent && time.Now().Before(until) {
		return nil, nil
	}
	s, err := e.reg.Latest(ctx, subject)
	if err != nil {
		if registry.IsNotFound(err) {
			now := time.Now()
			e.mu.Lock()
			boundedPut(e.noKey, subject, now.Add(30*time.Second), e.cfg.TopicCacheSize, now.After)
			e.mu.Unlock()
			return nil, nil
		}
		return nil, registryError(err, "latest schema of "+subject)
	}
	return e.resolve(ctx, subject, SchemaRef{ID: s.ID})
}
