// Package probe measures the cluster end to end: it produces a record to
// every partition of a probe topic (one partition led by each broker) each
// round, consumes them back, and records produce and round-trip latency,
// failures and records never seen again.
package probe

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	ikafka "github.com/sluicehq/sluice/services/kafka-exporter/internal/kafka"
)

// Options configure the probe; zero values take defaults.
type Options struct {
	Topic             string        // default _sluice_probe
	Interval          time.Duration // between rounds; default 5s
	Timeout           time.Duration // a record not back within this is lost; default 10s
	ReplicationFactor int           // for a new probe topic; 0 or -1: broker default
	Registry          prometheus.Registerer
	Logger            *slog.Logger
	Now               func() time.Time
}

// Prober runs probe rounds.
type Prober struct {
	kc    *skafka.Clients
	admin *ikafka.Client
	o     Options
	runID uint64

	mu      sync.Mutex
	pending map[uint64]time.Time // sequence -> send time
	seq     uint64
	ready   bool

	produceDur   prometheus.Histogram
	roundTrip    prometheus.Histogram
	sent         prometheus.Counter
	received     prometheus.Counter
	lost         prometheus.Counter
	failures     prometheus.Counter
	setupErrors  prometheus.Counter
	partitions   prometheus.Gauge
	brokersCover prometheus.Gauge
}

// header carrying the target partition to the writer's balancer.
const partitionHeader = "sluice-probe-partition"

// New builds a Prober that uses kc to produce and consume and admin for
// metadata.
func New(kc *skafka.Clients, admin *ikafka.Client, o Options) *Prober {
	if o.Topic == "" {
		o.Topic = "_sluice_probe"
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = -1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	p := &Prober{
		kc: kc, admin: admin, o: o, runID: uint64(time.Now().UnixNano()), pending: map[uint64]time.Time{},
		produceDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_exporter_probe_produce_duration_seconds", Help: "Time to produce one probe record with acks=all.", Buckets: buckets,
		}),
		roundTrip: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_exporter_probe_roundtrip_duration_seconds", Help: "Time from producing a probe record to consuming it back.", Buckets: buckets,
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_exporter_probe_records_sent_total", Help: "Probe records acknowledged by the brokers.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_exporter_probe_records_received_total", Help: "Probe records consumed back in time.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_exporter_probe_records_lost_total", Help: "Acknowledged probe records not consumed back within the probe timeout.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_exporter_probe_produce_failures_total", Help: "Probe records the brokers did not acknowledge.",
		}),
		setupErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_exporter_probe_setup_errors_total", Help: "Failed attempts to create or inspect the probe topic.",
		}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_exporter_probe_partitions", Help: "Partitions of the probe topic being probed.",
		}),
		brokersCover: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_exporter_probe_brokers_covered", Help: "Brokers leading at least one probe partition.",
		}),
	}
	if o.Registry != nil {
		o.Registry.MustRegister(p.produceDur, p.roundTrip, p.sent, p.received, p.lost, p.failures, p.setupErrors, p.partitions, p.brokersCover)
	}
	return p
}

// Ready reports whether the probe topic is set up and consumers run.
func (p *Prober) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready
}

