package checks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// services are the five Sluice services, as named under services/.
var services = []string{"ingest-gateway", "schema-registry", "s3-sink", "search-sink", "kafka-exporter"}

// ports is one service's row of DESIGN.md's "Default ports" table: its
// HTTP API, gRPC API and metrics/health (/metrics, /healthz, /readyz)
// ports; 0 is none.
type ports struct{ API, GRPC, Metrics int }

// designPorts are the services' own defaults (DESIGN.md "Default ports"):
// with *_ADMIN_ADDR empty the gateway and the registry serve /metrics and
// health on their API port, as in the dev stack.
var designPorts = map[string]ports{
	"ingest-gateway":  {8080, 9090, 8080},
	"schema-registry": {8081, 9091, 8081},
	"s3-sink":         {0, 0, 9102},
	"search-sink":     {0, 0, 9103},
	"kafka-exporter":  {0, 0, 9308},
}

// adminVars name the variable holding each service's admin listen address:
// the port that serves /metrics, /healthz and /readyz and nothing else.
var adminVars = map[string]string{
	"ingest-gateway":  "GATEWAY_ADMIN_ADDR",
	"schema-registry": "SCHEMA_REGISTRY_ADMIN_ADDR",
	"s3-sink":         "S3_SINK_ADMIN_ADDR",
	"search-sink":     "SEARCH_SINK_ADMIN_ADDR",
	"kafka-exporter":  "EXPORTER_ADMIN_ADDR",
}

// apiVars name the variables holding each service's API listen addresses
// (the sinks and the exporter have none).
var apiVars = map[string][]string{
	"ingest-gateway":  {"GATEWAY_HTTP_ADDR", "GATEWAY_GRPC_ADDR"},
	"schema-registry": {"SCHEMA_REGISTRY_HTTP_ADDR", "SCHEMA_REGISTRY_GRPC_ADDR"},
}

// adminPorts are the admin ports the deployments (the chart, compose and
// the Prometheus config) give each service: the gateway and the registry
// move /metrics and health off their API port (GATEWAY_ADMIN_ADDR :9104,
// SCHEMA_REGISTRY_ADMIN_ADDR :9105, as their READMEs say), so whoever may
// scrape never reaches the API and an Ingress to the API never publishes
// /metrics; the others keep DESIGN.md's port.
var adminPorts = map[string]int{
	"ingest-gateway":  9104,
	"schema-registry": 9105,
	"s3-sink":         9102,
	"search-sink":     9103,
	"kafka-exporter":  9308,
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// repoRoot is the repository root: the nearest parent holding go.work.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("no go.work above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		tb.Fatalf("finding the repository root: %v", rootErr)
	}
	return rootDir
}

// repoPath joins elements onto the repository root.
func repoPath(tb testing.TB, elem ...string) string {
	tb.Helper()
	return filepath.Join(append([]string{repoRoot(tb)}, elem...)...)
}

// tool finds an external tool on PATH or in GOPATH/bin (where scripts/tools.sh
// installs Go tools). A missing tool fails the test: make test installs them.
func tool(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	tb.Fatalf("%s not found on PATH or in GOPATH/bin: run make tools (scripts/tools.sh installs it)", name)
	return ""
}

// run executes a command with a deadline and returns stdout, stderr and the error.
func run(tb testing.TB, dir string, name string, args ...string) (string, string, error) {
	tb.Helper()
	return runEnv(tb, dir, nil, name, args...)
}

// runEnv is run with extra environment variables.
func runEnv(tb testing.TB, dir string, env []string, name string, args ...string) (string, string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// copyTree copies a directory (regular files and directories only) to dst.
func copyTree(tb testing.TB, src, dst string) {
	tb.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		tb.Fatalf("copying %s: %v", src, err)
	}
}

// portOf returns the port of a listen address such as ":8080" or "0.0.0.0:8080".
func portOf(addr string) (int, bool) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return 0, false
	}
	p, err := strconv.Atoi(addr[i+1:])
	return p, err == nil
}

var designRow = regexp.MustCompile("^\\|\\s*([a-z0-9-]+)\\s*\\|([^|]*)\\|([^|]*)\\|([^|]*)\\|")

// parseDesignPorts reads the "Default ports" table of DESIGN.md: service ->
// {API, gRPC, metrics/health} ports.
func parseDesignPorts(text string) map[string]ports {
	out := map[string]ports{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		m := designRow.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		num := func(s string) int {
			f := strings.Fields(strings.TrimSpace(s))
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.Atoi(f[0])
			return n
		}
		p := ports{API: num(m[2]), GRPC: num(m[3]), Metrics: num(m[4])}
		if p.Metrics == 0 {
			continue
		}
		out[m[1]] = p
	}
	return out
}

// TestDesignPorts keeps designPorts equal to DESIGN.md's table when the
// design document is available (it lives in shared/, beside the repository).
func TestDesignPorts(t *testing.T) {
	t.Parallel()
	var text []byte
	for _, p := range []string{repoPath(t, "DESIGN.md"), repoPath(t, "docs", "DESIGN.md"), repoPath(t, "..", "shared", "DESIGN.md")} {
		if b, err := os.ReadFile(p); err == nil {
			text = b
			break
		}
	}
	if text == nil {
		t.Skip("DESIGN.md not found beside the repository; designPorts is the copy checked against it when present")
	}
	got := parseDesignPorts(string(text))
	for _, s := range services {
		if got[s] != designPorts[s] {
			t.Errorf("DESIGN.md ports of %s are %+v, the checks use %+v", s, got[s], designPorts[s])
		}
	}
}

func TestParseDesignPortsCatchesDrift(t *testing.T) {
	t.Parallel()
	table := "| service | API | gRPC | metrics/health |\n|---|---|---|---|\n| ingest-gateway | 8080 | 9090 | 8080 |\n| s3-sink | - | - | 9112 |\n"
	got := parseDesignPorts(table)
	if got["ingest-gateway"] != designPorts["ingest-gateway"] {
		t.Errorf("gateway parsed as %+v", got["ingest-gateway"])
	}
	if got["s3-sink"] == designPorts["s3-sink"] {
		t.Errorf("a changed s3-sink port (9112) was not seen as drift")
	}
}
