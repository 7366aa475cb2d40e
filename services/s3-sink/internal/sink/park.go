package sink

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Parking records which partitions of which topics are parked: stopped
// after a failure that retrying soon cannot fix, retried slowly, while
// every other topic keeps flowing. It owns the parking metrics and log
// lines, and nothing about how a partition is consumed, so it can move to
// a shared sink runtime unchanged.
type Parking struct {
	log    *slog.Logger
	gauge  *prometheus.GaugeVec   // topics parked, by (bounded) topic label
	parks  *prometheus.CounterVec // park transitions, by topic label and reason
	labels func(topic string) string

	mu     sync.Mutex
	topics map[string]*parkedTopic
	byLbl  map[string]int // parked topics per label
}

type parkedTopic struct {
	label      string
	partitions map[int]parkedPartition
}

type parkedPartition struct {
	reason Reason
	since  time.Time
}

// NewParking builds the registry; labels maps a topic to its metric label.
func NewParking(log *slog.Logger, gauge *prometheus.GaugeVec, parks *prometheus.CounterVec, labels func(string) string) *Parking {
	return &Parking{log: log, gauge: gauge, parks: parks, labels: labels, topics: map[string]*parkedTopic{}, byLbl: map[string]int{}}
}

// Park marks a partition parked (again) and logs it: at error level when
// it was not parked yet, at warn level when a retry failed again.
func (p *Parking) Park(topic string, partition int, offset int64, reason Reason, err error, retryIn time.Duration) {
	p.mu.Lock()
	t := p.topics[topic]
	if t == nil {
		t = &parkedTopic{label: p.labels(topic), partitions: map[int]parkedPartition{}}
		p.topics[topic] = t
		p.byLbl[t.label]++
		p.gauge.WithLabelValues(t.label).Set(float64(p.byLbl[t.label]))
	}
	prev, again := t.partitions[partition]
	if !again || prev.reason != reason {
		t.partitions[partition] = parkedPartition{reason: reason, since: time.Now()}
		p.parks.WithLabelValues(t.label, string(reason)).Inc()
	}
	p.mu.Unlock()
	if again && prev.reason == reason {
		p.log.Warn("parked topic still failing", "topic", topic, "partition", partition, "offset", offset,
			"reason", reason, "err", err, "retry_in", retryIn, "parked_for", time.Since(prev.since).Round(time.Second))
		return
	}
	p.log.Error("topic parked: its records wait here while other topics flow; fix the cause, it is retried",
		"topic", topic, "partition", partition, "offset", offset, "reason", reason, "err", err, "retry_in", retryIn)
}

// Unpark clears a partition's parked state; it reports whether it was
// parked.
func (p *Parking) Unpark(topic string, partition int) bool {
	prev, ok := p.remove(topic, partition)
	if ok {
		p.log.Info("topic unparked: records flow again", "topic", topic, "partition", partition,
			"reason", prev.reason, "parked_for", time.Since(prev.since).Round(time.Second))
	}
	return ok
}

// Release forgets a partition this process no longer owns (revoked, or
// shutting down) without claiming it recovered; its new owner parks it
// again if the failure persists.
func (p *Parking) Release(topic string, partition int) { p.remove(topic, partition) }

func (p *Parking) remove(topic string, partition int) (parkedPartition, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.topics[topic]
	if t == nil {
		return parkedPartition{}, false
	}
	prev, ok := t.partitions[partition]
	delete(t.partitions, partition)
	if len(t.partitions) == 0 {
		delete(p.topics, topic)
		p.byLbl[t.label]--
		p.gauge.WithLabelValues(t.label).Set(float64(p.byLbl[t.label]))
		if p.byLbl[t.label] == 0 {
			delete(p.byLbl, t.label)
		}
	}
	return prev, ok
}

// Parked reports why a topic's partition is parked ("" when it is not).
func (p *Parking) Parked(topic string, partition int) Reason {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.topics[topic]; t != nil {
		return t.partitions[partition].reason
	}
	return ""
}
