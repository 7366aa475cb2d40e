package checks

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// promConfig is the part of a Prometheus config the cross-check reads.
type promConfig struct {
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		StaticConfigs []struct {
			Targets []string `json:"targets"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

// promtoolCheckConfig runs `promtool check config` (which also checks every
// rule file the config loads) on the config at path.
func promtoolCheckConfig(t *testing.T, path string) (string, error) {
	t.Helper()
	out, stderr, err := run(t, filepath.Dir(path), tool(t, "promtool"), "check", "config", path)
	return out + stderr, err
}

// composeMetricsPort is the port a compose service serves /metrics on: its
// admin address when set, else its DESIGN.md metrics port.
func composeMetricsPort(p *types.Project, name string) int {
	if s, ok := p.Services[name]; ok {
		if v := s.Environment[adminVars[name]]; v != nil {
			if n, ok := portOf(*v); ok {
				return n
			}
		}
	}
	return designPorts[name].Metrics
}

// checkScrapeTargets requires a job per Sluice service scraping it, by its
// compose service name, on the port the stack serves its /metrics on (the
// admin port), and that the stack mounts the config and its rules where
// Prometheus reads them.
func checkScrapeTargets(cfg promConfig, p *types.Project) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	scraped := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, _ := strings.Cut(target, ":")
				n, _ := strconv.Atoi(port)
				if _, ok := designPorts[host]; ok {
					if want := composeMetricsPort(p, host); n != want {
						addf("job %s scrapes %s, but %s serves /metrics on %d", sc.JobName, target, host, want)
						continue
					}
					scraped[host] = true
					continue
				}
				if _, ok := p.Services[host]; !ok && host != "localhost" {
					addf("job %s scrapes %s, not a compose service", sc.JobName, target)
				}
			}
		}
	}
	for _, s := range services {
		if !scraped[s] {
			addf("no job scrapes %s", s)
		}
	}
	prom, ok := p.Services["prometheus"]
	if !ok {
		return append(problems, "compose has no prometheus service")
	}
	mounted := map[string]string{}
	for _, v := range prom.Volumes {
		mounted[v.Target] = v.Source
	}
	if mounted["/etc/prometheus/prometheus.yml"] == "" {
		addf("prometheus: config not mounted at /etc/prometheus/prometheus.yml")
	}
	for _, rf := range cfg.RuleFiles {
		target := filepath.Join("/etc/prometheus", rf)
		if !slices.ContainsFunc(sortedKeys(mounted), func(m string) bool { return target == m || strings.HasPrefix(target, m+"/") }) {
			addf("prometheus: rule file %s (%s in the container) is not mounted", rf, target)
		}
	}
	return problems
}

func readPromConfig(t *testing.T, path string) promConfig {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg promConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg
}

func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	path := repoPath(t, "deployments", "prometheus", "prometheus.yml")
	if out, err := promtoolCheckConfig(t, path); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	p, err := loadCompose(t, composeFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range checkScrapeTargets(readPromConfig(t, path), p) {
		t.Error(problem)
	}
}

// TestPrometheusDefectsCaught: promtool rejects a broken config or rule in
// the same layout, and the cross-check catches a wrong target.
func TestPrometheusDefectsCaught(t *testing.T) {
	t.Parallel()
	src := repoPath(t, "deployments", "prometheus")
	good, err := os.ReadFile(filepath.Join(src, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("promtool", func(t *testing.T) {
		cases := map[string]func(dir string) error{
			"bad interval": func(dir string) error {
				return os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(strings.Replace(string(good), "scrape_interval: 15s", "scrape_interval: 15 seconds", 1)), 0o644)
			},
			"broken rule expression": func(dir string) error {
				return os.WriteFile(filepath.Join(dir, "rules", "recording.yml"), []byte("groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: sum(rate(foo[5m]) by\n"), 0o644)
			},
		}
		for name, inject := range cases {
			dir := t.TempDir()
			copyTree(t, src, dir)
			if err := inject(dir); err != nil {
				t.Fatal(err)
			}
			if out, err := promtoolCheckConfig(t, filepath.Join(dir, "prometheus.yml")); err == nil {
				t.Errorf("%s: promtool accepted it:\n%s", name, out)
			}
		}
	})
	t.Run("targets", func(t *testing.T) {
		p, err := loadCompose(t, composeFile(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		var cfg promConfig
		bad := strings.Replace(string(good), "s3-sink:9102", "s3-sink:9103", 1)
		bad = strings.Replace(bad, "ingest-gateway:9104", "ingest-gateway:8080", 1)
		if bad == string(good) {
			t.Fatal("injection did not change the config")
		}
		if err := yaml.Unmarshal([]byte(bad), &cfg); err != nil {
			t.Fatal(err)
		}
		problems := checkScrapeTargets(cfg, p)
		for _, want := range []string{"scrapes s3-sink:9103", "no job scrapes s3-sink", "scrapes ingest-gateway:8080, but ingest-gateway serves /metrics on 9104"} {
			if !slices.ContainsFunc(problems, func(s string) bool { return strings.Contains(s, want) }) {
				t.Errorf("want a problem containing %q, got %q", want, problems)
			}
		}
	})
}

// TestGrafanaProvisioning: the datasource points at the compose Prometheus
// and the dashboard provider reads the directory the dashboards are mounted in.
func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	p, err := loadCompose(t, composeFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := p.Services["grafana"]
	mounts := map[string]string{}
	for _, v := range g.Volumes {
		mounts[v.Target] = v.Source
	}
	prov := mounts["/etc/grafana/provisioning"]
	if prov == "" {
		t.Fatal("grafana: provisioning directory not mounted")
	}
	var ds struct {
		Datasources []struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	b, err := os.ReadFile(filepath.Join(prov, "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &struct {
		APIVersion  int `json:"apiVersion"`
		Datasources any `json:"datasources"`
	}{}); err != nil {
		t.Errorf("datasource file: %v", err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil || len(ds.Datasources) == 0 || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("datasource %+v (%v), want prometheus at http://prometheus:9090", ds, err)
	}
	var dash struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	b, err = os.ReadFile(filepath.Join(prov, "dashboards", "sluice.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &dash); err != nil || len(dash.Providers) == 0 {
		t.Fatalf("dashboard provider: %v", err)
	}
	src := mounts[dash.Providers[0].Options.Path]
	if src == "" {
		t.Fatalf("dashboards path %s is not a mount", dash.Providers[0].Options.Path)
	}
	if m, _ := filepath.Glob(filepath.Join(src, "*.json")); len(m) == 0 {
		t.Errorf("no dashboards in %s", src)
	}
}
