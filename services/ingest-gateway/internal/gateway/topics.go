package gateway

import (
	"context"
	"errors"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/kafka"
)

// TopicPolicy says which topics producers may use and which park invalid
// records in a dead-letter topic.
type TopicPolicy struct {
	Allow      []string // topic names or path.Match globs; "*" matches any non-internal topic
	DeadLetter []string // same syntax
}

// ValidTopicName reports whether name is a legal Kafka topic name.
func ValidTopicName(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// MatchTopic reports whether topic matches one of patterns. Patterns with a
// wildcard never match internal topics (leading underscore), so '*' in
// development cannot write to _schemas or __consumer_offsets.
func MatchTopic(patterns []string, topic string) bool {
	for _, p := range patterns {
		if p == topic {
			return true
		}
		if strings.HasPrefix(topic, "_") || !strings.ContainsAny(p, "*?[") {
			continue
		}
		if ok, _ := path.Match(p, topic); ok {
			return true
		}
	}
	return false
}

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

	mu sync.Mutex
	m  map[string]topicEntry
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
	c.m[topic] = e
	c.mu.Unlock()
	return e.partitions, e.err
}
