package gateway

import (
	"context"
	"errors"
)

// ErrStopping ends a stream when the gateway shuts down: records already
// answered are settled, the rest were never acknowledged and should be
// sent again (to another instance).
var ErrStopping = errors.New("gateway is shutting down; reconnect and resend unacknowledged records")

// Group is what consecutive stream items must share to be produced in one
// call.
type Group struct {
	Topic        string
	Value        SchemaRef
	Format       Format
	KeyFormat    Format
	KeySchema    SchemaRef
	HasKeySchema bool
	JSONKeys     bool
}

// StreamItem is one record of a stream, or a record already failed while
// parsing (Pre), which keeps its place in the answer order.
type StreamItem struct {
	Group  Group
	Record Record
	Size   int
	Pre    *Error
	Tag    any // the caller's correlation data (e.g. a gRPC sequence number)
	// Hold is the budget the reader reserved for the item's bytes before
	// (or while) reading them; nil: produceChunk reserves Size itself.
	Hold *Hold
}

// RunStream produces the items read from in, in order, batching runs of
// items that share a Group (up to chunk records, without waiting for more
// to arrive), and calls emit once per item, in input order. Memory is
// bounded by the channel's capacity plus one chunk. It returns when in is
// closed and drained, or emit fails.
func (e *Engine) RunStream(ctx context.Context, in <-chan StreamItem, chunk int, emit func(it *StreamItem, res Result) error) (err error) {
	var carry *StreamItem
	defer func() {
		if err == nil {
			return
		}
		// Ended early: items not produced give their budget back, including
		// those the reader still queues until it sees its context end.
		if carry != nil {
			carry.Hold.Release()
		}
		go func() {
			for it := range in {
				it.Hold.Release()
			}
		}()
	}()
	for {
		if e.closing.Load() {
			return ErrStopping
		}
		var first StreamItem
		if carry != nil {
			first, carry = *carry, nil
		} else {
			it, ok := <-in
			if !ok {
				return nil
			}
			first = it
		}
		items := []StreamItem{first}
		var g *Group
		if first.Pre == nil {
			g = &first.Group
		}
	drain:
		for len(items) < chunk {
			select {
			case it, ok := <-in:
				if !ok {
					break drain
				}
				if it.Pre == nil {
					if g == nil {
						g = &it.Group
					} else if it.Group != *g {
						carry = &it
						break drain
					}
				}
				items = append(items, it)
			default:
				break drain
			}
		}
		if g == nil {
			g = &Group{}
		}
		if err := e.produceChunk(ctx, *g, items, emit); err != nil {
			return err
		}
	}
}

func (e *Engine) produceChunk(ctx context.Context, g Group, items []StreamItem, emit func(*StreamItem, Result) error) error {
	b := &Batch{Topic: g.Topic, Value: g.Value, Format: g.Format, KeyFormat: g.KeyFormat, JSONKeys: g.JSONKeys}
	if g.HasKeySchema {
		ks := g.KeySchema
		b.KeySchema = &ks
	}
	var size, unpaid int64
	var held *Hold
	for i := range items {
		it := &items[i]
		if it.Pre != nil {
			it.Hold.Release() // answered below, from memory already read
			continue
		}
		b.Records = append(b.Records, it.Record)
		size += int64(it.Size)
		if it.Hold == nil {
			unpaid += int64(it.Size)
		} else if held == nil {
			held = it.Hold
		} else {
			held.Absorb(it.Hold)
		}
	}
	var (
		results []Result
		reqErr  *Error
	)
	if len(b.Records) > 0 {
		// The items' bytes (reserved while they were read, or now), plus
		// as much again for encoding them.
		arena := size + int64(len(b.Records))*recordOverhead
		hold := held
		var herr *Error
		if hold == nil {
			hold, herr = e.ReserveWait(ctx, unpaid+arena)
		} else {
			herr = hold.GrowWait(ctx, unpaid+arena)
		}
		if herr != nil {
			hold.Release()
			reqErr = herr
		} else {
			b.Hold, b.ArenaPaid = hold, arena
			res, err := e.Produce(ctx, b)
			if err != nil {
				reqErr = AsError(err)
			}
			results = res
		}
	}
	j := 0
	for i := range items {
		var r Result
		switch {
		case items[i].Pre != nil:
			r.Err = items[i].Pre
		case reqErr != nil:
			r.Err = reqErr
		default:
			r = results[j]
			j++
		}
		if err := emit(&items[i], r); err != nil {
			return err
		}
	}
	return nil
}
