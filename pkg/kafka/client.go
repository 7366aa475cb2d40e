package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/deadletter"
)

// WriterOptions tune a producer; zero values take Sluice's defaults.
type WriterOptions struct {
	Topic        string           // empty: each message names its topic
	Balancer     kafkago.Balancer // default: Murmur2 on the key, as Java clients do
	BatchSize    int              // default 1000 messages
	BatchBytes   int64            // default 1 MiB
	BatchTimeout time.Duration    // default 5ms
	Compression  kafkago.Compression
	Async        bool
	Completion   func(messages []kafkago.Message, err error)
	MaxAttempts  int // default 5
}

// NewWriter returns a writer that always requires acks from all in-sync
// replicas: a kafka.Writer{} literal defaults to no acks, which would break
// Sluice's delivery promise.
func (c *Clients) NewWriter(o WriterOptions) *kafkago.Writer {
	if o.Balancer == nil {
		o.Balancer = &kafkago.Murmur2Balancer{Consistent: true}
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 1 << 20
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 5 * time.Millisecond
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	ttl := c.Transport.MetadataTTL
	if ttl <= 0 {
		ttl = 6 * time.Second // kafka-go's default
	}
	return &kafkago.Writer{
		Addr:                   kafkago.TCP(c.cfg.Brokers...),
		Topic:                  o.Topic,
		Balancer:               o.Balancer,
		MaxAttempts:            o.MaxAttempts,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        time.Second,
		BatchSize:              o.BatchSize,
		BatchBytes:             o.BatchBytes,
		BatchTimeout:           o.BatchTimeout,
		RequiredAcks:           kafkago.RequireAll,
		Async:                  o.Async,
		Completion:             o.Completion,
		Compression:            o.Compression,
		Transport:              newTopicMetaCache(c.Transport, ttl),
		AllowAutoTopicCreation: false,
	}
}

// ReaderOptions configure a consumer-group reader.
type ReaderOptions struct {
	GroupID          string
	Topics           []string
	StartOffset      int64         // kafka.FirstOffset (default) or kafka.LastOffset for new groups
	MinBytes         int           // default 1
	MaxBytes         int           // default 10 MiB
	MaxWait          time.Duration // default 500ms
	SessionTimeout   time.Duration // default 30s
	RebalanceTimeout time.Duration // default 30s
	QueueCapacity    int
}

// NewReader returns a consumer-group reader whose offsets move only when the
// caller commits them explicitly (CommitInterval 0, FetchMessage +
// CommitMessages), so sinks commit only after their writes are durable.
func (c *Clients) NewReader(o ReaderOptions) (*kafkago.Reader, error) {
	if o.GroupID == "" {
		return nil, errors.New("kafka reader: group id is required")
	}
	if len(o.Topics) == 0 {
		return nil, errors.New("kafka reader: at least one topic is required")
	}
	if o.StartOffset == 0 {
		o.StartOffset = kafkago.FirstOffset
	}
	if o.MinBytes <= 0 {
		o.MinBytes = 1
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 10 << 20
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 500 * time.Millisecond
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 30 * time.Second
	}
	if o.RebalanceTimeout <= 0 {
		o.RebalanceTimeout = 30 * time.Second
	}
	cfg := kafkago.ReaderConfig{
		Brokers:                c.cfg.Brokers,
		GroupID:                o.GroupID,
		GroupTopics:            o.Topics,
		Dialer:                 c.Dialer,
		StartOffset:            o.StartOffset,
		MinBytes:               o.MinBytes,
		MaxBytes:               o.MaxBytes,
		MaxWait:                o.MaxWait,
		SessionTimeout:         o.SessionTimeout,
		RebalanceTimeout:       o.RebalanceTimeout,
		HeartbeatInterval:      3 * time.Second,
		CommitInterval:         0,
		QueueCapacity:          o.QueueCapacity,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		ReadBackoffMin:         50 * time.Millisecond,
		ReadBackoffMax:         time.Second,
		IsolationLevel:         kafkago.ReadUncommitted,
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka reader config: %w", err)
	}
	return kafkago.NewReader(cfg), nil
}

// TopicSpec describes a topic to ensure.
type TopicSpec struct {
	Name              string
	Partitions        int
	ReplicationFactor int // -1: broker default
	Configs           map[string]string
}

// TopicInfo is what EnsureTopic found or created.
type TopicInfo struct {
	Name       string
	Partitions int
	Created    bool
}

// ErrTopicNotFound is returned by Describe for a topic the cluster does not have.
var ErrTopicNotFound = errors.New("topic not found")

// DescribeTopic returns the partition count of a topic, or ErrTopicNotFound.
func (c *Clients) DescribeTopic(ctx context.Context, name string) (TopicInfo, error) {
	md, err := c.Admin.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{name}})
	if err != nil {
		return TopicInfo{}, fmt.Errorf("metadata for topic %s: %w", name, err)
	}
	for _, t := range md.Topics {
		if t.Name != name {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafkago.UnknownTopicOrPartition) {
				return TopicInfo{}, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
			}
			return TopicInfo{}, fmt.Errorf("metadata for topic %s: %w", name, t.Error)
		}
		return TopicInfo{Name: name, Partitions: len(t.Partitions)}, nil
	}
	return TopicInfo{}, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
}

