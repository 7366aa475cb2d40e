package sink

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/pkg/backoff"
)

// Why a topic is parked (the reason label of sluice_searchsink_topic_parks_total).
const (
	ParkTemplate    = "template"          // its index template cannot be installed
	ParkRetries     = "retries_exhausted" // a transient failure outlasted its bounded retries
	ParkIndexBudget = "index_budget"      // it wants more new indices than its hourly budget
	ParkCollision   = "name_collision"    // its index names would be another topic's
	ParkDeadLetter  = "dead_letter"       // its dead letters cannot be written
)

// ParkNotice describes a topic being parked, for an operator alert.
type ParkNotice struct {
	Topic, Kind, Reason string
	At, RetryAt         time.Time
}

// Parker takes topics that cannot make progress out of consumption without
// stopping the others: a parked topic's fetchers wait, its in-flight records
// are abandoned (not acknowledged, so its offsets stay where they are) and,
// when it is released, each of its partitions starts again from its last
// contiguous acknowledged offset. Release comes from a probe (e.g.
// installing the template again) retried with capped exponential backoff,
// or at a fixed time. Parking is per topic; everything else keeps flowing
// and committing.
type Parker struct {
	policy backoff.Policy
	m      *Metrics
	log    *slog.Logger
	notify func(ParkNotice)
	now    func() time.Time

	mu      sync.Mutex
	handles map[string]*TopicHandle
	wake    chan struct{}
}

// TopicHandle is one topic's park state; fetchers keep theirs and check it
// per record without locking.
type TopicHandle struct {
	topic  string
	parked atomic.Bool
	epoch  atomic.Uint64 // incremented by every Park

	// guarded by Parker.mu
	kind, reason string
	label        string
	since, next  time.Time
	lastRelease  time.Time
	strikes      int
	probe        func(ctx context.Context) error
	released     chan struct{}
	signal       chan struct{} // closed by the next Park
}

// NewParker returns a Parker whose probes back off with policy (Attempts
// is ignored: a parked topic is retried until released or forgotten).
// notify, if not nil, is told of every park (not of failed probes).
func NewParker(policy backoff.Policy, m *Metrics, log *slog.Logger, notify func(ParkNotice)) *Parker {
	return &Parker{policy: policy, m: m, log: log, notify: notify, now: time.Now, handles: map[string]*TopicHandle{}, wake: make(chan struct{}, 1)}
}

// Handle returns topic's handle, creating it.
func (p *Parker) Handle(topic string) *TopicHandle {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handleLocked(topic)
}

func (p *Parker) handleLocked(topic string) *TopicHandle {
	h := p.handles[topic]
	if h == nil {
		h = &TopicHandle{topic: topic}
		p.handles[topic] = h
	}
	return h
}

// Parked reports whether the topic is parked now.
func (h *TopicHandle) Parked() bool { return h.parked.Load() }

// Epoch changes every time the topic is parked: a fetcher that saw another
// value must wait for the release and start again from its watermark.
func (h *TopicHandle) Epoch() uint64 { return h.epoch.Load() }

// Parked reports whether topic is parked.
func (p *Parker) Parked(topic string) bool {
	p.mu.Lock()
	h := p.handles[topic]
	p.mu.Unlock()
	return h != nil && h.Parked()
}

// Park parks topic until probe succeeds; probe is retried with backoff
// (nil: the topic is simply released after the backoff, and its records
// are tried again). Parking a parked topic changes nothing.
func (p *Parker) Park(topic, kind, reason string, probe func(ctx context.Context) error) {
	p.park(topic, kind, reason, probe, time.Time{})
}

// ParkUntil parks topic until the given time.
func (p *Parker) ParkUntil(topic, kind, reason string, until time.Time) {
	p.park(topic, kind, reason, nil, until)
}

