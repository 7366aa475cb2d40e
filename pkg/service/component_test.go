package service

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A component's Stop runs when shutdown begins, before its Run's context
// is cancelled; one component failing stops every other.
func TestComponentStopBeforeCancelAndOneFailureStopsAll(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	boom := errors.New("boom")
	fail := make(chan struct{})
	_, _, _, done := startApp(t, Options{ShutdownTimeout: 5 * time.Second}, func(a *App) {
		a.Add("worker", Funcs{
			RunFunc:  func(ctx context.Context) error { <-ctx.Done(); note("worker cancelled"); return nil },
			StopFunc: func(context.Context) error { note("worker stop"); return nil },
		})
		a.Add("failing", Funcs{RunFunc: func(context.Context) error { <-fail; return boom }})
	})
	close(fail)
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want the failing component's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failing component did not stop the app")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0] != "worker stop" || events[1] != "worker cancelled" {
		t.Fatalf("events = %v, want stop before cancel", events)
	}
}
