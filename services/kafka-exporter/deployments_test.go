package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/probe"
)

// deployDir is the repository's deployments directory.
const deployDir = "../../deployments"

// promtool returns the promtool path, skipping the test outside CI when
// it is not installed (scripts/tools.sh installs it) and failing in CI.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("promtool not found in CI (scripts/tools.sh installs Debian's prometheus package): %v", err)
	}
	t.Skip("promtool not installed: run scripts/tools.sh (Debian package prometheus) to check and unit-test the rules")
	return ""
}

// TestPromtool checks the rules and the scrape configuration and runs the
// rule unit tests with promtool.
func TestPromtool(t *testing.T) {
	t.Parallel()
	bin := promtool(t)
	rules, _ := filepath.Glob(filepath.Join(deployDir, "prometheus/rules/*.yml"))
	tests, _ := filepath.Glob(filepath.Join(deployDir, "prometheus/tests/*.yml"))
	if len(rules) == 0 || len(tests) == 0 {
		t.Fatalf("rules %v, tests %v: want both", rules, tests)
	}
	runs := [][]string{
		append([]string{"check", "rules"}, rules...),
		append([]string{"test", "rules"}, tests...),
		{"check", "config", filepath.Join(deployDir, "prometheus/prometheus.yml")},
	}
	for _, args := range runs {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// ruleFile is the part of a Prometheus rule file the checks need.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// expression is one PromQL expression and where it came from.
type expression struct{ where, expr string }

func loadRules(t *testing.T) (exprs []expression, recorded map[string]bool) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(deployDir, "prometheus/rules/*.yml"))
	recorded = map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recorded[r.Record] = true
				}
				exprs = append(exprs, expression{filepath.Base(f) + ": " + r.Record + r.Alert, r.Expr})
			}
		}
	}
	if len(exprs) == 0 {
		t.Fatal("no rules found")
	}
	return exprs, recorded
}

var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// loadDashboards checks each dashboard's datasource wiring and returns its
// PromQL expressions (panel targets and query variables).
func loadDashboards(t *testing.T) []expression {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(deployDir, "grafana/dashboards/*.json"))
	if len(files) < 3 {
		t.Fatalf("dashboards %v: want kafka overview, consumer lag and pipeline", files)
	}
	var out []expression
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID        string `json:"uid"`
			Templating struct {
				List []struct {
					Name, Type string
					Query      json.RawMessage
					Datasource *struct{ UID string } `json:"datasource"`
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				Type, Title string
				Datasource  *struct{ UID string } `json:"datasource"`
				Targets     []struct {
					Expr       string                `json:"expr"`
					Datasource *struct{ UID string } `json:"datasource"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := filepath.Base(f)
		hasDS := false
		for _, v := range d.Templating.List {
			switch v.Type {
			case "datasource":
				hasDS = hasDS || v.Name == "datasource"
			case "query":
				if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
					t.Errorf("%s: variable %s does not use ${datasource}", name, v.Name)
				}
				var q struct{ Query string }
				if err := json.Unmarshal(v.Query, &q); err != nil {
					t.Errorf("%s: variable %s query: %v", name, v.Name, err)
				}
				m := labelValues.FindStringSubmatch(q.Query)
				if m == nil {
					t.Errorf("%s: variable %s query %q is not label_values(metric, label)", name, v.Name, q.Query)
					continue
				}
				out = append(out, expression{name + ": variable " + v.Name, m[1]})
			}
		}
		if !hasDS {
			t.Errorf("%s: no datasource variable named datasource", name)
		}
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q does not use ${datasource}", name, p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no queries", name, p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s: panel %q target does not use ${datasource}", name, p.Title)
				}
				// Grafana substitutes variables before sending; give the
				// parser something it accepts in their place.
				expr := strings.NewReplacer("$topic", ".*", "$consumergroup", ".*", "$__rate_interval", "5m").Replace(tg.Expr)
				out = append(out, expression{name + ": " + p.Title, expr})
			}
		}
	}
	return out
}

// loadCatalog reads the metrics other Sluice services emit.
func loadCatalog(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(deployDir, "metrics-catalog.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out[strings.Fields(line)[0]] = true
	}
	return out
}

// exporterMetrics returns every family the exporter serves, read from a
// live scrape after two collections over a cluster with a consumer group
// (so per-group families, lag seconds included, have samples) and with
// the probe's metrics registered.
func exporterMetrics(t *testing.T) map[string]bool {
	t.Helper()
	c := kafkatest.Start(t)
	c.CreateTopic("t", 1, map[string]string{"retention.ms": "1000"})
	f := newFixture(t, c)
	probe.New(f.kc, f.admin, probe.Options{Registry: f.app.Metrics()})
	produce(t, f.kc, "t", 0, 10)
	commit(t, f.kc, "g", "t", map[int]int64{0: 3})
	if err := f.refresh(t); err != nil {
		t.Fatal(err)
	}
	f.now.Set(f.now.Now().Add(15 * time.Second))
	produce(t, f.kc, "t", 0, 10)
	if err := f.refresh(t); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for name := range scrape(t, f.srv.URL+"/metrics", false) {
		out[name] = true
	}
	return out
}

// TestDashboardsAndRulesUseKnownMetrics parses every PromQL expression in
// the rules and dashboards and checks each metric it selects is served by
// the exporter, recorded by a rule, or listed in the metrics catalog.
func TestDashboardsAndRulesUseKnownMetrics(t *testing.T) {
	t.Parallel()
	ruleExprs, recorded := loadRules(t)
	exprs := append(ruleExprs, loadDashboards(t)...)
	catalog := loadCatalog(t)
	emitted := exporterMetrics(t)
	for _, want := range []string{"kafka_consumergroup_lag_seconds", "kafka_consumergroup_status", "sluice_exporter_probe_roundtrip_duration_seconds", "kafka_topic_config_info"} {
		if !emitted[want] {
			t.Fatalf("exporter scrape lacks %s; emitted: %v", want, keys(emitted))
		}
	}
	known := func(name string) bool {
		if emitted[name] || recorded[name] || catalog[name] {
			return true
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && (emitted[base] || catalog[base]) {
				return true
			}
		}
		return false
	}
	used := map[string]bool{}
	pql := parser.NewParser(parser.Options{})
	for _, e := range exprs {
		ast, err := pql.ParseExpr(e.expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", e.where, e.expr, err)
			continue
		}
		var names []string
		parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				name := vs.Name
				for _, m := range vs.LabelMatchers {
					if m.Name == "__name__" {
						name = m.Value
					}
				}
				if name == "" {
					return errors.New("selector without a metric name")
				}
				names = append(names, name)
			}
			return nil
		})
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", e.where, e.expr)
		}
		for _, n := range names {
			used[n] = true
			if !known(n) {
				t.Errorf("%s: metric %s is neither emitted by the exporter, recorded by a rule, nor in deployments/metrics-catalog.txt", e.where, n)
			}
		}
	}
	// Every catalog entry is used somewhere, so the catalog stays honest.
	for n := range catalog {
		found := used[n]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			found = found || used[n+suf]
		}
		if !found {
			t.Errorf("catalog metric %s is used by no rule or dashboard", n)
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
