package collector

import (
	"time"

	"github.com/sluicehq/sluice/services/kafka-exporter/internal/status"
)

// Snapshot is one collection's result. It is never modified after it is
// published.
type Snapshot struct {
	Time     time.Time     // when the collection started
	Duration time.Duration // how long it took
	Err      error         // non-nil when some query failed; the data is then partial

	ClusterID    string
	ControllerID int32
	Brokers      []Broker
	Topics       []Topic // sorted by name
	Groups       []Group // sorted by id

	// Rendered is the text exposition of the snapshot, and Gzipped the
	// same bytes gzip-compressed, both built once per collection so a
	// scrape only copies bytes.
	Rendered []byte
	Gzipped  []byte
}

// Broker is a cluster member.
type Broker struct {
	ID   int32
	Addr string
	Rack string
}

// Topic is one topic with its partitions and configuration.
type Topic struct {
	Name       string
	Internal   bool
	Partitions []Partition // sorted by id
	Config     map[string]string
}

// Partition is one partition's placement and offsets.
type Partition struct {
	ID              int32
	Leader          int32 // -1: offline
	Replicas        int
	ISR             int
	PreferredLeader bool // leader is the first replica
	Newest          int64
	NewestOK        bool
	Oldest          int64
	OldestOK        bool
}

// Group is one consumer group.
type Group struct {
	ID           string
	State        string
	ProtocolType string
	Members      int
	Status       status.Code
	Topics       []GroupTopic // topics with at least one committed offset, sorted by name
}

// GroupTopic is a group's view of one topic.
type GroupTopic struct {
	Name       string
	Partitions []GroupPartition // every partition of the topic, sorted by id
}

// GroupPartition is a group's position in one partition.
type GroupPartition struct {
	ID         int32
	Committed  int64 // -1: no commit
	Lag        int64 // -1 when Committed is -1
	LagOK      bool  // the partition's log end offset is known
	LagSeconds float64
	LagSecOK   bool
}
