package checks

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

func composeFile(tb testing.TB) string {
	return repoPath(tb, "deployments", "compose", "docker-compose.yml")
}

// loadCompose parses a compose file with compose-go (the library docker
// compose itself uses): schema validation, anchors and merge keys, path
// resolution relative to the file, normalisation. content overrides the
// file's bytes (for defect injection) while paths still resolve from its
// directory.
func loadCompose(tb testing.TB, file string, content []byte) (*types.Project, error) {
	tb.Helper()
	if content == nil {
		b, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		content = b
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(file),
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: content}},
		Environment: types.Mapping{},
	}
	return loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("sluice", true)
		o.ResolvePaths = true
	})
}

// checkCompose cross-checks the stack against the repository: each Sluice
// service is built from its Dockerfile with the repository root as context,
// sets only variables it reads, publishes the DESIGN.md ports, listens where
// it publishes, and reaches its dependencies by service name and port.
func checkCompose(p *types.Project, root string, envs map[string]envSpec) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	targetPorts := func(s types.ServiceConfig) map[int]bool {
		out := map[int]bool{}
		for _, port := range s.Ports {
			out[int(port.Target)] = true
		}
		return out
	}
	// hostPort checks a host:port reference to another compose service.
	hostPort := func(what, host string, port int) {
		dep, ok := p.Services[host]
		if !ok {
			addf("%s: %s is not a compose service", what, host)
			return
		}
		if want, ok := designPorts[host]; ok && port != want.API && port != want.GRPC {
			addf("%s: %s:%d is not an API port of %s", what, host, port, host)
		}
		_ = dep
	}
	for _, name := range services {
		s, ok := p.Services[name]
		if !ok {
			addf("service %s missing", name)
			continue
		}
		what := "service " + name
		if s.Build == nil {
			addf("%s: not built from its Dockerfile", what)
		} else {
			if filepath.Clean(s.Build.Context) != filepath.Clean(root) {
				addf("%s: build context %s, want the repository root", what, s.Build.Context)
			}
			want := filepath.ToSlash(filepath.Join("services", name, "Dockerfile"))
			df := filepath.ToSlash(s.Build.Dockerfile)
			if rel, err := filepath.Rel(root, s.Build.Dockerfile); err == nil && filepath.IsAbs(s.Build.Dockerfile) {
				df = filepath.ToSlash(rel)
			}
			if df != want {
				addf("%s: dockerfile %s, want %s", what, s.Build.Dockerfile, want)
			} else if _, err := os.Stat(filepath.Join(root, want)); err != nil {
				addf("%s: %v", what, err)
			}
		}
		if u := strings.SplitN(s.User, ":", 2)[0]; u != "65532" {
			addf("%s: user %q, want 65532", what, s.User)
		}
		if !s.ReadOnly {
			addf("%s: root filesystem not read_only", what)
		}
		var set []string
		for k := range s.Environment {
			set = append(set, k)
		}
		for _, v := range unknownVars(envs[name], set) {
			addf("%s: sets %s, which %s does not read", what, v, name)
		}
		ports := targetPorts(s)
		want := designPorts[name]
		for _, port := range []int{want.API, want.GRPC, adminPorts[name]} {
			if port == 0 {
				continue
			}
			if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool {
				return int(pc.Target) == port && pc.Published == strconv.Itoa(port)
			}) {
				addf("%s: does not publish %d:%d (DESIGN.md API ports, admin port %d)", what, port, port, adminPorts[name])
			}
		}
		// Like the chart: /metrics and health on the admin port alone, the
		// port prometheus.yml scrapes.
		if v := s.Environment[adminVars[name]]; v == nil {
			addf("%s: does not set %s (:%d): /metrics and health would share the API port", what, adminVars[name], adminPorts[name])
		} else if port, ok := portOf(*v); !ok || port != adminPorts[name] {
			addf("%s: %s=%s, want :%d", what, adminVars[name], *v, adminPorts[name])
		}
		for _, k := range sortedKeys(s.Environment) {
			v := s.Environment[k]
			if v == nil {
				continue
			}
			switch {
			case isListenAddr(k):
				if port, ok := portOf(*v); !ok || !ports[port] {
					addf("%s: %s=%s listens on a port it does not publish", what, k, *v)
				}
			case k == "KAFKA_BROKERS":
				for _, b := range strings.Split(*v, ",") {
					host, port, _ := strings.Cut(b, ":")
					if _, ok := p.Services[host]; !ok {
						addf("%s: broker %s is not a compose service", what, b)
					} else if port != "9092" {
						addf("%s: broker %s is not Kafka's internal listener (9092)", what, b)
					}
				}
			case strings.HasSuffix(k, "_URL") || k == "S3_ENDPOINT":
				u, err := url.Parse(*v)
				if err != nil || u.Hostname() == "" {
					addf("%s: %s=%q is not a URL", what, k, *v)
					continue
				}
				port, _ := strconv.Atoi(u.Port())
				hostPort(what+" "+k, u.Hostname(), port)
			}
		}
		// docker compose stop sends SIGKILL after stop_grace_period (10s
		// unless set): it must outlast the drain, SHUTDOWN_DELAY +
		// SHUTDOWN_TIMEOUT, as set here or defaulted by the service.
		grace := 10 * time.Second
		if s.StopGracePeriod != nil {
			grace = time.Duration(*s.StopGracePeriod)
		}
		var drain time.Duration
		for _, k := range []string{"SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT"} {
			v := envs[name].Vars[k]
			if e := s.Environment[k]; e != nil {
				v = *e
			}
			if v == "" {
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				addf("%s: %s=%q is not a duration", what, k, v)
			}
			drain += d
		}
		if grace <= drain {
			addf("%s: stop_grace_period %s does not exceed SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (%s)", what, grace, drain)
		}
		for dep := range s.DependsOn {
			if _, ok := p.Services[dep]; !ok {
				addf("%s: depends on unknown service %s", what, dep)
			}
		}
	}
	for _, name := range sortedKeys(p.Services) {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				addf("service %s: bind mount source %s does not exist", name, v.Source)
			}
		}
	}
	return problems
}

