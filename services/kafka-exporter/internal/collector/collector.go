package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/sluicehq/sluice/services/kafka-exporter/internal/kafka"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/lagtime"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/status"
)

// DefaultTopicConfigs are the topic configuration keys described each
// collection.
var DefaultTopicConfigs = []string{"cleanup.policy", "retention.ms", "retention.bytes", "min.insync.replicas"}

// Options configure a Collector; zero values take defaults.
type Options struct {
	Interval     time.Duration  // between collections; default 15s
	Timeout      time.Duration  // bound on one collection; default Interval
	TopicFilter  *regexp.Regexp // topics to collect; default all
	TopicExclude *regexp.Regexp // topics to skip; default none
	GroupFilter  *regexp.Regexp // groups to collect; default all
	GroupExclude *regexp.Regexp // groups to skip; default none
	Concurrency  int            // OffsetFetch requests in flight; default 8
	LagPoints    int            // points per partition in the lag-seconds table; default 60
	StatusWindow int            // observations per partition for group status; default 10
	TopicConfigs []string       // configuration keys to describe; nil: DefaultTopicConfigs; empty: none
	Now          func() time.Time
	// Render turns a snapshot into its exposition bytes, plain and gzipped.
	Render   func(*Snapshot) (plain, gzipped []byte)
	Logger   *slog.Logger
	Registry prometheus.Registerer // where the collector's own metrics go; nil: not registered
}

// Collector owns the background collection and the current snapshot.
type Collector struct {
	client *kafka.Client
	opts   Options
	sf     singleflight.Group
	cur    atomic.Pointer[Snapshot]
	start  time.Time

	mu     sync.Mutex // guards the history below; held by one collection at a time
	tables map[partKey]*lagtime.Table
	status *status.Tracker

	up          prometheus.Gauge
	lastSuccess prometheus.Gauge
	duration    prometheus.Histogram
	runs        *prometheus.CounterVec
	stageErrs   *prometheus.CounterVec
	lastSuccAt  atomic.Int64 // unix ns of the last fully successful collection
}

type partKey struct {
	topic     string
	partition int32
}

// New builds a Collector over client.
func New(client *kafka.Client, o Options) *Collector {
	if o.Interval <= 0 {
		o.Interval = 15 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = o.Interval
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.LagPoints <= 0 {
		o.LagPoints = lagtime.DefaultPoints
	}
	if o.StatusWindow <= 0 {
		o.StatusWindow = 10
	}
	if o.TopicConfigs == nil {
		o.TopicConfigs = DefaultTopicConfigs
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		client: client,
		opts:   o,
		start:  o.Now(),
		tables: map[partKey]*lagtime.Table{},
		status: status.NewTracker(o.StatusWindow),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_exporter_up", Help: "1 when the last collection succeeded completely, 0 when any query failed.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_exporter_last_success_timestamp_seconds", Help: "Unix time the last fully successful collection started.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_exporter_collection_duration_seconds", Help: "Time one collection took.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_exporter_collections_total", Help: "Collections run, by result (success or error).",
		}, []string{"result"}),
		stageErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_exporter_collection_errors_total", Help: "Failed queries, by stage (metadata, groups, offsets, configs).",
		}, []string{"stage"}),
	}
	if o.Registry != nil {
		age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_exporter_snapshot_age_seconds",
			Help: "Seconds since the served snapshot's collection started (since process start before the first one).",
		}, func() float64 {
			if s := c.cur.Load(); s != nil {
				return o.Now().Sub(s.Time).Seconds()
			}
			return o.Now().Sub(c.start).Seconds()
		})
		o.Registry.MustRegister(c.up, c.lastSuccess, c.duration, c.runs, c.stageErrs, age)
	}
	c.runs.WithLabelValues("success")
	c.runs.WithLabelValues("error")
	for _, s := range []string{"metadata", "groups", "offsets", "configs"} {
		c.stageErrs.WithLabelValues(s)
	}
	return c
}

// Current returns the latest snapshot, or nil before the first collection.
func (c *Collector) Current() *Snapshot { return c.cur.Load() }

