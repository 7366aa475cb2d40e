package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/pkg/testkit/proctest"
)

// TestMetricsCatalogMatchesServices: every metric the rules and dashboards
// rely on (deployments/metrics-catalog.txt) is registered by the service the
// catalog names, so a renamed metric cannot silently blank a panel or
// disarm an alert.
func TestMetricsCatalogMatchesServices(t *testing.T) {
	t.Parallel()
	root := proctest.RepoRoot(t)
	f, err := os.Open(filepath.Join(root, "deployments", "metrics-catalog.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sources := map[string]string{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		// The fourth column names the emitter; pkg/sink rows may add the
		// sinks using it ("pkg/sink (s3-sink)").
		name, svc := fields[0], fields[3]
		if svc == "prometheus" {
			continue
		}
		if svc == "pkg/sink" {
			n++
			if !sinkRuntimeMetrics(t)[name] {
				t.Errorf("%s: catalog says pkg/sink emits it, but sink.NewMetrics registers no such metric", name)
			}
			continue
		}
		src, ok := sources[svc]
		if !ok {
			src = serviceSource(t, filepath.Join(root, "services", svc))
			sources[svc] = src
		}
		n++
		if !strings.Contains(src, `"`+name+`"`) {
			t.Errorf("%s: catalog says %s emits it, but no non-test source of that service names it", name, svc)
		}
	}
	if n < 5 {
		t.Fatalf("catalog lists only %d service metrics", n)
	}
}

func serviceSource(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		data, err := os.ReadFile(p)
		b.Write(data)
		return err
	})
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	return b.String()
}

// descRecorder is a Registerer that keeps the names of what is registered.
type descRecorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return nil
}

func (d descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d descRecorder) Unregister(prometheus.Collector) bool { return false }

// sinkRuntimeMetrics returns the names of the metrics the shared sink
// runtime registers (the sluice_sink_* series every sink exports).
func sinkRuntimeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	d := descRecorder{names: map[string]bool{}}
	sink.NewMetrics(d, "catalog", 1)
	if len(d.names) == 0 {
		t.Fatal("sink.NewMetrics registered nothing")
	}
	return d.names
}
