package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		name, svc := fields[0], fields[len(fields)-1]
		if svc == "prometheus" {
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
