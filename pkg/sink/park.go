package sink

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pkg/backoff"
)

// ParkNotice describes a topic being parked, for an operator alert.
type ParkNotice struct {
	Topic   string
	Reason  Reason
	Err     string
	At      time.Time
	RetryAt time.Time
}

// parker takes topics that cannot make progress out of consumption
// without stopping the others: a parked topic's partitions stop, drop what
// is not durable and, once it is released, start again from their
// committed offsets. Release comes from a probe retried with the park
// backoff, after the backoff when there is no probe, or at a fixed time.
type parker struct {
	policy backoff.Policy
	m      *Metrics
	log    *slog.Logger
	notify func(ParkNotice)
	now    func() time.Time

	mu     sync.Mutex
	topics map[string]*topicPark
	wake   chan struct{}
}

// topicPark is one topic's park state.
type topicPark struct {
	topic        string
	parked       bool
	epoch        uint64        // bumped by every park
	signal       chan struct{} // closed by the next park
	released     chan struct{} // closed by the release
	reason       Reason
	err          string
	label        string
	since, next  time.Time
	lastRelease  time.Time
	strikes      int
	probe        func(ctx context.Context) error
	parkedFromAt int64
}

func newParker(policy backoff.Policy, m *Metrics, log *slog.Logger, notify func(ParkNotice), now func() time.Time) *parker {
	return &parker{policy: policy, m: m, log: log, notify: notify, now: now, topics: map[string]*topicPark{}, wake: make(chan struct{}, 1)}
}

func (p *parker) get(topic string) *topicPark {
	t := p.topics[topic]
	if t == nil {
		t = &topicPark{topic: topic, signal: make(chan struct{})}
		p.topics[topic] = t
	}
	return t
}

// watch returns a channel closed when the topic is next parked (closed
// already if it is parked now) and the current epoch.
func (p *parker) watch(topic string) (<-chan struct{}, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.get(topic)
	return t.signal, t.epoch
}

// isParked reports whether topic is parked now.
func (p *parker) isParked(topic string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.topics[topic]
	return t != nil && t.parked
}

// park parks topic (no-op when it is parked already).
func (p *parker) park(topic string, offset int64, pe *ParkError) {
	now := p.now()
	p.mu.Lock()
	t := p.get(topic)
	if t.parked {
		p.mu.Unlock()
		return
	}
	// A topic released longer ago than the longest backoff starts over;
	// one parked again soon after its release waits longer each time.
	if !t.lastRelease.IsZero() && now.Sub(t.lastRelease) > p.policy.Max {
		t.strikes = 0
	}
	t.parked = true
	t.epoch++
	t.reason, t.err, t.probe, t.since, t.parkedFromAt = pe.Reason, pe.Err.Error(), pe.Probe, now, offset
	t.next = pe.Until
	if t.next.IsZero() {
		t.next = now.Add(p.policy.Delay(t.strikes))
	}
	t.strikes++
	t.released = make(chan struct{})
	close(t.signal)
	t.label = p.m.TopicLabel(topic)
	next := t.next
	p.mu.Unlock()

	p.m.parked.WithLabelValues(t.label).Inc()
	p.m.parks.WithLabelValues(t.label, string(pe.Reason)).Inc()
	p.log.Error("topic parked: its records wait here while other topics flow; fix the cause, it is retried",
		"topic", topic, "offset", offset, "reason", pe.Reason, "err", pe.Err, "retry_at", next.UTC().Format(time.RFC3339Nano))
	if p.notify != nil {
		p.notify(ParkNotice{Topic: topic, Reason: pe.Reason, Err: pe.Err.Error(), At: now, RetryAt: next})
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// wait blocks while topic is parked; false when ctx ended first.
func (p *parker) wait(ctx context.Context, topic string) bool {
	for {
		p.mu.Lock()
		t := p.get(topic)
		parked, ch := t.parked, t.released
		p.mu.Unlock()
		if !parked {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

func (p *parker) release(topic, why string) {
	p.mu.Lock()
	t := p.topics[topic]
	if t == nil || !t.parked {
		p.mu.Unlock()
		return
	}
	t.parked = false
	t.lastRelease = p.now()
	t.signal = make(chan struct{})
	close(t.released)
	label, reason, since := t.label, t.reason, t.since
	p.mu.Unlock()
	p.m.parked.WithLabelValues(label).Dec()
	p.log.Info("topic unparked: records flow again", "topic", topic, "reason", reason,
		"parked_for", p.now().Sub(since).Round(time.Millisecond).String(), "why", why)
}

// forget releases and drops a topic this runtime no longer consumes.
func (p *parker) forget(topic string) {
	p.release(topic, "topic no longer consumed")
	p.mu.Lock()
	delete(p.topics, topic)
	p.mu.Unlock()
}

// run probes parked topics when their backoff has elapsed, until ctx ends.
func (p *parker) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := p.now()
		var due []*topicPark
		wait := time.Hour
		p.mu.Lock()
		for _, tp := range p.topics {
			if !tp.parked {
				continue
			}
			if !tp.next.After(now) {
				due = append(due, tp)
			} else if d := tp.next.Sub(now); d < wait {
				wait = d
			}
		}
		p.mu.Unlock()
		for _, tp := range due {
			p.probe(ctx, tp)
		}
		if len(due) > 0 {
			continue
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-t.C:
		}
	}
}

func (p *parker) probe(ctx context.Context, tp *topicPark) {
	p.mu.Lock()
	probe, topic := tp.probe, tp.topic
	p.mu.Unlock()
	if probe != nil {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := probe(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			tp.next = p.now().Add(p.policy.Delay(tp.strikes))
			tp.strikes++
			tp.err = err.Error()
			next := tp.next
			p.mu.Unlock()
			p.log.Warn("parked topic still failing", "topic", topic, "err", err, "retry_at", next.UTC().Format(time.RFC3339Nano))
			return
		}
	}
	p.release(topic, "retry due")
}
