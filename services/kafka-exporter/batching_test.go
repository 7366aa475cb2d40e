package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

// TestRequestsPerCollection counts the requests one collection sends:
// ListOffsets once per broker per offset kind whatever the partition
// count, OffsetFetch once per group; concurrent refreshes share one
// collection.
func TestRequestsPerCollection(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.NumBrokers(3))
	for i := 0; i < 10; i++ {
		c.CreateTopic(fmt.Sprintf("t%d", i), 12, nil)
	}
	f := newFixture(t, c)
	for g := 0; g < 5; g++ {
		commit(t, f.kc, fmt.Sprintf("g%d", g), "t0", map[int]int64{0: 0})
	}
	// Stop the test client's transport, whose background metadata refresh
	// would otherwise be counted.
	f.kc.Transport.CloseIdleConnections()
	if err := f.refresh(t); err != nil { // warm up: connections, api versions
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[kmsg.Key]int{}
	// A control that observes every request of a kind and lets kfake
	// answer it as usual.
	for _, k := range []kmsg.Key{kmsg.ListOffsets, kmsg.OffsetFetch, kmsg.Metadata, kmsg.DescribeGroups} {
		c.ControlKey(int16(k), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			mu.Lock()
			counts[k]++
			mu.Unlock()
			return nil, nil, false
		})
	}
	// Five concurrent refreshes: singleflight makes them one collection.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := f.col.Refresh(ctx); err != nil {
				t.Errorf("refresh: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	collections := series(scrape(t, f.srv.URL+"/metrics", false), "sluice_exporter_collections_total")["result=success"]
	runs := int(collections) - 1
	if runs < 1 || runs > 2 {
		t.Fatalf("5 concurrent refreshes ran %d collections, want 1 (2 if one started after the first finished)", runs)
	}
	want := map[kmsg.Key]int{
		kmsg.ListOffsets:    runs * 3 * 2, // 3 brokers x (latest, earliest), 120 partitions
		kmsg.OffsetFetch:    runs * 5,     // one per group
		kmsg.Metadata:       runs * 1,
		kmsg.DescribeGroups: runs * 1, // all 5 groups share a coordinator or are split by it
	}
	if counts[kmsg.DescribeGroups] > runs*3 {
		t.Errorf("DescribeGroups requests = %d, want at most one per coordinator (%d)", counts[kmsg.DescribeGroups], runs*3)
	}
	delete(want, kmsg.DescribeGroups)
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%v requests = %d, want %d (runs %d)", k, counts[k], n, runs)
		}
	}
}
