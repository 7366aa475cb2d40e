// Package deadletter is the dead-letter contract every Sluice stage shares:
// records a stage cannot take go to "<topic>.dlq" with their original key,
// value and headers, plus sluice-* headers saying which stage rejected them,
// why, and where they came from.
package deadletter

import (
	"strconv"
	"strings"
	"unicode/utf8"

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
	// HeaderOriginalSize is set (to the record's size in bytes: key + value
	// + headers, as Kafka counts them roughly) on a dead letter whose key or
	// value had to be cut to fit the dead-letter topic.
	HeaderOriginalSize = "sluice-original-size"
	// HeaderTruncated names what was cut: "value", "key,value", "headers".
	HeaderTruncated = "sluice-truncated"
)

// MaxReasonBytes bounds the sluice-error header: reasons quote producer
// data, which must not make a dead letter larger than its record.
const MaxReasonBytes = 1024

// DefaultMaxBytes is the dead-letter size Fit aims under when a stage has
// no better number: Kafka's default max.message.bytes (1 MiB + 12) minus
// room for the record batch framing.
const DefaultMaxBytes = 1<<20 - 4<<10

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
		kafkago.Header{Key: HeaderError, Value: []byte(Reason(reason))},
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

// Reason bounds a rejection reason to MaxReasonBytes (cut at a rune
// boundary, marked with "..."), so it fits a header whatever it quotes.
func Reason(reason string) string {
	if len(reason) <= MaxReasonBytes {
		return reason
	}
	cut := MaxReasonBytes - len("...")
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut] + "..."
}

// Size is a record's size as the dead-letter topic sees it: key, value,
// and each header's key and value (record framing is a few bytes more).
func Size(m *kafkago.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// Fit makes a dead letter fit limit bytes (Size), so a record refused for
// its size is still parked instead of replayed forever: producer headers
// are dropped first (the sluice-* contract headers stay), then the value
// and, if that is not enough, the key are cut to what still fits. When
// anything is cut, HeaderOriginalSize and HeaderTruncated say so. A
// message that already fits is returned unchanged.
func Fit(m kafkago.Message, limit int) kafkago.Message {
	orig := Size(&m)
	if orig <= limit {
		return m
	}
	const note = len(HeaderOriginalSize) + 20 + len(HeaderTruncated) + len("headers,key,value")
	budget := limit - note
	var cut []string
	if headerBytes(m.Headers) > budget && producerHeaders(m.Headers) {
		kept := make([]kafkago.Header, 0, len(m.Headers))
		for _, h := range m.Headers {
			if strings.HasPrefix(h.Key, "sluice-") {
				kept = append(kept, h)
			}
		}
		m.Headers = kept
		cut = append(cut, "headers")
	}
	room := budget - headerBytes(m.Headers)
	if len(m.Key) > room {
		m.Key = m.Key[:max(0, room)]
		cut = append(cut, "key")
	}
	room -= len(m.Key)
	if len(m.Value) > room {
		m.Value = m.Value[:max(0, room)]
		cut = append(cut, "value")
	}
	m.Headers = append(m.Headers[:len(m.Headers):len(m.Headers)],
		kafkago.Header{Key: HeaderOriginalSize, Value: []byte(strconv.Itoa(orig))},
		kafkago.Header{Key: HeaderTruncated, Value: []byte(strings.Join(cut, ","))},
	)
	return m
}

func producerHeaders(hs []kafkago.Header) bool {
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, "sluice-") {
			return true
		}
	}
	return false
}

func headerBytes(hs []kafkago.Header) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
