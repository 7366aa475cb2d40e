// Package deadletter is the dead-letter contract every Sluice stage shares:
// records a stage cannot take go to "<topic>.dlq" with their original key,
// value and headers, plus sluice-* headers saying which stage rejected them,
// why, and where they came from.
package deadletter

import (
	"strconv"
	"strings"

	kafkago "github.com/segmentio/kafka-go"
)

// Suffix ends every dead-letter topic's name.
const Suffix = ".dlq"

// Header names (DESIGN.md).
const (
	HeaderError           = "sluice-error"
	HeaderStage           = "sluice-stage"
	HeaderSourceTopic     = "sluice-source-topic"
	HeaderSourcePartition = "sluice-source-partition"
	HeaderSourceOffset    = "sluice-source-offset"
)

// Topic names the dead-letter topic of source.
func Topic(source string) string { return source + Suffix }

// Is reports whether topic is a dead-letter topic.
func Is(topic string) bool { return strings.HasSuffix(topic, Suffix) }

// Source returns the topic a dead-letter topic belongs to ("" if topic is
// not one).
func Source(topic string) string {
	if !Is(topic) {
		return ""
	}
	return strings.TrimSuffix(topic, Suffix)
}

// Headers returns orig (without sluice-* contract headers left from an
// earlier dead-lettering or set by a producer, which would otherwise
// contradict the new ones) followed by the contract headers and extra.
// Partition and offset are -1 when the record never reached Kafka (the
// gateway's stage).
func Headers(orig []kafkago.Header, stage, reason, sourceTopic string, partition int, offset int64, extra ...kafkago.Header) []kafkago.Header {
	hs := make([]kafkago.Header, 0, len(orig)+5+len(extra))
	for _, h := range orig {
		switch h.Key {
		case HeaderError, HeaderStage, HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset:
			continue
		}
		hs = append(hs, h)
	}
	hs = append(hs,
		kafkago.Header{Key: HeaderError, Value: []byte(reason)},
		kafkago.Header{Key: HeaderStage, Value: []byte(stage)},
		kafkago.Header{Key: HeaderSourceTopic, Value: []byte(sourceTopic)},
		kafkago.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(partition))},
		kafkago.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(offset, 10))},
	)
	return append(hs, extra...)
}

// Message builds the dead letter for a record consumed from Kafka: same
// key, value and timestamp, sent to Topic(m.Topic).
func Message(m *kafkago.Message, stage, reason string) kafkago.Message {
	return kafkago.Message{
		Topic:   Topic(m.Topic),
		Key:     m.Key,
		Value:   m.Value,
		Time:    m.Time,
		Headers: Headers(m.Headers, stage, reason, m.Topic, m.Partition, m.Offset),
	}
}