func TestCompose(t *testing.T) {
	t.Parallel()
	p, err := loadCompose(t, composeFile(t), nil)
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	for _, want := range []string{"kafka", "minio", "minio-init", "elasticsearch", "kibana", "kibana-init", "prometheus", "grafana"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("compose stack lacks %s", want)
		}
	}
	if img := p.Services["kafka"].Image; !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka image %s, want apache/kafka", img)
	}
	if env := p.Services["kafka"].Environment; env["KAFKA_PROCESS_ROLES"] == nil || *env["KAFKA_PROCESS_ROLES"] != "broker,controller" {
		t.Errorf("kafka is not a single KRaft broker+controller")
	}
	if env := p.Services["elasticsearch"].Environment; env["xpack.security.enabled"] == nil || *env["xpack.security.enabled"] != "false" {
		t.Errorf("elasticsearch security is not off (dev stack)")
	}
	for _, p := range checkCompose(p, repoRoot(t), serviceEnvs(t)) {
		t.Error(p)
	}
}

// TestComposeDefectsCaught injects one defect at a time into the real file.
func TestComposeDefectsCaught(t *testing.T) {
	t.Parallel()
	file := composeFile(t)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	good := string(b)
	envs := serviceEnvs(t)
	cases := []struct{ name, old, new, want string }{
		{"unread variable", `      KAFKA_CLIENT_ID: sluice-s3-sink`, "      KAFKA_CLIENT_ID: sluice-s3-sink\n      S3_SINK_BATCH_SIZ: \"5\"", "sets S3_SINK_BATCH_SIZ, which s3-sink does not read"},
		{"port not DESIGN.md", `ports: ["9103:9103"]`, `ports: ["9104:9103"]`, "does not publish 9103:9103"},
		{"listen address off the published port", `SCHEMA_REGISTRY_HTTP_ADDR: ":8081"`, `SCHEMA_REGISTRY_HTTP_ADDR: ":8082"`, "listens on a port it does not publish"},
		{"wrong Dockerfile", "dockerfile: services/search-sink/Dockerfile", "dockerfile: services/search/Dockerfile", "want services/search-sink/Dockerfile"},
		{"wrong build context", "      context: ../..\n      dockerfile: services/kafka-exporter/Dockerfile", "      context: ..\n      dockerfile: services/kafka-exporter/Dockerfile", "want the repository root"},
		{"broker typo", "KAFKA_BROKERS: kafka:9092", "KAFKA_BROKERS: kafak:9092", "is not a compose service"},
		{"registry on the wrong port", "REGISTRY_URL: http://schema-registry:8081", "REGISTRY_URL: http://schema-registry:8080", "is not an API port of schema-registry"},
		{"registry URL on the admin port", "REGISTRY_URL: http://schema-registry:8081", "REGISTRY_URL: http://schema-registry:9105", "schema-registry:9105 is not an API port of schema-registry"},
		{"gateway metrics on the API port", "      GATEWAY_ADMIN_ADDR: \":9104\"\n", "", "does not set GATEWAY_ADMIN_ADDR"},
		{"admin port not published", `ports: ["8081:8081", "9091:9091", "9105:9105"]`, `ports: ["8081:8081", "9091:9091"]`, "does not publish 9105:9105"},
		{"grace period shorter than the drain", "  stop_grace_period: 45s", "  stop_grace_period: 20s", "stop_grace_period 20s does not exceed SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (30s)"},
		{"missing bind source", "./grafana/provisioning:", "./grafana/provisionin:", "does not exist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(good, tc.old) {
				t.Fatalf("compose file no longer contains %q: update the injected defect", tc.old)
			}
			p, err := loadCompose(t, file, []byte(strings.Replace(good, tc.old, tc.new, 1)))
			if err != nil {
				t.Fatalf("compose-go: %v", err)
			}
			problems := checkCompose(p, repoRoot(t), envs)
			if !slices.ContainsFunc(problems, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Fatalf("want a problem containing %q, got %q", tc.want, problems)
			}
		})
	}
	// Schema violations are compose-go's to catch.
	bad := strings.Replace(good, "    restart: \"no\"", "    restart: sometimes\n    replicaz: 2", 1)
	if _, err := loadCompose(t, file, []byte(bad)); err == nil {
		t.Error("compose-go accepted an unknown service key")
	}
}
