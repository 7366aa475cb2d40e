package sink

import (
	"context"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// fetcher is one partition reader feeding a channel, so the partition
// loop can select on records, ticks, parks and shutdown together.
type fetcher struct {
	r      *kafkago.Reader
	msgs   chan kafkago.Message
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *partition) startFetcher(ctx context.Context, offset int64) *fetcher {
	o := p.r.o
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        o.Brokers,
		Topic:          p.tp.Topic,
		Partition:      p.tp.Partition,
		Dialer:         o.Dialer,
		MinBytes:       1,
		MaxBytes:       o.FetchMaxBytes,
		MaxWait:        o.FetchMaxWait,
		QueueCapacity:  256,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		IsolationLevel: kafkago.ReadUncommitted,
	})
	fctx, cancel := context.WithCancel(ctx)
	f := &fetcher{r: r, msgs: make(chan kafkago.Message, o.MaxBatch), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		defer close(f.msgs)
		if err := r.SetOffset(offset); err != nil {
			p.log.Error("setting the start offset", "offset", offset, "err", err)
			return
		}
		for {
			m, err := r.FetchMessage(fctx)
			if err != nil {
				if fctx.Err() == nil {
					p.log.Warn("fetching", "err", err)
				}
				return
			}
			select {
			case f.msgs <- m:
			case <-fctx.Done():
				return
			}
		}
	}()
	return f
}

// stop ends the fetch loop and closes the reader; safe to call twice.
func (f *fetcher) stop() {
	f.cancel()
	<-f.done
	_ = f.r.Close()
}