// EnsureTopic creates the topic if it does not exist; an existing topic is
// left as it is and described. Safe to call concurrently from many replicas.
func (c *Clients) EnsureTopic(ctx context.Context, spec TopicSpec) (TopicInfo, error) {
	info, err := c.DescribeTopic(ctx, spec.Name)
	if err == nil {
		return info, nil
	}
	if !errors.Is(err, ErrTopicNotFound) {
		return TopicInfo{}, err
	}
	if spec.Partitions <= 0 {
		spec.Partitions = 1
	}
	if spec.ReplicationFactor == 0 {
		spec.ReplicationFactor = -1
	}
	tc := kafkago.TopicConfig{Topic: spec.Name, NumPartitions: spec.Partitions, ReplicationFactor: spec.ReplicationFactor}
	for k, v := range spec.Configs {
		tc.ConfigEntries = append(tc.ConfigEntries, kafkago.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	res, err := c.Admin.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{tc}})
	if err != nil {
		return TopicInfo{}, fmt.Errorf("creating topic %s: %w", spec.Name, err)
	}
	created := true
	if terr := res.Errors[spec.Name]; terr != nil {
		if !errors.Is(terr, kafkago.TopicAlreadyExists) {
			return TopicInfo{}, fmt.Errorf("creating topic %s: %w", spec.Name, terr)
		}
		created = false
	}
	// Metadata can lag creation briefly; poll until the topic is visible.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err = c.DescribeTopic(ctx, spec.Name)
		if err == nil {
			info.Created = created
			return info, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return TopicInfo{}, fmt.Errorf("topic %s created but not visible: %w", spec.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TopicConfigs returns the named topic's configuration entries.
func (c *Clients) TopicConfigs(ctx context.Context, name string) (map[string]string, error) {
	res, err := c.Admin.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{
		Resources: []kafkago.DescribeConfigRequestResource{{ResourceType: kafkago.ResourceTypeTopic, ResourceName: name}},
	})
	if err != nil {
		return nil, fmt.Errorf("describing configs of %s: %w", name, err)
	}
	out := map[string]string{}
	for _, r := range res.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("describing configs of %s: %w", name, r.Error)
		}
		for _, e := range r.ConfigEntries {
			out[e.ConfigName] = e.ConfigValue
		}
	}
	return out, nil
}

// Ping opens a fresh connection to a bootstrap broker (TCP, TLS and SASL
// included) and asks it for the broker list within timeout. It is the
// readiness probe for services that need Kafka; a pooled connection would
// hide a broker that has gone away.
func (c *Clients) Ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	for _, b := range c.cfg.Brokers {
		conn, err := c.Dialer.DialContext(ctx, "tcp", b)
		if err != nil {
			errs = append(errs, fmt.Errorf("dialing %s: %w", b, err))
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		brokers, err := conn.Brokers()
		_ = conn.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("metadata from %s: %w", b, err))
			continue
		}
		if len(brokers) == 0 {
			errs = append(errs, fmt.Errorf("metadata from %s: no brokers", b))
			continue
		}
		return nil
	}
	return fmt.Errorf("kafka unreachable: %w", errors.Join(errs...))
}

// PartitionKey formats "<topic>+<partition>+<offset>", the id shape the
// sinks use for objects and documents.
func PartitionKey(topic string, partition int, offset int64) string {
	return topic + "+" + strconv.Itoa(partition) + "+" + strconv.FormatInt(offset, 10)
}

// IsInternal reports whether a topic is internal to Kafka or to Sluice (a
// leading underscore: __consumer_offsets, _schemas, the exporter's probe).
func IsInternal(topic string) bool { return strings.HasPrefix(topic, "_") }

// IsDataTopic reports whether a topic carries pipeline data that the sinks
// consume when discovering topics: neither internal nor a dead-letter topic.
func IsDataTopic(topic string) bool {
	return topic != "" && !IsInternal(topic) && !deadletter.Is(topic)
}
