package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestRunWithKafkaExporterFlags starts the real command wiring with
// kafka_exporter's flags, waits for readiness, scrapes the custom
// telemetry path, and shuts down cleanly on cancel.
func TestRunWithKafkaExporterFlags(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t)
	c.CreateTopic("orders", 2, nil)
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"--kafka.server=" + c.Brokers()[0], "--web.listen-address=" + addr, "--web.telemetry-path=/kmetrics",
			"--topic.exclude=^_", "-exporter-interval=200ms", "-exporter-probe-interval=50ms", "-log-level=error",
		})
	}()
	base := "http://" + addr
	eventually(t, 20*time.Second, func() error {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", res.StatusCode)
		}
		return nil
	})
	eventually(t, 20*time.Second, func() error {
		mfs := scrape(t, base+"/kmetrics", true)
		if got := series(mfs, "kafka_topic_partitions")["topic=orders"]; got != 2 {
			return fmt.Errorf("orders partitions = %v", got)
		}
		if _, probed := series(mfs, "kafka_topic_partitions")["topic=_sluice_probe"]; probed {
			return fmt.Errorf("--topic.exclude ignored: probe topic reported")
		}
		if got := series(mfs, "sluice_exporter_probe_records_received_total")[""]; got < 1 {
			return fmt.Errorf("probe received %v", got)
		}
		if series(mfs, "go_goroutines")[""] == 0 {
			return fmt.Errorf("process metrics missing")
		}
		return nil
	})
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("landing page: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
}
