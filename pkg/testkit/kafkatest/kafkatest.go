// Package kafkatest starts an in-process Kafka (franz-go's kfake) on a random
// 127.0.0.1 port for tests; kafka-go talks to it over real TCP.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
)

// Cluster is a running kfake cluster.
type Cluster struct {
	*kfake.Cluster
	tb testing.TB
}

// Start launches a one-broker cluster on 127.0.0.1 with a random port and
// closes it in t.Cleanup. Extra kfake options (SASL, faults, DataDir) pass
// through.
func Start(tb testing.TB, opts ...kfake.Opt) *Cluster {
	tb.Helper()
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(loopback),
		kfake.DefaultNumPartitions(1),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		tb.Fatalf("starting kfake: %v", err)
	}
	tb.Cleanup(c.Close)
	return &Cluster{Cluster: c, tb: tb}
}

// Brokers returns the listen addresses (host:port).
func (c *Cluster) Brokers() []string { return c.ListenAddrs() }

// Config returns a pkg/kafka Config pointing at this cluster.
func (c *Cluster) Config() skafka.Config {
	return skafka.Config{Brokers: c.Brokers(), ClientID: "sluice-test", DialTimeout: 5 * time.Second}
}

// Clients returns pkg/kafka clients for this cluster, closed at cleanup.
func (c *Cluster) Clients() *skafka.Clients {
	c.tb.Helper()
	cl, err := skafka.New(c.Config())
	if err != nil {
		c.tb.Fatalf("kafka clients: %v", err)
	}
	c.tb.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates a topic with n partitions or fails the test.
func (c *Cluster) CreateTopic(name string, partitions int32, configs map[string]string) {
	c.tb.Helper()
	if err := c.Cluster.CreateTopic(name, partitions, configs); err != nil {
		c.tb.Fatalf("creating topic %s: %v", name, err)
	}
}

// Context returns a context cancelled at cleanup or after d.
func Context(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}
