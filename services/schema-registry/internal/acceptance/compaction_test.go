package acceptance_test

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/srtest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/store"
)

type logRecord struct {
	offset     int64
	key, value []byte
}

// readLog returns every record of _schemas.
func readLog(t *testing.T, kc *kafkatest.Cluster) []logRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", kc.Brokers()[0], "_schemas", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	end, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Seek(0, kafkago.SeekAbsolute); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []logRecord
	for off := int64(0); off < end; {
		m, err := conn.ReadMessage(1 << 20)
		if err != nil {
			t.Fatalf("reading _schemas at %d: %v", off, err)
		}
		off = m.Offset + 1
		out = append(out, logRecord{m.Offset, m.Key, m.Value})
	}
	return out
}

// compact does what Kafka's log cleaner may eventually do: keep only the
// last record of each key, in offset order, and drop tombstones.
func compact(recs []logRecord) []logRecord {
	last := map[string]logRecord{}
	for _, r := range recs {
		last[string(r.key)] = r
	}
	var out []logRecord
	for _, r := range last {
		if r.value != nil {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].offset < out[j].offset })
	return out
}

// TestCompactedContestedLogReplaysIdentically: replicas race, then every
// version is soft-deleted and some hard-deleted; a replica replaying the
// log as compaction would leave it must hold the live replicas' state.
func TestCompactedContestedLogReplaysIdentically(t *testing.T) {
	t.Parallel()
	kc := kafkatest.Start(t)
	var reps []*srtest.Instance
	for i := 0; i < 3; i++ {
		reps = append(reps, srtest.Start(t, kc.Config(), srtest.Options{RepairAfter: 100 * time.Millisecond}))
	}
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, _ = register(reps[i%3].URL, "c-"+strconv.Itoa(i%4), avroRecord("R", "f"+strconv.Itoa(i%12)))
		}()
	}
	wg.Wait()
	ctx := kafkatest.Context(t, 60*time.Second)
	if err := reps[0].Store.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Rewrite every version: soft-delete two subjects entirely, hard-delete one.
	for _, s := range []string{"c-0", "c-1", "c-2"} {
		if _, err := reps[1].Registry.DeleteSubject(ctx, s, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reps[2].Registry.DeleteSubject(ctx, "c-2", true); err != nil {
		t.Fatal(err)
	}
	// Let background repairs (if any) land, then compare.
	eventually(t, 10*time.Second, "no lost races left to repair", func() (bool, string) {
		for i, r := range reps {
			if n := len(r.Store.State().LostKeys(0)); n > 0 {
				return false, "replica " + strconv.Itoa(i) + " has " + strconv.Itoa(n)
			}
		}
		return true, ""
	})
	for _, r := range reps {
		if err := r.Store.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := reps[0].Store.State().Dump()
	replayed := store.NewState(slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, r := range compact(readLog(t, kc)) {
		replayed.Apply(r.offset, r.key, r.value)
	}
	if got := replayed.Dump(); got != want {
		t.Fatalf("compacted replay differs from the live state:\n got %s\nwant %s", got, want)
	}
}
