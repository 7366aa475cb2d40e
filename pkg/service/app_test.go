package service

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/version"
)

func startApp(t *testing.T, opts Options, setup func(a *App)) (*App, string, context.CancelFunc, chan error) {
	t.Helper()
	a := New("test", opts, NewLogger(io.Discard, "test", "info"))
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(a)
	}
	a.ServeHTTP("admin", AdminServer(a), ln)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(cancel)
	return a, "http://" + ln.Addr().String(), cancel, done
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAdminEndpointsAndReadiness(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	depErr := errors.New("kafka metadata: connection refused")
	_, base, _, _ := startApp(t, Options{ShutdownTimeout: 5 * time.Second}, func(a *App) {
		a.ReadyCheck("kafka", func(context.Context) error { mu.Lock(); defer mu.Unlock(); return depErr })
	})
	waitFor(t, "healthz", func() bool { c, _ := get(t, base+"/healthz"); return c == 200 })
	if c, body := get(t, base+"/readyz"); c != 503 || !strings.Contains(body, "connection refused") {
		t.Fatalf("readyz with a failing dependency = %d %s", c, body)
	}
	mu.Lock()
	depErr = nil
	mu.Unlock()
	if c, body := get(t, base+"/readyz"); c != 200 || !strings.Contains(body, `"kafka":"ok"`) {
		t.Fatalf("readyz with healthy dependency = %d %s", c, body)
	}
	if c, body := get(t, base+"/metrics"); c != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics = %d", c)
	}
}

// TestShutdownOrder checks that readiness flips to 503 before draining and
// that stop hooks run before components' contexts are cancelled, then close hooks.
func TestShutdownOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []string
	record := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	readyDuringDelay := make(chan int, 1)
	var base string
	a, b, cancel, done := startApp(t, Options{ShutdownTimeout: 5 * time.Second, ShutdownDelay: 300 * time.Millisecond}, func(a *App) {
		a.Go("consumer", func(ctx context.Context) error {
			<-ctx.Done()
			record("consumer: flushed and committed")
			return nil
		})
		a.OnStop("probe", func(context.Context) error {
			record("stop hook")
			return nil
		})
		a.OnClose("client", func(context.Context) error { record("closed"); return nil })
	})
	base = b
	waitFor(t, "ready", func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })
	cancel()
	waitFor(t, "stopping", a.Stopping)
	c, _ := get(t, base+"/readyz") // during ShutdownDelay the listener is still open
	readyDuringDelay <- c
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := <-readyDuringDelay; got != 503 {
		t.Fatalf("readyz during shutdown = %d, want 503", got)
	}
	want := []string{"stop hook", "consumer: flushed and committed", "closed"}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, "|") != strings.Join(want, "|") {
		t.Fatalf("events = %q, want %q", events, want)
	}
}

func TestComponentFailureStopsAll(t *testing.T) {
	t.Parallel()
	stopped := make(chan struct{})
	_, _, _, done := startApp(t, Options{ShutdownTimeout: 5 * time.Second}, func(a *App) {
		a.Go("bad", func(context.Context) error { return errors.New("boom") })
		a.Go("good", func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
	})
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "bad: boom") {
			t.Fatalf("run err = %v, want bad: boom", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after a component failed")
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the healthy component was not stopped")
	}
}

func TestShutdownTimeout(t *testing.T) {
	t.Parallel()
	_, _, cancel, done := startApp(t, Options{ShutdownTimeout: 200 * time.Millisecond}, func(a *App) {
		a.Go("stuck", func(context.Context) error { select {} })
	})
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("err = %v, want timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown timeout not enforced")
	}
}

func TestListenTakenPortNamesAddress(t *testing.T) {
	t.Parallel()
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(context.Background(), ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("err = %v, want it to name %s", err, ln.Addr())
	}
}

func TestBuildInfoMetric(t *testing.T) {
	t.Parallel()
	app := New("svc", Options{LogLevel: "info", ShutdownTimeout: time.Second}, NewLogger(io.Discard, "svc", "info"))
	mfs, err := app.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != BuildInfoName {
			continue
		}
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != version.Version || labels["go_version"] != runtime.Version() || labels["revision"] == "" || mf.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Fatalf("sluice_build_info labels %v value %v", labels, mf.GetMetric()[0].GetGauge().GetValue())
		}
		return
	}
	t.Fatal("sluice_build_info not registered")
}