// Run collects every Interval until ctx is cancelled.
func (c *Collector) Run(ctx context.Context) error {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		if _, err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.opts.Logger.Warn("collection failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Refresh runs a collection now, or joins the one in flight, and returns
// the snapshot it published.
func (c *Collector) Refresh(ctx context.Context) (*Snapshot, error) {
	ch := c.sf.DoChan("collect", func() (any, error) {
		// Detached from the first caller so its cancellation does not fail
		// the others; bounded by Timeout instead.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		defer cancel()
		return c.collect(cctx)
	})
	select {
	case r := <-ch:
		s, _ := r.Val.(*Snapshot)
		return s, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// errs collects stage errors from concurrent queries.
type errs struct {
	mu   sync.Mutex
	list []error
	c    *Collector
}

func (e *errs) add(stage string, err error) {
	e.c.stageErrs.WithLabelValues(stage).Inc()
	e.mu.Lock()
	e.list = append(e.list, fmt.Errorf("%s: %w", stage, err))
	e.mu.Unlock()
}

func (c *Collector) collect(ctx context.Context) (*Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := c.opts.Now()
	wall := time.Now()
	snap, err := c.gather(ctx, start)
	if snap == nil {
		c.duration.Observe(time.Since(wall).Seconds())
		c.runs.WithLabelValues("error").Inc()
		c.up.Set(0)
		return nil, err
	}
	snap.Err = err
	if c.opts.Render != nil {
		snap.Rendered, snap.Gzipped = c.opts.Render(snap)
	}
	snap.Duration = time.Since(wall)
	c.duration.Observe(snap.Duration.Seconds())
	c.cur.Store(snap)
	if err != nil {
		c.runs.WithLabelValues("error").Inc()
		c.up.Set(0)
		return snap, err
	}
	c.runs.WithLabelValues("success").Inc()
	c.up.Set(1)
	c.lastSuccess.Set(float64(start.UnixNano()) / 1e9)
	return snap, nil
}

func (c *Collector) topicWanted(name string) bool {
	if c.opts.TopicFilter != nil && !c.opts.TopicFilter.MatchString(name) {
		return false
	}
	return c.opts.TopicExclude == nil || !c.opts.TopicExclude.MatchString(name)
}

func (c *Collector) groupWanted(id string) bool {
	if c.opts.GroupFilter != nil && !c.opts.GroupFilter.MatchString(id) {
		return false
	}
	return c.opts.GroupExclude == nil || !c.opts.GroupExclude.MatchString(id)
}

// groupData is what the group queries returned for one group.
type groupData struct {
	desc    kafka.GroupDescription
	offsets []kafka.CommittedOffset
	ok      bool // offsets fetched
}

// gather runs every query. A nil snapshot means nothing usable came back
// (metadata failed); otherwise the error lists the partial failures.
func (c *Collector) gather(ctx context.Context, now time.Time) (*Snapshot, error) {
	md, err := c.client.Metadata(ctx)
	if err != nil {
		c.stageErrs.WithLabelValues("metadata").Inc()
		return nil, fmt.Errorf("metadata: %w", err)
	}
	e := &errs{c: c}
	snap := &Snapshot{Time: now, ClusterID: md.ClusterID, ControllerID: md.ControllerID}
	addrs := make(map[int32]string, len(md.Brokers))
	for _, b := range md.Brokers {
		addrs[b.ID] = b.Addr()
		snap.Brokers = append(snap.Brokers, Broker{ID: b.ID, Addr: b.Addr(), Rack: b.Rack})
	}
	sort.Slice(snap.Brokers, func(i, j int) bool { return snap.Brokers[i].ID < snap.Brokers[j].ID })

	// Topics and partitions, and which leader to ask for each.
	byLeader := map[int32]map[string][]int32{}
	for _, t := range md.Topics {
		if t.Err != nil || !c.topicWanted(t.Name) {
			if t.Err != nil && c.topicWanted(t.Name) {
				e.add("metadata", fmt.Errorf("topic %s: %w", t.Name, t.Err))
			}
			continue
		}
		tt := Topic{Name: t.Name, Internal: t.Internal, Partitions: make([]Partition, 0, len(t.Partitions))}
		for _, p := range t.Partitions {
			pp := Partition{ID: p.ID, Leader: p.Leader, Replicas: len(p.Replicas), ISR: len(p.ISR)}
			if _, known := addrs[p.Leader]; !known {
				pp.Leader = -1
			}
			pp.PreferredLeader = pp.Leader >= 0 && len(p.Replicas) > 0 && p.Replicas[0] == pp.Leader
			if pp.Leader >= 0 {
				m := byLeader[pp.Leader]
				if m == nil {
					m = map[string][]int32{}
					byLeader[pp.Leader] = m
				}
				m[t.Name] = append(m[t.Name], p.ID)
			}
			tt.Partitions = append(tt.Partitions, pp)
		}
		sort.Slice(tt.Partitions, func(i, j int) bool { return tt.Partitions[i].ID < tt.Partitions[j].ID })
		snap.Topics = append(snap.Topics, tt)
	}
	sort.Slice(snap.Topics, func(i, j int) bool { return snap.Topics[i].Name < snap.Topics[j].Name })
	topicIdx := make(map[string]int, len(snap.Topics))
	for i, t := range snap.Topics {
		topicIdx[t.Name] = i
	}

	// Group offsets first, then log end offsets: a commit can then never be
	// ahead of the end offset it is compared with.
	groups := c.gatherGroups(ctx, md.Brokers, e)
	c.gatherOffsets(ctx, snap, topicIdx, byLeader, addrs, e)
	c.gatherConfigs(ctx, snap, md.Brokers, e)
	c.buildGroups(snap, topicIdx, groups, now)
	c.updateTables(snap, now)
	return snap, errors.Join(e.list...)
}

func (c *Collector) gatherGroups(ctx context.Context, brokers []kafka.Broker, e *errs) []*groupData {
	// ListGroups on every broker: each lists the groups it coordinates.
	type listing struct {
		addr string
		ids  []string
	}
	lists := make([]listing, len(brokers))
	var wg sync.WaitGroup
	for i, b := range brokers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gs, err := c.client.ListGroups(ctx, b.Addr())
			if err != nil {
				e.add("groups", err)
				return
			}
			lists[i].addr = b.Addr()
			for _, g := range gs {
				if c.groupWanted(g.ID) {
					lists[i].ids = append(lists[i].ids, g.ID)
				}
			}
		}()
	}
	wg.Wait()

	seen := map[string]bool{}
	var out []*groupData
	var mu sync.Mutex
	sem := make(chan struct{}, c.opts.Concurrency)
	for _, l := range lists {
		var ids []string
		for _, id := range l.ids {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), 100)]
			ids = ids[len(chunk):]
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				descs, err := c.client.DescribeGroups(ctx, l.addr, chunk)
				<-sem
				if err != nil {
					e.add("groups", err)
					return
				}
				for _, d := range descs {
					if d.Err != nil {
						e.add("groups", fmt.Errorf("describe group %s: %w", d.ID, d.Err))
						continue
					}
					gd := &groupData{desc: d}
					mu.Lock()
					out = append(out, gd)
					mu.Unlock()
					wg.Add(1)
					go func() {
						defer wg.Done()
						sem <- struct{}{}
						defer func() { <-sem }()
						offs, err := c.client.OffsetFetch(ctx, l.addr, d.ID)
						if err != nil {
							e.add("groups", fmt.Errorf("offsets of group %s: %w", d.ID, err))
							return
						}
						gd.offsets, gd.ok = offs, true
					}()
				}
			}()
		}
	}
	wg.Wait()
	return out
}

