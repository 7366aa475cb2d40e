package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKill9LosesNothing runs the built binary, SIGKILLs it mid-stream and
// starts it again: every record ends up as exactly one document (re-sent
// ones overwrite the same _id) and the offsets reach the end.
func TestKill9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	bin := sinkBinary(t)
	kc := kafkatest.Start(t)
	kc.CreateTopic("orders", 3, nil)
	reg := registrytest.Start(t, kc.Brokers())
	e := &env{kc: kc, reg: reg}
	e.schemaID = reg.Register(t, "orders-value", ordersSchema)
	double := estest.New()
	// 5ms per bulk request keeps the stream in flight long enough to kill it.
	es := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_bulk") {
			time.Sleep(5 * time.Millisecond)
		}
		double.ServeHTTP(w, r)
	}))
	t.Cleanup(es.Close)
	e.es = double
	e.codec = ordersCodec(t)
	e.w = kc.Clients().NewWriter(kafka.WriterOptions{Topic: "orders", Balancer: &kafkago.RoundRobin{}})
	t.Cleanup(func() { _ = e.w.Close() })
	const n = 4000
	e.produce(t, 0, n)

	logs := &syncBuf{}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(),
			"KAFKA_BROKERS="+strings.Join(kc.Brokers(), ","), "REGISTRY_URL="+reg.URL(), "ES_URL="+es.URL,
			"SEARCH_SINK_ADMIN_ADDR=127.0.0.1:0", "SEARCH_SINK_GROUP_ID=crash", "SEARCH_SINK_COMMIT_INTERVAL=50ms",
			"SEARCH_SINK_FLUSH_BYTES=16384", "SEARCH_SINK_MAX_BUFFERED_BYTES=65536", "SEARCH_SINK_FLUSH_INTERVAL=20ms",
			"SEARCH_SINK_WORKERS=1", "SEARCH_SINK_TOPIC_REFRESH=300ms", "LOG_LEVEL=info")
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd
	}
	defer func() {
		if t.Failed() {
			t.Logf("sink logs:\n%s", logs.String())
		}
	}()
	all := func() int {
		return len(e.docs(dayIndex("orders", 0), dayIndex("orders", 1), dayIndex("orders", 2), dayIndex("orders", 3)))
	}

	first := start()
	eventually(t, 60*time.Second, "some documents and a commit", func() bool { return all() >= 300 && sum(e.committed(t, "crash")) > 0 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = first.Process.Wait()
	atKill := all()
	committedAtKill := sum(e.committed(t, "crash"))
	if atKill >= n {
		t.Fatalf("all %d documents were indexed before the kill: the test did not kill mid-stream", n)
	}

	second := start()
	eventually(t, 60*time.Second, "every document after restart", func() bool { return all() == n })
	eventually(t, 20*time.Second, "offsets committed to the end", func() bool { return sum(e.committed(t, "crash")) == n })
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	// Exactly the expected ids: one per (partition, offset).
	docs := e.docs(dayIndex("orders", 0), dayIndex("orders", 1), dayIndex("orders", 2), dayIndex("orders", 3))
	offsets := e.committed(t, "crash")
	for p, end := range offsets {
		for o := int64(0); o < end; o++ {
			if _, ok := docs[fmt.Sprintf("orders+%d+%d", p, o)]; !ok {
				t.Fatalf("document orders+%d+%d missing", p, o)
			}
		}
	}
	sent := 0
	for _, r := range double.Requests() {
		if r.Path == "/_bulk" {
			sent += bytes.Count(r.Body, []byte(`{"index":`))
		}
	}
	t.Logf("killed with %d/%d documents indexed and %d offsets committed; %d index actions sent in total (%d re-sent, overwriting the same _id)",
		atKill, n, committedAtKill, sent, sent-n)
	if sent < n {
		t.Fatalf("only %d index actions for %d records", sent, n)
	}
}
