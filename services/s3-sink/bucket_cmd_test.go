package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pkg/service"
)

// TestBucketApplyCommand drives "s3-sink bucket apply [--dry-run]" against
// a recording S3 endpoint: the dry run only reads, the real run writes the
// lifecycle rule, and bad usage or config exits 2.
func TestBucketApplyCommand(t *testing.T) {
	var mu sync.Mutex
	var reqs []string
	lifecycle := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		q := "?" + strings.Split(r.URL.RawQuery, "=")[0]
		reqs = append(reqs, r.Method+" "+r.URL.Path+q)
		switch {
		case r.Method == http.MethodPut && q == "?lifecycle":
			lifecycle = string(body)
		case r.Method == http.MethodGet && q == "?lifecycle" && lifecycle != "":
			_, _ = io.WriteString(w, lifecycle)
		case r.Method == http.MethodGet && q == "?lifecycle":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `<Error><Code>NoSuchLifecycleConfiguration</Code></Error>`)
		case r.Method == http.MethodGet && q == "?replication":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `<Error><Code>ReplicationConfigurationNotFoundError</Code></Error>`)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	args := func(extra ...string) []string {
		return append([]string{"bucket", "apply"}, append(extra,
			"-s3-endpoint="+srv.URL, "-s3-bucket=archive", "-s3-access-key-id=AK", "-s3-secret-access-key=SK",
			"-s3-force-path-style=true", "-s3-sink-lifecycle-transition-days=30", "-s3-sink-lifecycle-expire-days=365")...)
	}
	take := func() string {
		mu.Lock()
		defer mu.Unlock()
		out := strings.Join(reqs, ", ")
		reqs = nil
		return out
	}
	if err := run(t.Context(), args("--dry-run")); err != nil {
		t.Fatal(err)
	}
	if got := take(); got != "GET /archive?lifecycle, GET /archive?replication" {
		t.Fatalf("dry run requests: %s", got)
	}
	if err := run(t.Context(), args()); err != nil {
		t.Fatal(err)
	}
	if got := take(); got != "GET /archive?lifecycle, PUT /archive?lifecycle, GET /archive?replication" {
		t.Fatalf("apply requests: %s", got)
	}
	if !strings.Contains(lifecycle, "<Days>365</Days>") || !strings.Contains(lifecycle, "<StorageClass>GLACIER</StorageClass>") {
		t.Fatalf("lifecycle body: %s", lifecycle)
	}
	if err := run(t.Context(), args()); err != nil {
		t.Fatal(err)
	}
	if got := take(); got != "GET /archive?lifecycle, GET /archive?replication" {
		t.Fatalf("second apply requests: %s", got)
	}

	for name, a := range map[string][]string{
		"no verb":    {"bucket"},
		"no bucket":  {"bucket", "apply", "-s3-endpoint=" + srv.URL},
		"bad expiry": append(args(), "-s3-sink-lifecycle-expire-days=-1"),
	} {
		err := run(t.Context(), a)
		var ce *service.ConfigError
		if !errors.As(err, &ce) || service.ExitCode(err) != 2 {
			t.Errorf("%s: err = %v, want a config error (exit 2)", name, err)
		}
	}
}
