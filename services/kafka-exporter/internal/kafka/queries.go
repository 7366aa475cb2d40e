package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/describeconfigs"
	"github.com/segmentio/kafka-go/protocol/describegroups"
	"github.com/segmentio/kafka-go/protocol/listgroups"
	"github.com/segmentio/kafka-go/protocol/listoffsets"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/offsetfetch"
)

// Timestamps accepted by ListOffsets.
const (
	Latest   int64 = -1 // the log end offset (high watermark)
	Earliest int64 = -2 // the log start offset
)

// Broker is one cluster member as metadata describes it.
type Broker struct {
	ID   int32
	Host string
	Port int32
	Rack string
}

// Addr is host:port.
func (b Broker) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))) }

// Partition is one partition's placement.
type Partition struct {
	ID       int32
	Leader   int32 // -1 when the partition has no leader (offline)
	Replicas []int32
	ISR      []int32
	Err      error
}

// Topic is one topic's metadata.
type Topic struct {
	Name       string
	Internal   bool
	Partitions []Partition
	Err        error
}

// Metadata is the cluster layout.
type Metadata struct {
	ClusterID    string
	ControllerID int32
	Brokers      []Broker
	Topics       []Topic
}

// Metadata asks the bootstrap brokers, in order, for the whole cluster
// layout (every topic) and returns the first answer.
func (c *Client) Metadata(ctx context.Context) (*Metadata, error) {
	var errs []error
	for _, addr := range c.bootstrap {
		m, err := c.RoundTrip(ctx, addr, &metadata.Request{TopicNames: nil})
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		res := m.(*metadata.Response)
		out := &Metadata{ClusterID: res.ClusterID, ControllerID: res.ControllerID}
		out.Brokers = make([]Broker, len(res.Brokers))
		for i, b := range res.Brokers {
			out.Brokers[i] = Broker{ID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack}
		}
		out.Topics = make([]Topic, len(res.Topics))
		for i, t := range res.Topics {
			tt := Topic{Name: t.Name, Internal: t.IsInternal, Err: codeErr(t.ErrorCode)}
			tt.Partitions = make([]Partition, len(t.Partitions))
			for j, p := range t.Partitions {
				tt.Partitions[j] = Partition{ID: p.PartitionIndex, Leader: p.LeaderID, Replicas: p.ReplicaNodes, ISR: p.IsrNodes, Err: codeErr(p.ErrorCode)}
			}
			out.Topics[i] = tt
		}
		return out, nil
	}
	return nil, fmt.Errorf("metadata from bootstrap brokers: %w", errors.Join(errs...))
}

func codeErr(code int16) error {
	if code == 0 {
		return nil
	}
	return kafkago.Error(code)
}

// PartitionOffset is one partition's answer to ListOffsets.
type PartitionOffset struct {
	Topic     string
	Partition int32
	Offset    int64
	Err       error
}

