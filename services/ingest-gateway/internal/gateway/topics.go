package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/kafka"
)

// TopicPolicy says which topics producers may use and which park invalid
// records in a dead-letter topic.
type TopicPolicy struct {
	Allow      []string // topic names or path.Match globs; "*" matches any non-internal topic
	DeadLetter []string // same syntax
	// AnySchema lists topics (names or globs) whose records may use any
	// registered schema; other topics take only schemas registered under
	// their own subject (<topic>-value / <topic>-key).
	AnySchema []string
}

// ValidTopicName reports whether name is a legal Kafka topic name whose
// dead-letter topic is legal too (pkg/kafka.ValidateTopicName).
func ValidTopicName(name string) bool { return kafka.ValidTopicName(name) }

// MatchTopic reports whether topic matches one of patterns. Patterns with a
// wildcard never match internal topics (leading underscore) or dead-letter
// topics (<topic>.dlq), so '*' in development cannot write to _schemas,
// _sluice-alerts or forge dead letters (pkg/kafka.MatchTopic).
func MatchTopic(patterns []string, topic string) bool { return kafka.MatchAnyTopic(patterns, topic) }

// Allowed reports whether producers may write to topic at all.
func (p TopicPolicy) Allowed(topic string) bool {
	return ValidTopicName(topic) && MatchTopic(p.Allow, topic)
}

// DeadLetters reports whether invalid records of topic go to <topic>.dlq.
func (p TopicPolicy) DeadLetters(topic string) bool { return MatchTopic(p.DeadLetter, topic) }

type topicEntry struct {
	partitions int
	err        *Error
	expires    time.Time
}

// topicCache remembers partition counts, briefly, so each request does not
// cost a metadata round trip.
type topicCache struct {
	kc         *kafka.Clients
	autoCreate bool
	partitions int
	max        int // entries kept (GATEWAY_TOPIC_CACHE_SIZE)

	mu sync.Mutex
	m  map[string]topicEntry
}

// boundedPut stores v under k in m, first making room when m holds max
// entries: expired ones go, then arbitrary ones (a cache: forgetting costs
// a lookup, never correctness). Producers choose topic names, so every
// map keyed by them is bounded.
func boundedPut[V any](m map[string]V, k string, v V, max int, expired func(V) bool) {
	if _, ok := m[k]; !ok && max > 0 && len(m) >= max {
		for key, old := range m {
			if expired(old) {
				delete(m, key)
			}
		}
		for key := range m {
			if len(m) < max {
				break
			}
			delete(m, key)
		}
	}
	m[k] = v
}

func (c *topicCache) lookup(ctx context.Context, topic string, create bool) (int, *Error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[topic]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.partitions, e.err
	}
	var (
		info kafka.TopicInfo
		err  error
	)
	if create {
		info, err = c.kc.EnsureTopic(ctx, kafka.TopicSpec{Name: topic, Partitions: c.partitions})
	} else {
		info, err = c.kc.DescribeTopic(ctx, topic)
	}
	switch {
	case err == nil:
		e = topicEntry{partitions: info.Partitions, expires: now.Add(30 * time.Second)}
	case errors.Is(err, kafka.ErrTopicNotFound):
		e = topicEntry{err: Errorf(KindUnknownTopic, "Topic %s not found.", topic), expires: now.Add(2 * time.Second)}
	default:
		// Not cached: Kafka may be back on the next request.
		return 0, Errorf(KindUnavailable, "Kafka unavailable while looking up topic %s: %v", topic, err)
	}
	c.mu.Lock()
	boundedPut(c.m, topic, e, c.max, func(old topicEntry) bool { return now.After(old.expires) })
	c.mu.Unlock()
	return e.partitions, e.err
}

// TopicAllowed reports whether the configuration allows topic, so APIs can
// answer 404 before telling an API key it may not use the topic.
func (e *Engine) TopicAllowed(topic string) bool { return e.cfg.Topics.Allowed(topic) }

// TopicError is the request error for a topic producers may not use: 400
// for a name Kafka would not accept (quoting at most 64 bytes of it), 404
// for one the configuration does not allow; nil when it is allowed. APIs
// call it before storing a topic name anywhere.
func (e *Engine) TopicError(topic string) *Error {
	if err := kafka.ValidateTopicName(topic); err != nil {
		return Errorf(KindBadRequest, "%v", err)
	}
	if !e.cfg.Topics.Allowed(topic) {
		return Errorf(KindUnknownTopic, "Topic %s not found.", topic)
	}
	return nil
}

// CheckTopic answers whether a topic may be used and exists, with its
// partition count.
func (e *Engine) CheckTopic(ctx context.Context, topic string) (int, *Error) {
	if err := e.TopicError(topic); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ProduceTimeout)
	defer cancel()
	return e.topics.lookup(ctx, topic, e.cfg.AutoCreate)
}