func (c *Collector) gatherOffsets(ctx context.Context, snap *Snapshot, topicIdx map[string]int, byLeader map[int32]map[string][]int32, addrs map[int32]string, e *errs) {
	type result struct {
		ts   int64
		offs []kafka.PartitionOffset
	}
	results := make(chan result, 2*len(byLeader))
	var wg sync.WaitGroup
	for leader, parts := range byLeader {
		for _, ts := range []int64{kafka.Latest, kafka.Earliest} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				offs, err := c.client.ListOffsets(ctx, addrs[leader], parts, ts)
				if err != nil {
					e.add("offsets", fmt.Errorf("broker %d: %w", leader, err))
					return
				}
				results <- result{ts, offs}
			}()
		}
	}
	wg.Wait()
	close(results)
	for r := range results {
		for _, po := range r.offs {
			if po.Err != nil {
				e.add("offsets", fmt.Errorf("%s/%d: %w", po.Topic, po.Partition, po.Err))
				continue
			}
			ti, ok := topicIdx[po.Topic]
			if !ok {
				continue
			}
			p := findPartition(snap.Topics[ti].Partitions, po.Partition)
			if p == nil {
				continue
			}
			if r.ts == kafka.Latest {
				p.Newest, p.NewestOK = po.Offset, true
			} else {
				p.Oldest, p.OldestOK = po.Offset, true
			}
		}
	}
}

// findPartition finds id in ps (sorted by id; usually dense, so try the
// index first).
func findPartition(ps []Partition, id int32) *Partition {
	if int(id) < len(ps) && id >= 0 && ps[id].ID == id {
		return &ps[id]
	}
	i := sort.Search(len(ps), func(i int) bool { return ps[i].ID >= id })
	if i < len(ps) && ps[i].ID == id {
		return &ps[i]
	}
	return nil
}

