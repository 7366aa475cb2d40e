package boot

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/service"
)

// deadAddr is a 127.0.0.1 address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Start wires the clients' readiness checks into /readyz on the admin
// listener, and their close hooks into shutdown.
func TestStartWiresReadinessAndAdmin(t *testing.T) {
	t.Parallel()
	kcfg := kafka.Config{Brokers: []string{deadAddr(t)}, ClientID: "t", DialTimeout: time.Second, MetadataTTL: time.Second}
	rcfg := registry.Config{URL: "http://" + deadAddr(t), Timeout: time.Second, LatestTTL: time.Second, MaxCachedIDs: 10, NegativeTTL: time.Second}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := adminLn.Addr().String()
	adminLn.Close()
	adapted := false
	b, err := Start(context.Background(), Spec{
		Name: "boot-test", Service: service.Options{LogLevel: "info", ShutdownTimeout: 5 * time.Second},
		Kafka: &kcfg, Registry: &rcfg, AdminAddr: adminAddr, Log: io.Discard,
		AdaptKafka: func(c *kafka.Clients) *kafka.Clients { adapted = true; return c },
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.Kafka == nil || b.Registry == nil || !adapted {
		t.Fatalf("clients not built: kafka %v registry %v adapted %v", b.Kafka, b.Registry, adapted)
	}
	if b.Admin != nil {
		t.Fatal("admin routes handed to the service although they have a listener")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.App.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(raw)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("readyz with Kafka and the registry down = %d %s", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin listener never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, check := range []string{`"kafka"`, `"schema-registry"`} {
		if !strings.Contains(body, check) {
			t.Errorf("readyz does not run the %s check: %s", check, body)
		}
	}
}

// Without an admin address the service mounts the admin routes itself;
// without Kafka or a registry none is built.
func TestStartMinimal(t *testing.T) {
	t.Parallel()
	b, err := Start(context.Background(), Spec{Name: "t", Service: service.Options{LogLevel: "info", ShutdownTimeout: time.Second}, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if b.Admin == nil || b.Kafka != nil || b.Registry != nil {
		t.Fatalf("minimal base = %+v", b)
	}
}
