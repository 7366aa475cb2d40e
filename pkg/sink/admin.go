package sink

import (
	"context"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
)

// KafkaAdmin adapts pkg/kafka clients to Admin: topics are listed from
// fresh metadata (not the shared transport's cache, so new topics are seen
// at the next refresh) and dead-letter topics are created with one
// partition.
type KafkaAdmin struct {
	kc   *skafka.Clients
	list *kafkago.Client
}

// NewKafkaAdmin returns the Admin of kc; refresh is the topic refresh
// interval (the listing transport caches metadata for at most a second).
func NewKafkaAdmin(kc *skafka.Clients, refresh time.Duration) *KafkaAdmin {
	t := kc.Transport
	return &KafkaAdmin{kc: kc, list: &kafkago.Client{
		Addr:    kc.Admin.Addr,
		Timeout: 10 * time.Second,
		Transport: &kafkago.Transport{
			Dial: t.Dial, DialTimeout: t.DialTimeout, IdleTimeout: t.IdleTimeout, ClientID: t.ClientID,
			TLS: t.TLS, SASL: t.SASL, Resolver: t.Resolver, MetadataTTL: max(min(refresh, time.Second), time.Millisecond),
		},
	}}
}

// ListTopics implements Admin.
func (a *KafkaAdmin) ListTopics(ctx context.Context) ([]string, error) {
	md, err := a.list.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(md.Topics))
	for _, t := range md.Topics {
		if t.Internal || t.Error != nil {
			continue
		}
		out = append(out, t.Name)
	}
	return out, nil
}

// EnsureTopic implements Admin.
func (a *KafkaAdmin) EnsureTopic(ctx context.Context, name string) error {
	_, err := a.kc.EnsureTopic(ctx, skafka.TopicSpec{Name: name, Partitions: 1})
	return err
}
