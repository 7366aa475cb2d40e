package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	cases := map[string]string{
		"SCHEMA_REGISTRY_TOPIC_REPLICATION_FACTOR": "0",
		"SCHEMA_REGISTRY_MAX_SCHEMA_BYTES":         "-1",
		"SCHEMA_REGISTRY_MAX_SCHEMA_TYPES":         "0",
		"SCHEMA_REGISTRY_MAX_SCHEMA_DEPTH":         "-3",
		"SCHEMA_REGISTRY_AUTH_USERS":               "alice:pw:admin",
		"SCHEMA_REGISTRY_AUTH_TOKENS":              "justatoken",
		"SCHEMA_REGISTRY_WRITE_TIMEOUT":            "soon",
		"KAFKA_BROKERS":                            "no-port",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			err := run(context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("error %v does not name %s", err, name)
			}
			if service.ExitCode(err) != 2 {
				t.Fatalf("exit code %d, want 2", service.ExitCode(err))
			}
		})
	}
}

func TestRefusesMultiPartitionTopic(t *testing.T) {
	kc := kafkatest.Start(t)
	kc.CreateTopic("_schemas", 3, nil)
	t.Setenv("KAFKA_BROKERS", strings.Join(kc.Brokers(), ","))
	t.Setenv("SCHEMA_REGISTRY_HTTP_ADDR", freeAddr(t))
	t.Setenv("SCHEMA_REGISTRY_GRPC_ADDR", freeAddr(t))
	err := run(kafkatest.Context(t, 30*time.Second), nil)
	if err == nil || !strings.Contains(err.Error(), "3 partitions") || !strings.Contains(err.Error(), "exactly 1") {
		t.Fatalf("run = %v, want a refusal naming the partition count", err)
	}
}

// TestRunServesAndShutsDown wires the whole service: REST, admin routes
// and metrics on one port, readiness after replay, graceful stop.
func TestRunServesAndShutsDown(t *testing.T) {
	kc := kafkatest.Start(t)
	addr := freeAddr(t)
	t.Setenv("KAFKA_BROKERS", strings.Join(kc.Brokers(), ","))
	t.Setenv("SCHEMA_REGISTRY_HTTP_ADDR", addr)
	t.Setenv("SCHEMA_REGISTRY_GRPC_ADDR", freeAddr(t))
	t.Setenv("LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil) }()
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Post(base+"/subjects/a-value/versions", "application/json", strings.NewReader(`{"schema":"\"string\""}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{
		`sluice_schema_registry_http_request_duration_seconds_count{code="200",method="POST",route="/subjects/{subject}/versions"} 1`,
		"sluice_schema_registry_subjects 1",
		"sluice_schema_registry_schemas 1",
		"sluice_schema_registry_apply_lag_records",
		"sluice_schema_registry_applied_offset",
		`sluice_schema_registry_schemas_refused_total{limit="expanded_types"} 0`,
		`sluice_schema_registry_schemas_refused_total{limit="depth"} 0`,
		"sluice_schema_registry_compat_check_timeouts_total 0",
	} {
		if !strings.Contains(string(b), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("run returned %v after shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
}

// TestAdminPortSeparate: with SCHEMA_REGISTRY_ADMIN_ADDR the admin routes
// move to their own port and the REST port serves none of them (and the
// admin port no API), so network rules can open one without the other.
func TestAdminPortSeparate(t *testing.T) {
	kc := kafkatest.Start(t)
	api, admin := freeAddr(t), freeAddr(t)
	t.Setenv("KAFKA_BROKERS", strings.Join(kc.Brokers(), ","))
	t.Setenv("SCHEMA_REGISTRY_HTTP_ADDR", api)
	t.Setenv("SCHEMA_REGISTRY_ADMIN_ADDR", admin)
	t.Setenv("SCHEMA_REGISTRY_GRPC_ADDR", freeAddr(t))
	t.Setenv("LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("run did not return after shutdown")
		}
	}()
	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for status("http://"+admin+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("admin port never answered /readyz 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cases := []struct {
		url  string
		want int
	}{
		{"http://" + admin + "/metrics", http.StatusOK},
		{"http://" + admin + "/healthz", http.StatusOK},
		{"http://" + admin + "/subjects", http.StatusNotFound},
		{"http://" + api + "/subjects", http.StatusOK},
		{"http://" + api + "/metrics", http.StatusNotFound},
		{"http://" + api + "/healthz", http.StatusNotFound},
		{"http://" + api + "/readyz", http.StatusNotFound},
	}
	for _, tc := range cases {
		if got := status(tc.url); got != tc.want {
			t.Errorf("GET %s = %d, want %d", tc.url, got, tc.want)
		}
	}
}

func TestAdminAddrMustDiffer(t *testing.T) {
	addr := freeAddr(t)
	t.Setenv("SCHEMA_REGISTRY_HTTP_ADDR", addr)
	t.Setenv("SCHEMA_REGISTRY_ADMIN_ADDR", addr)
	err := run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "SCHEMA_REGISTRY_ADMIN_ADDR") || service.ExitCode(err) != 2 {
		t.Fatalf("run = %v, want a config error naming SCHEMA_REGISTRY_ADMIN_ADDR", err)
	}
}