// Run sets up the probe topic (retrying each interval until it works),
// then runs a round every interval until ctx is cancelled.
func (p *Prober) Run(ctx context.Context) error {
	var parts []int
	var starts map[int]int64
	for {
		var err error
		if parts, err = p.setup(ctx); err == nil {
			if starts, err = p.endOffsets(ctx); err == nil {
				break
			}
		}
		p.setupErrors.Inc()
		p.o.Logger.Warn("probe setup failed, retrying", "topic", p.o.Topic, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.o.Interval):
		}
	}
	w := p.kc.NewWriter(skafka.WriterOptions{
		Topic:        p.o.Topic,
		Balancer:     kafkago.BalancerFunc(headerPartition),
		BatchSize:    1,
		BatchTimeout: time.Millisecond,
		MaxAttempts:  1, // a retry would hide the failure the probe exists to see
	})
	// Its own transport: metadata fetched after setup moved leaders, and
	// refreshed often so a leader change shows within a few rounds.
	base := p.kc.Transport
	tr := &kafkago.Transport{
		Dial: base.Dial, DialTimeout: base.DialTimeout, IdleTimeout: base.IdleTimeout, ClientID: base.ClientID,
		TLS: base.TLS, SASL: base.SASL, MetadataTTL: max(p.o.Interval, time.Second),
	}
	w.Transport = tr
	defer func() { _ = w.Close(); tr.CloseIdleConnections() }()

	var wg sync.WaitGroup
	defer wg.Wait()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, part := range parts {
		start := starts[part]
		r := kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: p.kc.Brokers(), Topic: p.o.Topic, Partition: part, Dialer: p.kc.Dialer,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 250 * time.Millisecond,
			ReadBackoffMin: 20 * time.Millisecond, ReadBackoffMax: 250 * time.Millisecond,
		})
		if err := r.SetOffset(start); err != nil {
			_ = r.Close()
			return fmt.Errorf("probe: positioning reader on %s/%d: %w", p.o.Topic, part, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = r.Close() }()
			p.consume(cctx, r)
		}()
	}
	p.mu.Lock()
	p.ready = true
	p.mu.Unlock()

	t := time.NewTicker(p.o.Interval)
	defer t.Stop()
	for {
		p.round(ctx, w, parts)
		p.sweep()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// setup ensures the probe topic has at least one partition per broker and
// returns its partitions.
func (p *Prober) setup(ctx context.Context) ([]int, error) {
	md, err := p.admin.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	want := max(len(md.Brokers), 1)
	info, err := p.kc.EnsureTopic(ctx, skafka.TopicSpec{Name: p.o.Topic, Partitions: want, ReplicationFactor: p.o.ReplicationFactor})
	if err != nil {
		return nil, err
	}
	if info.Partitions < want {
		res, err := p.kc.Admin.CreatePartitions(ctx, &kafkago.CreatePartitionsRequest{
			Topics: []kafkago.TopicPartitionsConfig{{Name: p.o.Topic, Count: int32(want)}},
		})
		if err == nil {
			err = res.Errors[p.o.Topic]
		}
		if err != nil {
			return nil, fmt.Errorf("growing probe topic %s to %d partitions: %w", p.o.Topic, want, err)
		}
	}
	parts, leaders, err := p.layout(ctx)
	if err != nil {
		return nil, err
	}
	if len(leaders) < len(md.Brokers) {
		// Move leadership so every broker leads a probe partition: the
		// probe then measures every broker's produce path.
		if err := p.spread(ctx, md.Brokers); err != nil {
			p.o.Logger.Warn("spreading probe partition leaders", "topic", p.o.Topic, "err", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(leaders) < len(md.Brokers) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			if parts, leaders, err = p.layout(ctx); err != nil {
				return nil, err
			}
		}
	}
	p.partitions.Set(float64(len(parts)))
	p.brokersCover.Set(float64(len(leaders)))
	return parts, nil
}

// layout returns the probe topic's partitions and the brokers leading them.
func (p *Prober) layout(ctx context.Context) ([]int, map[int32]bool, error) {
	md, err := p.admin.Metadata(ctx)
	if err != nil {
		return nil, nil, err
	}
	var parts []int
	leaders := map[int32]bool{}
	for _, t := range md.Topics {
		if t.Name != p.o.Topic {
			continue
		}
		for _, pp := range t.Partitions {
			parts = append(parts, int(pp.ID))
			if pp.Leader >= 0 {
				leaders[pp.Leader] = true
			}
		}
	}
	if len(parts) == 0 {
		return nil, nil, fmt.Errorf("probe topic %s has no partitions in metadata yet", p.o.Topic)
	}
	sort.Ints(parts)
	return parts, leaders, nil
}

// spread reassigns partitions led by a broker that leads more than one so
// that each broker without a probe partition becomes a preferred leader,
// then asks for a preferred leader election.
func (p *Prober) spread(ctx context.Context, brokers []ikafka.Broker) error {
	md, err := p.admin.Metadata(ctx)
	if err != nil {
		return err
	}
	var parts []ikafka.Partition
	for _, t := range md.Topics {
		if t.Name == p.o.Topic {
			parts = t.Partitions
		}
	}
	count := map[int32]int{}
	for _, pp := range parts {
		count[pp.Leader]++
	}
	var assign []kafkago.AlterPartitionReassignmentsRequestAssignment
	var moved []int
	for _, b := range brokers {
		if count[b.ID] > 0 {
			continue
		}
		for i := range parts {
			q := &parts[i]
			if count[q.Leader] < 2 {
				continue
			}
			ids := []int{int(b.ID)}
			for _, r := range q.Replicas {
				if r != b.ID && len(ids) < max(len(q.Replicas), 1) {
					ids = append(ids, int(r))
				}
			}
			assign = append(assign, kafkago.AlterPartitionReassignmentsRequestAssignment{Topic: p.o.Topic, PartitionID: int(q.ID), BrokerIDs: ids})
			moved = append(moved, int(q.ID))
			count[q.Leader]--
			count[b.ID]++
			q.Leader = b.ID
			break
		}
	}
	if len(assign) == 0 {
		return nil
	}
	res, err := p.kc.Admin.AlterPartitionReassignments(ctx, &kafkago.AlterPartitionReassignmentsRequest{Topic: p.o.Topic, Assignments: assign, Timeout: 10 * time.Second})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return fmt.Errorf("reassigning probe partitions %v: %w", moved, err)
	}
	el, err := p.kc.Admin.ElectLeaders(ctx, &kafkago.ElectLeadersRequest{Topic: p.o.Topic, Partitions: moved, Timeout: 10 * time.Second})
	if err == nil {
		err = el.Error
	}
	if err != nil {
		return fmt.Errorf("electing preferred leaders of probe partitions %v: %w", moved, err)
	}
	return nil
}

// endOffsets asks each probe partition's current leader for its end
// offset, where the consumers start.
func (p *Prober) endOffsets(ctx context.Context) (map[int]int64, error) {
	md, err := p.admin.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	addrs := map[int32]string{}
	for _, b := range md.Brokers {
		addrs[b.ID] = b.Addr()
	}
	out := map[int]int64{}
	for _, t := range md.Topics {
		if t.Name != p.o.Topic {
			continue
		}
		for _, pp := range t.Partitions {
			addr, ok := addrs[pp.Leader]
			if !ok {
				return nil, fmt.Errorf("probe partition %d has no leader", pp.ID)
			}
			res, err := p.admin.ListOffsets(ctx, addr, map[string][]int32{p.o.Topic: {pp.ID}}, ikafka.Latest)
			if err != nil {
				return nil, err
			}
			if len(res) != 1 || res[0].Err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %v", p.o.Topic, pp.ID, res)
			}
			out[int(pp.ID)] = res[0].Offset
		}
	}
	return out, nil
}

