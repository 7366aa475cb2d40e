package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Hold is a reservation of in-flight bytes. It grows while a request's
// memory grows (a chunked body being read, parse and encode arenas) and is
// released once, when Kafka has answered for every record of it.
type Hold struct {
	e        *Engine
	n        atomic.Int64
	released atomic.Bool
	once     sync.Once
}

// Release returns the bytes to the budget; later calls do nothing.
func (h *Hold) Release() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.released.Store(true)
		h.e.inflight.Add(-h.n.Swap(0))
	})
}

// Bytes returns what the hold reserves now.
func (h *Hold) Bytes() int64 {
	if h == nil {
		return 0
	}
	return h.n.Load()
}

// Grow reserves n more bytes, or fails with KindBusy (taking nothing) when
// the budget cannot hold them while other requests hold some of it; a
// request alone in flight may grow past the budget (as Reserve admits it),
// bounded by its own limits (GATEWAY_MAX_REQUEST_BYTES and the like).
func (h *Hold) Grow(n int64) *Error {
	if h == nil || n <= 0 {
		return nil
	}
	e := h.e
	for {
		cur := e.inflight.Load()
		if cur+n > e.cfg.InflightBytes && cur > h.n.Load() {
			return Errorf(KindBusy, "gateway busy: %d bytes in flight, budget %d; retry later", cur, e.cfg.InflightBytes)
		}
		if e.inflight.CompareAndSwap(cur, cur+n) {
			h.n.Add(n)
			if h.released.Load() {
				// Released meanwhile: nothing will return these bytes.
				e.inflight.Add(-h.n.Swap(0))
			}
			return nil
		}
	}
}

// GrowWait is Grow that waits (up to the produce timeout) for budget, for
// streams, where backpressure beats failing records.
func (h *Hold) GrowWait(ctx context.Context, n int64) *Error {
	deadline := time.Now().Add(h.e.cfg.ProduceTimeout)
	for {
		err := h.Grow(n)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// Shrink returns n of the hold's bytes (an estimate that came out high).
func (h *Hold) Shrink(n int64) {
	if h == nil || n <= 0 || h.released.Load() {
		return
	}
	n = min(n, h.n.Load())
	h.n.Add(-n)
	h.e.inflight.Add(-n)
}

// Absorb moves other's reservation into h (items of a stream produced in
// one batch); other is left empty and released.
func (h *Hold) Absorb(other *Hold) {
	if h == nil || other == nil || other == h {
		return
	}
	other.once.Do(func() {
		other.released.Store(true)
		h.n.Add(other.n.Swap(0))
	})
}

// NewHold returns an empty reservation that grows as a request's memory
// does (Grow, GrowWait).
func (e *Engine) NewHold() *Hold { return &Hold{e: e} }

// Reserve takes n bytes of the shared in-flight budget, or fails with
// KindBusy when that would exceed it.
func (e *Engine) Reserve(n int64) (*Hold, *Error) {
	if n < 0 {
		n = 0
	}
	for {
		cur := e.inflight.Load()
		if cur+n > e.cfg.InflightBytes && cur > 0 {
			return nil, Errorf(KindBusy, "gateway busy: %d bytes in flight, budget %d; retry later", cur, e.cfg.InflightBytes)
		}
		if e.inflight.CompareAndSwap(cur, cur+n) {
			h := &Hold{e: e}
			h.n.Store(n)
			return h, nil
		}
	}
}

// ReserveWait is Reserve that waits (up to the produce timeout) for budget,
// for streams, where backpressure beats failing records.
func (e *Engine) ReserveWait(ctx context.Context, n int64) (*Hold, *Error) {
	deadline := time.Now().Add(e.cfg.ProduceTimeout)
	for {
		h, err := e.Reserve(n)
		if err == nil {
			return h, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}
