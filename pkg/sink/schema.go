package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/wire"
)

// schemaResolver resolves the schema of framed values, with the grace
// window for ids the registry does not know yet.
type schemaResolver struct {
	codecs Codecs
	grace  time.Duration
	now    func() time.Time

	mu          sync.Mutex
	unknownRun  time.Time // start of the current run of 404s
	unknownLast time.Time // the last 404 of that run
}

// PermanentSchemaError reports whether a schema lookup error will not go
// away by retrying: the registry answered 4xx (unknown id), or the schema
// is not usable. Network errors, timeouts and 5xx are transient.
func PermanentSchemaError(err error) bool {
	var re *registry.Error
	if errors.As(err, &re) {
		return re.Status >= 400 && re.Status < 500 && re.Status != 408 && re.Status != 429
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	return true
}

// young reports whether a record whose schema id the registry answered 404
// for should wait rather than be dead-lettered: a registry replica may not
// have replayed a schema registered elsewhere yet. The wait is one grace
// window from the first 404 of a run of them, for every id alike; past it
// unknown ids are dead-lettered at once until no 404 has been seen for
// twice the grace. A producer framing records with ever new unknown ids
// delays the sink by one window per run, not one per id.
func (s *schemaResolver) young(err error) bool {
	if !registry.IsNotFound(err) || s.grace <= 0 {
		return false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unknownRun.IsZero() || now.Sub(s.unknownLast) > 2*s.grace {
		s.unknownRun = now
	}
	s.unknownLast = now
	return now.Sub(s.unknownRun) < s.grace
}

// resolve fills rec's schema fields. It returns a dead-letter reason for a
// record that cannot be framed or whose schema is unknown or unusable, or
// an error: a registry outage that outlasted the retries (Transient with
// ReasonRegistry) or errStopped.
func (p *partition) resolve(ctx context.Context, rec *Record) (string, error) {
	s := p.r.schema
	if s == nil || rec.Value == nil {
		return "", nil
	}
	sid, body, err := wire.Decode(rec.Value)
	if err != nil {
		return "framing: " + err.Error(), nil
	}
	id := int(sid)
	rec.SchemaID, rec.Payload = id, body
	attempt, young := 0, 0
	for {
		codec, err := s.codecs.ByID(ctx, id)
		if err == nil {
			rec.Schema = codec
			return "", nil
		}
		var d time.Duration
		switch {
		case PermanentSchemaError(err) && !s.young(err):
			if errors.Is(err, avro.ErrUnusableSchema) {
				if h := p.r.o.SchemaProblem; h != nil {
					if perr := h(ctx, rec.Topic, id, err); perr != nil {
						return "", perr
					}
				}
				return "schema: " + err.Error(), nil
			}
			return "schema: " + err.Error(), nil
		case PermanentSchemaError(err):
			d = min(p.r.o.Retry.Delay(young), time.Second)
			young++
		default:
			attempt++
			if p.r.o.Retry.Attempts > 0 && attempt >= p.r.o.Retry.Attempts {
				return "", Park(ReasonRegistry, fmt.Errorf("looking up schema id %d: %d attempts failed: %w", id, attempt, err), nil)
			}
			d = p.r.o.Retry.Delay(attempt - 1)
			p.r.o.Metrics.retries.WithLabelValues(p.label, string(ReasonRegistry)).Inc()
		}
		p.log.Warn("schema lookup failed; retrying", "schema_id", id, "offset", rec.Offset, "err", err, "after", d)
		if !backoff.Sleep(p.wait, d) {
			return "", errStopped
		}
	}
}