func headerPartition(msg kafkago.Message, partitions ...int) int {
	for _, h := range msg.Headers {
		if h.Key == partitionHeader && len(h.Value) == 4 {
			return int(binary.BigEndian.Uint32(h.Value))
		}
	}
	return partitions[0]
}

// round produces one record to every partition concurrently.
func (p *Prober) round(ctx context.Context, w *kafkago.Writer, parts []int) {
	var wg sync.WaitGroup
	for _, part := range parts {
		p.mu.Lock()
		p.seq++
		seq := p.seq
		p.mu.Unlock()
		val := make([]byte, 16)
		binary.BigEndian.PutUint64(val, p.runID)
		binary.BigEndian.PutUint64(val[8:], seq)
		hp := make([]byte, 4)
		binary.BigEndian.PutUint32(hp, uint32(part))
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
			defer cancel()
			sent := p.o.Now()
			p.mu.Lock()
			p.pending[seq] = sent
			p.mu.Unlock()
			err := w.WriteMessages(wctx, kafkago.Message{Value: val, Headers: []kafkago.Header{{Key: partitionHeader, Value: hp}}})
			if err != nil {
				p.mu.Lock()
				delete(p.pending, seq)
				p.mu.Unlock()
				if ctx.Err() == nil {
					p.failures.Inc()
					p.o.Logger.Warn("probe produce failed", "topic", p.o.Topic, "partition", part, "err", err)
				}
				return
			}
			p.produceDur.Observe(p.o.Now().Sub(sent).Seconds())
			p.sent.Inc()
		}()
	}
	wg.Wait()
}

// consume reads probe records back until ctx ends.
func (p *Prober) consume(ctx context.Context, r *kafkago.Reader) {
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if len(m.Value) != 16 || binary.BigEndian.Uint64(m.Value) != p.runID {
			continue // another exporter's record, or an older run's
		}
		seq := binary.BigEndian.Uint64(m.Value[8:])
		now := p.o.Now()
		p.mu.Lock()
		sent, ok := p.pending[seq]
		delete(p.pending, seq)
		p.mu.Unlock()
		if ok {
			p.roundTrip.Observe(now.Sub(sent).Seconds())
			p.received.Inc()
		}
	}
}

// sweep counts records pending longer than the timeout as lost.
func (p *Prober) sweep() {
	now := p.o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq, sent := range p.pending {
		if now.Sub(sent) > p.o.Timeout {
			delete(p.pending, seq)
			p.lost.Inc()
		}
	}
}