func (c *Collector) gatherConfigs(ctx context.Context, snap *Snapshot, brokers []kafka.Broker, e *errs) {
	if len(c.opts.TopicConfigs) == 0 || len(snap.Topics) == 0 || len(brokers) == 0 {
		return
	}
	names := make([]string, len(snap.Topics))
	for i, t := range snap.Topics {
		names[i] = t.Name
	}
	// Any broker answers for topic configs.
	cfgs, err := c.client.TopicConfigs(ctx, brokers[0].Addr(), names, c.opts.TopicConfigs)
	if err != nil {
		e.add("configs", err)
	}
	for i := range snap.Topics {
		snap.Topics[i].Config = cfgs[snap.Topics[i].Name]
	}
}

// buildGroups applies kafka_exporter's rules: a group reports a topic when
// it has committed an offset in at least one of its partitions; every
// partition of such a topic is then reported, -1 where nothing was
// committed.
func (c *Collector) buildGroups(snap *Snapshot, topicIdx map[string]int, groups []*groupData, now time.Time) {
	c.status.Begin()
	snap.Groups = make([]Group, 0, len(groups))
	for _, gd := range groups {
		g := Group{ID: gd.desc.ID, State: gd.desc.State, ProtocolType: gd.desc.ProtocolType, Members: gd.desc.Members}
		committed := map[string]map[int32]int64{}
		failed := map[status.PartitionKey]bool{}
		for _, o := range gd.offsets {
			if o.Err != nil {
				// Unknown, not "no commit": leave the partition out, as
				// kafka_exporter does.
				failed[status.PartitionKey{Topic: o.Topic, Partition: o.Partition}] = true
				c.opts.Logger.Debug("committed offset unavailable", "group", gd.desc.ID, "topic", o.Topic, "partition", o.Partition, "err", o.Err)
				continue
			}
			if o.Offset < 0 {
				continue
			}
			if _, ok := topicIdx[o.Topic]; !ok {
				continue
			}
			m := committed[o.Topic]
			if m == nil {
				m = map[int32]int64{}
				committed[o.Topic] = m
			}
			m[o.Partition] = o.Offset
		}
		for topic, offs := range committed {
			t := &snap.Topics[topicIdx[topic]]
			gt := GroupTopic{Name: topic, Partitions: make([]GroupPartition, 0, len(t.Partitions))}
			for _, p := range t.Partitions {
				if failed[status.PartitionKey{Topic: topic, Partition: p.ID}] {
					continue
				}
				gp := GroupPartition{ID: p.ID, Committed: -1, Lag: -1}
				off, has := offs[p.ID]
				if has {
					gp.Committed = off
				}
				if p.NewestOK {
					gp.LagOK = true
					if has {
						gp.Lag = max(p.Newest-off, 0)
						c.status.Observe(g.ID, status.PartitionKey{Topic: topic, Partition: p.ID},
							status.Observation{Time: now, Committed: off, End: p.Newest})
					}
				}
				gt.Partitions = append(gt.Partitions, gp)
			}
			g.Topics = append(g.Topics, gt)
		}
		sort.Slice(g.Topics, func(i, j int) bool { return g.Topics[i].Name < g.Topics[j].Name })
		snap.Groups = append(snap.Groups, g)
	}
	c.status.End()
	for i := range snap.Groups {
		snap.Groups[i].Status = c.status.Evaluate(snap.Groups[i].ID, now, snap.Groups[i].Members)
	}
	sort.Slice(snap.Groups, func(i, j int) bool { return snap.Groups[i].ID < snap.Groups[j].ID })
}

// updateTables records each partition's log end offset in its lag table
// and fills in every group's lag in seconds.
func (c *Collector) updateTables(snap *Snapshot, now time.Time) {
	live := make(map[partKey]bool, len(c.tables))
	for _, t := range snap.Topics {
		for _, p := range t.Partitions {
			k := partKey{t.Name, p.ID}
			live[k] = true // kept through a failed ListOffsets
			if !p.NewestOK {
				continue
			}
			tbl := c.tables[k]
			if tbl == nil {
				tbl = lagtime.NewTable(c.opts.LagPoints)
				c.tables[k] = tbl
			}
			tbl.Add(p.Newest, now)
		}
	}
	for k := range c.tables {
		if !live[k] {
			delete(c.tables, k)
		}
	}
	for gi := range snap.Groups {
		for ti := range snap.Groups[gi].Topics {
			gt := &snap.Groups[gi].Topics[ti]
			for pi := range gt.Partitions {
				gp := &gt.Partitions[pi]
				if tbl := c.tables[partKey{gt.Name, gp.ID}]; tbl != nil && gp.Committed >= 0 {
					gp.LagSeconds, gp.LagSecOK = tbl.Lag(gp.Committed, now)
				}
			}
		}
	}
}
