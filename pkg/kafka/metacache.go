package kafka

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
)

// topicMetaCache sits between a kafka-go Writer and its Transport and
// answers the writer's single-topic metadata requests from memory.
//
// kafka-go's Writer.WriteMessages asks its transport for the topic's
// metadata once per message, only to learn the partition count
// (writer.go, partitions()). The Transport caches metadata, but each of
// those calls still costs a channel round trip to the connection pool's
// goroutine, a select and a filtered copy of the response: at 10^6
// records/s that was a quarter of a core on the gateway's hot path.
//
// Only requests naming exactly one topic are cached, and only responses
// without a topic error, for at most ttl. Produce requests, leader
// routing and retries are untouched: the Transport below still refreshes
// its own metadata on NOT_LEADER and friends. A stale entry can only hold
// back a partition-count increase, by up to two ttls (the Transport's copy
// may already be one ttl old when it is cached here).
type topicMetaCache struct {
	next kafkago.RoundTripper
	ttl  time.Duration

	entries atomic.Pointer[map[string]metaEntry] // copy-on-write
	mu      sync.Mutex                           // serialises writers of entries
}

type metaEntry struct {
	resp    *metadataAPI.Response
	expires int64 // unix nanoseconds
}

func newTopicMetaCache(next kafkago.RoundTripper, ttl time.Duration) *topicMetaCache {
	c := &topicMetaCache{next: next, ttl: ttl}
	c.entries.Store(&map[string]metaEntry{})
	return c
}

// RoundTrip implements kafkago.RoundTripper.
func (c *topicMetaCache) RoundTrip(ctx context.Context, addr net.Addr, req protocol.Message) (protocol.Message, error) {
	mr, ok := req.(*metadataAPI.Request)
	if !ok || len(mr.TopicNames) != 1 {
		return c.next.RoundTrip(ctx, addr, req)
	}
	topic := mr.TopicNames[0]
	if e, ok := (*c.entries.Load())[topic]; ok && time.Now().UnixNano() < e.expires {
		return e.resp, nil
	}
	resp, err := c.next.RoundTrip(ctx, addr, req)
	if err != nil {
		return resp, err
	}
	r, ok := resp.(*metadataAPI.Response)
	if !ok || !cacheable(r, topic) {
		return resp, nil
	}
	c.mu.Lock()
	old := *c.entries.Load()
	m := make(map[string]metaEntry, len(old)+1)
	now := time.Now().UnixNano()
	for k, v := range old {
		if now < v.expires { // drop expired topics (deleted ones go away)
			m[k] = v
		}
	}
	m[topic] = metaEntry{resp: r, expires: now + int64(c.ttl)}
	c.entries.Store(&m)
	c.mu.Unlock()
	return r, nil
}

func cacheable(r *metadataAPI.Response, topic string) bool {
	for _, t := range r.Topics {
		if t.Name == topic {
			return t.ErrorCode == 0 && len(t.Partitions) > 0
		}
	}
	return false
}