// ListOffsets sends one ListOffsets request for every given partition to
// the broker at addr (their leader) and returns one answer per partition.
func (c *Client) ListOffsets(ctx context.Context, addr string, parts map[string][]int32, ts int64) ([]PartitionOffset, error) {
	req := &listoffsets.Request{ReplicaID: -1, Topics: make([]listoffsets.RequestTopic, 0, len(parts))}
	n := 0
	for t, ps := range parts {
		rps := make([]listoffsets.RequestPartition, len(ps))
		for i, p := range ps {
			rps[i] = listoffsets.RequestPartition{Partition: p, CurrentLeaderEpoch: -1, Timestamp: ts}
		}
		n += len(ps)
		req.Topics = append(req.Topics, listoffsets.RequestTopic{Topic: t, Partitions: rps})
	}
	m, err := c.RoundTrip(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	out := make([]PartitionOffset, 0, n)
	for _, t := range m.(*listoffsets.Response).Topics {
		for _, p := range t.Partitions {
			out = append(out, PartitionOffset{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset, Err: codeErr(p.ErrorCode)})
		}
	}
	return out, nil
}

// GroupListing is a group a broker coordinates.
type GroupListing struct {
	ID           string
	ProtocolType string
}

// ListGroups asks the broker at addr for the groups it coordinates.
func (c *Client) ListGroups(ctx context.Context, addr string) ([]GroupListing, error) {
	m, err := c.RoundTrip(ctx, addr, &listgroups.Request{})
	if err != nil {
		return nil, err
	}
	res := m.(*listgroups.Response)
	if res.ErrorCode != 0 {
		return nil, fmt.Errorf("list groups on %s: %w", addr, kafkago.Error(res.ErrorCode))
	}
	out := make([]GroupListing, len(res.Groups))
	for i, g := range res.Groups {
		out[i] = GroupListing{ID: g.GroupID, ProtocolType: g.ProtocolType}
	}
	return out, nil
}

// GroupDescription is DescribeGroups' answer for one group.
type GroupDescription struct {
	ID           string
	State        string // Stable, Empty, PreparingRebalance, CompletingRebalance, Dead
	ProtocolType string
	Protocol     string
	Members      int
	Err          error
}

// DescribeGroups describes groups the broker at addr coordinates, in one
// request.
func (c *Client) DescribeGroups(ctx context.Context, addr string, ids []string) ([]GroupDescription, error) {
	m, err := c.RoundTrip(ctx, addr, &describegroups.Request{Groups: ids})
	if err != nil {
		return nil, err
	}
	res := m.(*describegroups.Response)
	out := make([]GroupDescription, len(res.Groups))
	for i, g := range res.Groups {
		out[i] = GroupDescription{
			ID: g.GroupID, State: g.GroupState, ProtocolType: g.ProtocolType, Protocol: g.ProtocolData,
			Members: len(g.Members), Err: codeErr(g.ErrorCode),
		}
	}
	return out, nil
}

// CommittedOffset is one partition's committed offset for a group.
type CommittedOffset struct {
	Topic     string
	Partition int32
	Offset    int64 // -1: no commit
	Err       error
}

// OffsetFetch returns every offset the group has committed, asking its
// coordinator at addr.
func (c *Client) OffsetFetch(ctx context.Context, addr, group string) ([]CommittedOffset, error) {
	m, err := c.RoundTrip(ctx, addr, &offsetfetch.Request{GroupID: group, Topics: nil})
	if err != nil {
		return nil, err
	}
	res := m.(*offsetfetch.Response)
	if res.ErrorCode != 0 {
		return nil, fmt.Errorf("offset fetch for group %s: %w", group, kafkago.Error(res.ErrorCode))
	}
	n := 0
	for _, t := range res.Topics {
		n += len(t.Partitions)
	}
	out := make([]CommittedOffset, 0, n)
	for _, t := range res.Topics {
		for _, p := range t.Partitions {
			out = append(out, CommittedOffset{Topic: t.Name, Partition: p.PartitionIndex, Offset: p.CommittedOffset, Err: codeErr(p.ErrorCode)})
		}
	}
	return out, nil
}

// resourceTypeTopic is DescribeConfigs' resource type for topics.
const resourceTypeTopic = 2

// TopicConfigs returns the named configuration entries of each topic, in
// one DescribeConfigs request to the broker at addr. Topics the broker
// could not describe are missing from the result and reported in the
// joined error.
func (c *Client) TopicConfigs(ctx context.Context, addr string, topics, names []string) (map[string]map[string]string, error) {
	req := &describeconfigs.Request{Resources: make([]describeconfigs.RequestResource, len(topics))}
	for i, t := range topics {
		req.Resources[i] = describeconfigs.RequestResource{ResourceType: resourceTypeTopic, ResourceName: t, ConfigNames: names}
	}
	m, err := c.RoundTrip(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]string, len(topics))
	var errs []error
	for _, r := range m.(*describeconfigs.Response).Resources {
		if r.ErrorCode != 0 {
			errs = append(errs, fmt.Errorf("configs of topic %s: %w", r.ResourceName, kafkago.Error(r.ErrorCode)))
			continue
		}
		cfg := make(map[string]string, len(r.ConfigEntries))
		for _, e := range r.ConfigEntries {
			cfg[e.ConfigName] = e.ConfigValue
		}
		out[r.ResourceName] = cfg
	}
	return out, errors.Join(errs...)
}
