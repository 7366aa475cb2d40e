package gateway

import (
	"context"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/deadletter"
)

func (e *Engine) deadLetter(topic string, r *Record, schemaID int, rerr *Error, now time.Time) kafkago.Message {
	key := r.Key
	if r.KeyJSON != nil {
		key = []byte(r.KeyJSON)
	}
	// The record never reached Kafka: no source partition or offset (-1).
	hs := deadletter.Headers(r.Headers, "ingest-gateway", rerr.Message, topic, -1, -1,
		kafkago.Header{Key: "sluice-error-field", Value: []byte(rerr.Field)},
		kafkago.Header{Key: "sluice-schema-id", Value: []byte(strconv.Itoa(schemaID))},
	)
	t := r.Time
	if t.IsZero() || rerr.Kind == KindInvalidTimestamp {
		// A timestamp Kafka may refuse must not sink its dead letter too:
		// the dead letter is stamped now and keeps the original in a header.
		if !t.IsZero() {
			hs = append(hs, kafkago.Header{Key: HeaderOriginalTimestamp, Value: []byte(strconv.FormatInt(t.UnixMilli(), 10))})
		}
		t = now
	}
	return kafkago.Message{Topic: DeadLetterTopic(topic), Key: key, Value: r.Value, Headers: hs, Time: t}
}

// HeaderOriginalTimestamp carries, on a dead letter refused for its
// timestamp, the record's timestamp in epoch milliseconds (the dead letter
// itself is stamped with the gateway's time).
const HeaderOriginalTimestamp = "sluice-original-timestamp"

// DeadLetterTopic names the dead-letter topic of topic.
func DeadLetterTopic(topic string) string { return deadletter.Topic(topic) }

func (e *Engine) ensureDLQ(ctx context.Context, topic string) (int, *Error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ProduceTimeout)
	defer cancel()
	return e.topics.lookup(ctx, DeadLetterTopic(topic), true)
}