func (p *Parker) park(topic, kind, reason string, probe func(ctx context.Context) error, until time.Time) {
	now := p.now()
	p.mu.Lock()
	h := p.handleLocked(topic)
	if h.parked.Load() {
		p.mu.Unlock()
		return
	}
	// A topic that stayed released longer than the longest backoff starts
	// over; one parked again soon after its release waits longer each time.
	if !h.lastRelease.IsZero() && now.Sub(h.lastRelease) > p.policy.Max {
		h.strikes = 0
	}
	h.kind, h.reason, h.probe, h.since = kind, reason, probe, now
	h.next = until
	if until.IsZero() {
		h.next = now.Add(p.policy.Delay(h.strikes))
	}
	h.strikes++
	h.released = make(chan struct{})
	h.label = p.m.topicLabel(topic)
	h.parked.Store(true)
	h.epoch.Add(1)
	if h.signal != nil {
		close(h.signal)
		h.signal = nil
	}
	next := h.next
	p.mu.Unlock()

	p.m.Parked.WithLabelValues(h.label).Inc()
	p.m.Parks.WithLabelValues(h.label, kind).Inc()
	p.log.Error("topic parked: its records wait while every other topic keeps flowing", "topic", topic, "reason_kind", kind, "reason", reason, "retry_at", next.UTC().Format(time.RFC3339))
	if p.notify != nil {
		p.notify(ParkNotice{Topic: topic, Kind: kind, Reason: reason, At: now, RetryAt: next})
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// ParkContext returns a context that ends with ctx or when the topic is
// next parked (at once if it is parked now): a fetcher blocked waiting for
// records or buffer space stops and starts over after the release.
func (p *Parker) ParkContext(ctx context.Context, h *TopicHandle) (context.Context, context.CancelFunc) {
	pctx, cancel := context.WithCancel(ctx)
	p.mu.Lock()
	if h.parked.Load() {
		p.mu.Unlock()
		cancel()
		return pctx, cancel
	}
	if h.signal == nil {
		h.signal = make(chan struct{})
	}
	sig := h.signal
	p.mu.Unlock()
	go func() {
		select {
		case <-sig:
			cancel()
		case <-pctx.Done():
		}
	}()
	return pctx, cancel
}

// Wait blocks while topic is parked; it returns ctx's error if ctx ends first.
func (p *Parker) Wait(ctx context.Context, h *TopicHandle) error {
	for {
		p.mu.Lock()
		ch := h.released
		parked := h.parked.Load()
		p.mu.Unlock()
		if !parked {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Forget drops a topic that no longer exists (releasing it if parked).
func (p *Parker) Forget(topic string) {
	p.mu.Lock()
	h := p.handles[topic]
	delete(p.handles, topic)
	p.mu.Unlock()
	if h != nil && h.parked.Load() {
		p.release(h, "topic no longer consumed")
	}
}

func (p *Parker) release(h *TopicHandle, why string) {
	p.mu.Lock()
	if !h.parked.Load() {
		p.mu.Unlock()
		return
	}
	h.parked.Store(false)
	h.lastRelease = p.now()
	close(h.released)
	label, kind, since := h.label, h.kind, h.since
	p.mu.Unlock()
	p.m.Parked.WithLabelValues(label).Dec()
	p.log.Warn("topic released: consuming it again from its last committed offset", "topic", h.topic, "reason_kind", kind, "parked_for", p.now().Sub(since).Round(time.Millisecond).String(), "why", why)
}

// Run probes parked topics when their backoff has elapsed, until ctx ends.
func (p *Parker) Run(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := p.now()
		var due []*TopicHandle
		wait := time.Hour
		p.mu.Lock()
		for _, h := range p.handles {
			if !h.parked.Load() {
				continue
			}
			if !h.next.After(now) {
				due = append(due, h)
			} else if d := h.next.Sub(now); d < wait {
				wait = d
			}
		}
		p.mu.Unlock()
		for _, h := range due {
			p.probe(ctx, h)
		}
		if len(due) > 0 {
			continue // recompute the next wait after the probes
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-t.C:
		}
	}
}

func (p *Parker) probe(ctx context.Context, h *TopicHandle) {
	p.mu.Lock()
	probe := h.probe
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
			h.next = p.now().Add(p.policy.Delay(h.strikes))
			h.strikes++
			h.reason = err.Error()
			next := h.next
			p.mu.Unlock()
			p.log.Warn("topic still parked", "topic", h.topic, "err", err, "retry_at", next.UTC().Format(time.RFC3339))
			return
		}
	}
	p.release(h, "retry succeeded")
}
