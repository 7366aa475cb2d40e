package checks

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// kubeVersions brackets what the chart supports: its kubeVersion floor and
// the newest Kubernetes whose API types deployments/checks decodes into.
var kubeVersions = []string{"1.27.0", "1.34.0"}

// valuesMatrix is every values file the chart must render cleanly with.
var valuesMatrix = []struct{ name, file string }{
	{"defaults", "ci/required-values.yaml"},
	{"openshift", "ci/openshift-values.yaml"},
	{"all-on", "ci/all-on-values.yaml"},
	{"minimal", "ci/minimal-values.yaml"},
	{"aws", "values-aws.yaml"},
	{"local", "values-local.yaml"},
}

func chartDir(tb testing.TB) string { return repoPath(tb, "helm", "sluice") }

// helmTemplate renders the chart; args are extra flags (-f, --set). Without
// a values file (-f) it adds the required values (ci/required-values.yaml),
// so "the defaults" render; a values file given stands alone, as a user's
// would.
func helmTemplate(tb testing.TB, chart, kubeVersion string, args ...string) (string, string, error) {
	tb.Helper()
	if !slices.Contains(args, "-f") {
		args = append([]string{"-f", filepath.Join(chart, "ci", "required-values.yaml")}, args...)
	}
	return helmTemplateBare(tb, chart, kubeVersion, args...)
}

// helmTemplateBare renders the chart with nothing but args.
func helmTemplateBare(tb testing.TB, chart, kubeVersion string, args ...string) (string, string, error) {
	tb.Helper()
	full := append([]string{"template", "sluice", chart, "--namespace", "sluice", "--kube-version", kubeVersion}, args...)
	return runHelm(tb, chart, full...)
}

// runHelm runs helm isolated from the user's setup: no kubeconfig (whose
// permissions helm warns about on stderr), and config, cache and data
// directories of its own, so local plugins or repositories change nothing.
func runHelm(tb testing.TB, dir string, args ...string) (string, string, error) {
	tb.Helper()
	home := tb.TempDir()
	return runEnv(tb, dir, []string{
		"KUBECONFIG=" + filepath.Join(home, "no-kubeconfig"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}, tool(tb, "helm"), args...)
}

func valuesArgs(chart, file string) []string {
	if file == "" {
		return nil
	}
	return []string{"-f", filepath.Join(chart, file)}
}

func TestHelmLint(t *testing.T) {
	t.Parallel()
	chart := chartDir(t)
	for _, v := range valuesMatrix {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", chart, "--kube-version", kubeVersions[len(kubeVersions)-1]}, valuesArgs(chart, v.file)...)
			out, stderr, err := runHelm(t, chart, args...)
			if err != nil || strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Fatalf("helm lint --strict: %v\n%s%s", err, out, stderr)
			}
		})
	}
}

// TestHelmLintCatchesDefect: a chart copy with a broken template must fail lint.
func TestHelmLintCatchesDefect(t *testing.T) {
	t.Parallel()
	chart := filepath.Join(t.TempDir(), "sluice")
	copyTree(t, chartDir(t), chart)
	bad := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.nope.missing }}\n"
	if err := os.WriteFile(filepath.Join(chart, "templates", "broken.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := runHelm(t, chart, "lint", "--strict", chart, "--kube-version", kubeVersions[0])
	if err == nil || !strings.Contains(out, "[ERROR]") {
		t.Fatalf("lint passed a template reading a missing value:\n%s", out)
	}
}

func TestHelmTemplate(t *testing.T) {
	t.Parallel()
	chart := chartDir(t)
	envs := serviceEnvs(t)
	for _, kv := range kubeVersions {
		for _, v := range valuesMatrix {
			t.Run(v.name+"/"+kv, func(t *testing.T) {
				t.Parallel()
				out, stderr, err := helmTemplate(t, chart, kv, valuesArgs(chart, v.file)...)
				if err != nil {
					t.Fatalf("helm template: %v\n%s", err, stderr)
				}
				if strings.TrimSpace(stderr) != "" {
					t.Errorf("helm template printed warnings:\n%s", stderr)
				}
				docs, errs := decodeManifests(out)
				for _, e := range errs {
					t.Errorf("strict decode: %v", e)
				}
				if len(docs) == 0 {
					t.Fatal("nothing rendered")
				}
				for _, p := range checkManifests(docs, envs) {
					t.Error(p)
				}
			})
		}
	}
}

// renderDefaults renders the default values and decodes them.
func renderDefaults(t *testing.T, args ...string) []manifest {
	t.Helper()
	out, stderr, err := helmTemplate(t, chartDir(t), kubeVersions[len(kubeVersions)-1], args...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	docs, errs := decodeManifests(out)
	if len(errs) > 0 {
		t.Fatalf("decode: %v", errs)
	}
	return docs
}

func findDoc[T any](t *testing.T, docs []manifest, name string) T {
	t.Helper()
	for _, d := range docs {
		if o, ok := d.Obj.(T); ok && strings.HasSuffix(d.Name, name) {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named *%s rendered", zero, name)
	return zero
}

// setEnv edits the env entry name of a Deployment's first container.
func setEnv(t *testing.T, d *appsv1.Deployment, name string, edit func(*corev1.EnvVar)) {
	t.Helper()
	c := &d.Spec.Template.Spec.Containers[0]
	for i := range c.Env {
		if c.Env[i].Name == name {
			edit(&c.Env[i])
			return
		}
	}
	t.Fatalf("%s sets no env %s", d.Name, name)
}

// TestManifestDefectsCaught injects one defect at a time into the real
// rendered output and requires checkManifests to name it.
func TestManifestDefectsCaught(t *testing.T) {
	t.Parallel()
	envs := serviceEnvs(t)
	cases := []struct {
		name   string
		values []string
		mutate func(t *testing.T, docs []manifest)
		want   string
	}{
		{"no readiness probe", nil, func(t *testing.T, d []manifest) {
			findDoc[*appsv1.Deployment](t, d, "s3-sink").Spec.Template.Spec.Containers[0].ReadinessProbe = nil
		}, "no readiness probe"},
		{"liveness on wrong path", nil, func(t *testing.T, d []manifest) {
			findDoc[*appsv1.Deployment](t, d, "ingest-gateway").Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Path = "/"
		}, "liveness probe GETs /"},
		{"selector does not match pods", nil, func(t *testing.T, d []manifest) {
			findDoc[*appsv1.Deployment](t, d, "search-sink").Spec.Template.Labels["app.kubernetes.io/component"] = "search"
		}, "does not match its pod labels"},
		{"service selects nothing", nil, func(t *testing.T, d []manifest) {
			findDoc[*corev1.Service](t, d, "schema-registry").Spec.Selector["app.kubernetes.io/instance"] = "other"
		}, "matches no Deployment's pods"},
		{"writable root filesystem", nil, func(t *testing.T, d []manifest) {
			f := false
			findDoc[*appsv1.Deployment](t, d, "kafka-exporter").Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
		}, "readOnlyRootFilesystem is not true"},
		{"capabilities kept", nil, func(t *testing.T, d []manifest) {
			findDoc[*appsv1.Deployment](t, d, "kafka-exporter").Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Drop = nil
		}, "capabilities must drop ALL"},
		{"no memory limit", nil, func(t *testing.T, d []manifest) {
			delete(findDoc[*appsv1.Deployment](t, d, "s3-sink").Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
		}, "limits needs memory"},
		{"env var no service reads", nil, func(t *testing.T, d []manifest) {
			findDoc[*corev1.ConfigMap](t, d, "ingest-gateway").Data["GATEWAY_MAX_RECORDZ"] = "5"
		}, "sets GATEWAY_MAX_RECORDZ, which ingest-gateway does not read"},
		{"another service's variable", nil, func(t *testing.T, d []manifest) {
			findDoc[*corev1.ConfigMap](t, d, "kafka-exporter").Data["S3_SINK_ADMIN_ADDR"] = ":9102"
		}, "sets S3_SINK_ADMIN_ADDR, which kafka-exporter does not read"},
		{"secret in a ConfigMap", nil, func(t *testing.T, d []manifest) {
			findDoc[*corev1.ConfigMap](t, d, "s3-sink").Data["S3_SECRET_ACCESS_KEY"] = "x"
		}, "secret S3_SECRET_ACCESS_KEY is in ConfigMap"},
		{"secret as a literal", nil, func(t *testing.T, d []manifest) {
			c := &findDoc[*appsv1.Deployment](t, d, "schema-registry").Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "KAFKA_SASL_PASSWORD", Value: "hunter2"})
		}, "secret KAFKA_SASL_PASSWORD given as a literal"},
		{"service name not a DNS label", nil, func(t *testing.T, d []manifest) {
			for i := range d {
				if s, ok := d[i].Obj.(*corev1.Service); ok && strings.HasSuffix(s.Name, "search-sink") {
					d[i].Name = "9sluice_search"
				}
			}
		}, "name 9sluice_search"},
		{"port name too long", nil, func(t *testing.T, d []manifest) {
			findDoc[*appsv1.Deployment](t, d, "kafka-exporter").Spec.Template.Spec.Containers[0].Ports[0].Name = "exporter-metrics"
		}, "port name exporter-metrics"},
		{"grace period shorter than the drain", nil, func(t *testing.T, d []manifest) {
			g := int64(20)
			findDoc[*appsv1.Deployment](t, d, "s3-sink").Spec.Template.Spec.TerminationGracePeriodSeconds = &g
		}, "terminationGracePeriodSeconds 20 does not exceed SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (35s)"},
		{"GOMEMLIMIT above the limit", nil, func(t *testing.T, d []manifest) {
			c := &findDoc[*appsv1.Deployment](t, d, "search-sink").Spec.Template.Spec.Containers[0]
			for i := range c.Env {
				if c.Env[i].Name == "GOMEMLIMIT" {
					c.Env[i].Value = "600MiB"
				}
			}
		}, "GOMEMLIMIT=600MiB must parse and stay below the memory limit 512Mi"},
		{"listen port not declared", nil, func(t *testing.T, d []manifest) {
			cm := findDoc[*corev1.ConfigMap](t, d, "s3-sink")
			for k := range cm.Data {
				if isListenAddr(k) {
					cm.Data[k] = ":9999"
				}
			}
		}, "listens on a port the container does not declare"},
		{"port differs from DESIGN.md", nil, func(t *testing.T, d []manifest) {
			findDoc[*appsv1.Deployment](t, d, "search-sink").Spec.Template.Spec.Containers[0].Ports[0].ContainerPort = 9200
		}, "no container port metrics=9103"},
		{"HPA and replicas", nil, func(t *testing.T, d []manifest) {
			n := int32(3)
			findDoc[*appsv1.Deployment](t, d, "ingest-gateway").Spec.Replicas = &n
		}, "sets replicas although an HPA scales it"},
		{"service monitor on a missing port", []string{"--set", "serviceMonitor.enabled=true"}, func(t *testing.T, d []manifest) {
			findDoc[*monitoringv1.ServiceMonitor](t, d, "s3-sink").Spec.Endpoints[0].Port = "admin"
		}, `endpoint port "admin" is not a port`},
		{"KEDA watches another group", []string{"--set", "services.s3-sink.autoscaling.enabled=false", "--set", "services.s3-sink.keda.enabled=true"}, func(t *testing.T, d []manifest) {
			findDoc[*scaledObject](t, d, "s3-sink").Spec.Triggers[0].Metadata["consumerGroup"] = "other"
		}, "watches group"},
		{"KEDA parameter typo", []string{"--set", "services.search-sink.autoscaling.enabled=false", "--set", "services.search-sink.keda.enabled=true"}, func(t *testing.T, d []manifest) {
			findDoc[*scaledObject](t, d, "search-sink").Spec.Triggers[0].Metadata["lagTreshold"] = "10"
		}, `unknown kafka trigger parameter "lagTreshold"`},
		// Metrics and health on an admin port of their own (issue 13).
		{"gateway metrics on the API port", nil, func(t *testing.T, d []manifest) {
			delete(findDoc[*corev1.ConfigMap](t, d, "ingest-gateway").Data, "GATEWAY_ADMIN_ADDR")
		}, "does not set GATEWAY_ADMIN_ADDR: /metrics, /healthz and /readyz would be served on its API port"},
		{"registry admin port is the API port", nil, func(t *testing.T, d []manifest) {
			findDoc[*corev1.ConfigMap](t, d, "schema-registry").Data["SCHEMA_REGISTRY_ADMIN_ADDR"] = ":8081"
		}, "SCHEMA_REGISTRY_ADMIN_ADDR and SCHEMA_REGISTRY_HTTP_ADDR are both port 8081"},
		{"readiness probe on the API port", nil, func(t *testing.T, d []manifest) {
			findDoc[*appsv1.Deployment](t, d, "ingest-gateway").Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intstr.FromString("http")
		}, "readiness probe on port http (8080), not the admin port 9104"},
		{"startup probe on the API port", nil, func(t *testing.T, d []manifest) {
			findDoc[*appsv1.Deployment](t, d, "schema-registry").Spec.Template.Spec.Containers[0].StartupProbe.HTTPGet.Port = intstr.FromInt32(8081)
		}, "startup probe on port 8081 (8081), not the admin port 9105"},
		{"service monitor scrapes the API Service", []string{"--set", "serviceMonitor.enabled=true"}, func(t *testing.T, d []manifest) {
			sm := findDoc[*monitoringv1.ServiceMonitor](t, d, "ingest-gateway")
			delete(sm.Spec.Selector.MatchLabels, "sluicehq.io/metrics")
			sm.Spec.Endpoints[0].Port = "http"
		}, `endpoint port "http" reaches port 8080 of sluice-ingest-gateway, not its admin port 9104`},
		{"metrics Service port on the API", nil, func(t *testing.T, d []manifest) {
			findDoc[*corev1.Service](t, d, "schema-registry-metrics").Spec.Ports[0].TargetPort = intstr.FromString("http")
		}, "Service/sluice-schema-registry-metrics: port metrics reaches port 8081 of sluice-schema-registry; only the port named metrics may reach its admin port 9105"},
		{"API Service carries the metrics port", nil, func(t *testing.T, d []manifest) {
			s := findDoc[*corev1.Service](t, d, "ingest-gateway")
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "metrics", Port: 9104, TargetPort: intstr.FromString("metrics")})
		}, "Service/sluice-ingest-gateway: carries API port(s) [http grpc] and the admin port 9104: whatever publishes the API publishes /metrics too"},
		{"LoadBalancer publishes /metrics", nil, func(t *testing.T, d []manifest) {
			findDoc[*corev1.Service](t, d, "search-sink").Spec.Type = corev1.ServiceTypeLoadBalancer
		}, "Service/sluice-search-sink: type LoadBalancer publishes the admin port 9103 outside the cluster"},
		{"ingress publishes /metrics", []string{"--set", "services.ingest-gateway.ingress.enabled=true"}, func(t *testing.T, d []manifest) {
			b := findDoc[*networkingv1.Ingress](t, d, "ingest-gateway").Spec.Rules[0].HTTP.Paths[0].Backend.Service
			b.Name, b.Port.Name = b.Name+"-metrics", "metrics"
		}, "its admin port: the Ingress would publish /metrics"},
		{"ingress to a gateway serving metrics on its API port", []string{"--set", "services.ingest-gateway.ingress.enabled=true"}, func(t *testing.T, d []manifest) {
			delete(findDoc[*corev1.ConfigMap](t, d, "ingest-gateway").Data, "GATEWAY_ADMIN_ADDR")
		}, "whose API port also serves /metrics and health (GATEWAY_ADMIN_ADDR is not set)"},
		// NetworkPolicies (issue 13).
		{"metricsFrom opens an API port", nil, func(t *testing.T, d []manifest) {
			np := findDoc[*networkingv1.NetworkPolicy](t, d, "schema-registry")
			for i, r := range np.Spec.Ingress {
				if len(r.Ports) == 1 && r.Ports[0].Port.String() == "metrics" {
					http := intstr.FromString("http")
					np.Spec.Ingress[i].Ports = append(np.Spec.Ingress[i].Ports, networkingv1.NetworkPolicyPort{Port: &http})
				}
			}
		}, "opens the admin port together with API port(s) [http]"},
		{"registry API open beyond the release", nil, func(t *testing.T, d []manifest) {
			np := findDoc[*networkingv1.NetworkPolicy](t, d, "schema-registry")
			np.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}
		}, "opens API port(s) [http grpc] of sluice-schema-registry beyond this release's pods"},
		{"rule without ports", nil, func(t *testing.T, d []manifest) {
			findDoc[*networkingv1.NetworkPolicy](t, d, "s3-sink").Spec.Ingress[0].Ports = nil
		}, "ingress rule 0 names no ports: it opens every port"},
		// Registry credentials only through Secrets, least role (issue 13).
		{"registry password as a literal", nil, func(t *testing.T, d []manifest) {
			setEnv(t, findDoc[*appsv1.Deployment](t, d, "schema-registry"), "SCHEMA_REGISTRY_AUTH_USERS", func(e *corev1.EnvVar) {
				e.Value = strings.Replace(e.Value, "$(SLUICE_REGISTRY_ADMIN_PASSWORD)", "hunter2hunter2", 1)
			})
		}, "secret SCHEMA_REGISTRY_AUTH_USERS given as a literal value"},
		{"users composed before their parts", nil, func(t *testing.T, d []manifest) {
			c := &findDoc[*appsv1.Deployment](t, d, "schema-registry").Spec.Template.Spec.Containers[0]
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "SCHEMA_REGISTRY_AUTH_USERS" })
			users := c.Env[i]
			c.Env = slices.Insert(slices.Delete(c.Env, i, i+1), 0, users)
		}, "references $(SLUICE_REGISTRY_READER_USERNAME), which no earlier env entry"},
		{"secret entry composed into nothing", nil, func(t *testing.T, d []manifest) {
			c := &findDoc[*appsv1.Deployment](t, d, "schema-registry").Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "SLUICE_REGISTRY_SPARE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sluice-registry-auth"}, Key: "admin-password"}}})
		}, "sets SLUICE_REGISTRY_SPARE, which schema-registry does not read"},
		{"sink without registry credentials", nil, func(t *testing.T, d []manifest) {
			c := &findDoc[*appsv1.Deployment](t, d, "s3-sink").Spec.Template.Spec.Containers[0]
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return strings.HasPrefix(e.Name, "REGISTRY_") })
		}, "registry auth is on but it sends no REGISTRY_USERNAME/REGISTRY_PASSWORD from a Secret"},
		{"sink with the admin user", nil, func(t *testing.T, d []manifest) {
			dep := findDoc[*appsv1.Deployment](t, d, "search-sink")
			for _, v := range []string{"REGISTRY_USERNAME", "REGISTRY_PASSWORD"} {
				setEnv(t, dep, v, func(e *corev1.EnvVar) {
					e.ValueFrom.SecretKeyRef.Key = strings.Replace(e.ValueFrom.SecretKeyRef.Key, "reader-", "admin-", 1)
				})
			}
		}, "holds the registry's rw user but only reads schemas; give it the ro user"},
		{"sink with mismatched user and password", nil, func(t *testing.T, d []manifest) {
			setEnv(t, findDoc[*appsv1.Deployment](t, d, "s3-sink"), "REGISTRY_USERNAME", func(e *corev1.EnvVar) {
				e.ValueFrom.SecretKeyRef.Key = "admin-username"
			})
		}, "REGISTRY_USERNAME comes from sluice-registry-auth/admin-username but the user with that password is sluice-registry-auth/reader-username"},
		{"helm test with the read-only user", nil, func(t *testing.T, d []manifest) {
			c := &findDoc[*corev1.Pod](t, d, "test-produce").Spec.Containers[0]
			for i := range c.Env {
				if r := c.Env[i].ValueFrom; r != nil && r.SecretKeyRef != nil {
					r.SecretKeyRef.Key = strings.Replace(r.SecretKeyRef.Key, "admin-", "reader-", 1)
				}
			}
		}, "registers schemas but holds the registry's ro user; it needs rw"},
		{"password in a ConfigMap", nil, func(t *testing.T, d []manifest) {
			pw := findDoc[*corev1.Secret](t, d, "registry-auth").Data["admin-password"]
			findDoc[*corev1.ConfigMap](t, d, "schema-registry").Data["SCHEMA_REGISTRY_TOPIC"] = string(pw)
		}, "ConfigMap/sluice-schema-registry key SCHEMA_REGISTRY_TOPIC: holds the value of Secret sluice-registry-auth key admin-password"},
		{"password in the test script", nil, func(t *testing.T, d []manifest) {
			pw := findDoc[*corev1.Secret](t, d, "registry-auth").Data["admin-password"]
			c := &findDoc[*corev1.Pod](t, d, "test-produce").Spec.Containers[0]
			c.Args[0] = "curl -u admin:" + string(pw) + " ...\n" + c.Args[0]
		}, "command: holds the value of Secret sluice-registry-auth key admin-password"},
		{"secret key missing", nil, func(t *testing.T, d []manifest) {
			delete(findDoc[*corev1.Secret](t, d, "registry-auth").Data, "reader-password")
		}, "reads key reader-password of Secret sluice-registry-auth, which has no such key"},
		{"test pod as root", nil, func(t *testing.T, d []manifest) {
			var zero int64
			p := findDoc[*corev1.Pod](t, d, "test-produce")
			p.Spec.Containers[0].SecurityContext.RunAsUser = &zero
		}, "runs as uid 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			docs := renderDefaults(t, tc.values...)
			if p := checkManifests(docs, envs); len(p) > 0 {
				t.Fatalf("clean render already has problems: %q", p)
			}
			tc.mutate(t, docs)
			p := checkManifests(docs, envs)
			if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Fatalf("want a problem containing %q, got %q", tc.want, p)
			}
		})
	}
}

// TestSecureDefaults: out of the box every service sits behind a
// NetworkPolicy, the registry authenticates and the gateway holds its
// read-only user; turning any of them off is caught.
func TestSecureDefaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		set  []string
		want string // "" for the defaults: no problem
	}{
		{"defaults", nil, ""},
		{"network policies off", []string{"--set", "networkPolicy.enabled=false"}, "Deployment/sluice-schema-registry: selected by no NetworkPolicy"},
		{"registry auth off", []string{"--set", "registry.auth.enabled=false"}, "registry auth is off"},
		{"gateway with the admin user", []string{"--set", "registry.auth.gatewayRole=rw"}, "the gateway does not hold the registry's ro user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := checkSecureDefaults(renderDefaults(t, tc.set...))
			if tc.want == "" {
				if len(p) > 0 {
					t.Fatalf("defaults: %q", p)
				}
				return
			}
			if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Fatalf("want a problem containing %q, got %q", tc.want, p)
			}
		})
	}
}

// policySummary lists a NetworkPolicy's rules as "peer->ports" strings:
// peer "*" (anyone), "release" (this release's pods), "ns:k=v", "ip:cidr".
func policySummary(np *networkingv1.NetworkPolicy) (ingress, egress []string) {
	peer := func(p networkingv1.NetworkPolicyPeer) string {
		switch {
		case p.IPBlock != nil:
			return "ip:" + p.IPBlock.CIDR
		case p.NamespaceSelector != nil:
			var kv []string
			for k, v := range p.NamespaceSelector.MatchLabels {
				kv = append(kv, k+"="+v)
			}
			slices.Sort(kv)
			return "ns:" + strings.Join(kv, ",")
		case p.PodSelector != nil && p.PodSelector.MatchLabels["app.kubernetes.io/instance"] == "sluice" && len(p.PodSelector.MatchLabels) == 2:
			return "release"
		}
		return fmt.Sprintf("%+v", p)
	}
	rule := func(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) []string {
		var ps []string
		for _, p := range ports {
			s := p.Port.String()
			if p.Protocol != nil {
				s += "/" + string(*p.Protocol)
			}
			ps = append(ps, s)
		}
		if len(peers) == 0 {
			return []string{"*->" + strings.Join(ps, ",")}
		}
		var out []string
		for _, p := range peers {
			out = append(out, peer(p)+"->"+strings.Join(ps, ","))
		}
		return out
	}
	for _, r := range np.Spec.Ingress {
		ingress = append(ingress, rule(r.From, r.Ports)...)
	}
	for _, r := range np.Spec.Egress {
		egress = append(egress, rule(r.To, r.Ports)...)
	}
	slices.Sort(ingress)
	return ingress, egress
}

// TestNetworkPolicyRules: exactly who reaches which port, by default and
// with gatewayFrom, metricsFrom and egress set: the API ports of the gateway
// and the registry from this release's pods, the gateway's from producers,
// the metrics port alone from scrapers, nothing else.
func TestNetworkPolicyRules(t *testing.T) {
	t.Parallel()
	set := []string{
		"--set", "networkPolicy.gatewayFrom[0].namespaceSelector.matchLabels.team=producers",
		"--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
		"--set", "networkPolicy.egress[0].to[0].ipBlock.cidr=10.0.0.0/8",
	}
	metrics := "ns:team=monitoring->metrics"
	cases := []struct {
		name    string
		set     []string
		ingress map[string][]string
		egress  []string
	}{
		{"defaults", nil, map[string][]string{
			"ingest-gateway":  {"*->http,grpc", "ns:->metrics", "release->http,grpc"},
			"schema-registry": {"ns:->metrics", "release->http,grpc"},
			"s3-sink":         {"ns:->metrics"},
			"search-sink":     {"ns:->metrics"},
			"kafka-exporter":  {"ns:->metrics"},
		}, nil},
		{"peers and egress set", set, map[string][]string{
			"ingest-gateway":  {metrics, "ns:team=producers->http,grpc", "release->http,grpc"},
			"schema-registry": {metrics, "release->http,grpc"},
			"s3-sink":         {metrics},
			"search-sink":     {metrics},
			"kafka-exporter":  {metrics},
		}, []string{"*->53/UDP,53/TCP", "release->http/TCP,grpc/TCP", "ip:10.0.0.0/8->"}},
		{"no scrapers", []string{"--set", "networkPolicy.metricsFrom=null"}, map[string][]string{
			"ingest-gateway":  {"*->http,grpc", "release->http,grpc"},
			"schema-registry": {"release->http,grpc"},
			"s3-sink":         nil,
			"search-sink":     nil,
			"kafka-exporter":  nil,
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			docs := renderDefaults(t, tc.set...)
			for component, want := range tc.ingress {
				np := findDoc[*networkingv1.NetworkPolicy](t, docs, component)
				ingress, egress := policySummary(np)
				if !slices.Equal(ingress, want) {
					t.Errorf("%s ingress %q, want %q", component, ingress, want)
				}
				if !slices.Equal(egress, tc.egress) {
					t.Errorf("%s egress %q, want %q", component, egress, tc.egress)
				}
				wantTypes := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
				if tc.egress != nil {
					wantTypes = append(wantTypes, networkingv1.PolicyTypeEgress)
				}
				if !slices.Equal(np.Spec.PolicyTypes, wantTypes) {
					t.Errorf("%s policyTypes %v, want %v", component, np.Spec.PolicyTypes, wantTypes)
				}
			}
		})
	}
}

// TestStrictDecodeCatchesDefects: unknown or misspelled fields and unknown
// kinds in rendered YAML fail decoding instead of being dropped silently.
func TestStrictDecodeCatchesDefects(t *testing.T) {
	t.Parallel()
	docs := renderDefaults(t)
	dep := findDoc[*appsv1.Deployment](t, docs, "ingest-gateway")
	good := renderYAML(dep)
	if _, errs := decodeManifests(good); len(errs) > 0 {
		t.Fatalf("re-encoded Deployment does not decode: %v", errs)
	}
	cases := map[string]string{
		"unknown top-level spec field": strings.Replace(good, "\nspec:\n", "\nspec:\n  replica: 2\n", 1),
		"misspelled container field":   strings.Replace(good, "livenessProbe:", "livenesProbe:", 1),
		"duplicate field":              strings.Replace(good, "\nspec:\n", "\nspec:\n  revisionHistoryLimit: 1\n  revisionHistoryLimit: 2\n", 1),
		"unknown kind":                 "apiVersion: apps/v1\nkind: Deploymnet\nmetadata:\n  name: x\n",
		"removed API version":          "apiVersion: autoscaling/v2beta1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: x\n",
		"KEDA unknown field":           "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata:\n  name: x\nspec:\n  scaleTargetRef: {name: x}\n  maxReplicas: 3\n  triggers: []\n",
	}
	for name, text := range cases {
		if text == good {
			t.Fatalf("%s: injection did not change the document", name)
		}
		if _, errs := decodeManifests(text); len(errs) == 0 {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// TestValuesSchemaRejects: values.schema.json (and the chart's own guards)
// stop bad values at install time with a message naming the value.
func TestValuesSchemaRejects(t *testing.T) {
	t.Parallel()
	chart := chartDir(t)
	cases := []struct{ name, set, want string }{
		{"broker without port", "kafka.brokers[0]=kafka", "/kafka/brokers/0"},
		{"unknown service key", "services.s3-sink.replicas=3", "'replicas' not allowed"},
		{"unknown top-level key", "kafkaa.brokers[0]=x:1", "'kafkaa' not allowed"},
		{"bad log level", "logLevel=verbose", "/logLevel"},
		{"port out of range", "services.ingest-gateway.ports.http=70000", "/services/ingest-gateway/ports/http"},
		{"negative replicas", "services.search-sink.replicaCount=-1", "/services/search-sink/replicaCount"},
		{"bad SASL mechanism", "kafka.sasl.mechanism=SCRAM-SHA-1", "/kafka/sasl/mechanism"},
		{"bad duration", "shutdownTimeout=30", "/shutdownTimeout"},
		{"lowercase env name", "services.s3-sink.env.s3_bucket=x", "invalid propertyName 's3_bucket'"},
		{"KEDA on the gateway", "services.ingest-gateway.keda.enabled=true", "'keda' not allowed"},
		{"CPU target over 100", "services.ingest-gateway.autoscaling.targetCPUUtilizationPercentage=150", "targetCPUUtilizationPercentage"},
		{"HPA and KEDA together", "services.s3-sink.keda.enabled=true", "mutually exclusive"},
		{"SASL without secret", "kafka.sasl.mechanism=SCRAM-SHA-512", "kafka.sasl.existingSecret is required"},
		{"bad image digest", "services.s3-sink.image.digest=latest", "/services/s3-sink/image/digest"},
		{"metrics port is the API port", "services.ingest-gateway.ports.metrics=8080", "services.ingest-gateway.ports.metrics (8080) must differ from ports.http"},
		{"metrics port is the gRPC port", "services.schema-registry.ports.metrics=9091", "services.schema-registry.ports.metrics (9091) must differ from ports.grpc"},
		{"API port on a sink", "services.s3-sink.ports.http=9102", "'http' not allowed"},
		{"no metrics port", "services.kafka-exporter.ports.metrics=null", "missing property 'metrics'"},
		{"bad gateway role", "registry.auth.gatewayRole=admin", "/registry/auth/gatewayRole"},
		{"external registry without credentials", "registry.url=https://registry.example.com", "registry.auth.existingSecret is required when registry.url is set"},
		{"misspelt network peer", "networkPolicy.metricsFrom[0].namespaceSelectr.matchLabels.team=monitoring", "'namespaceSelectr' not allowed"},
		{"misspelt selector field", "networkPolicy.gatewayFrom[0].podSelector.matchLabel.app=x", "'matchLabel' not allowed"},
		{"misspelt test key setting", "tests.gatewayApiKey.secret=x", "'secret' not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := helmTemplate(t, chart, kubeVersions[0], "--set", tc.set)
			if err == nil {
				t.Fatalf("--set %s rendered without error", tc.set)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Fatalf("--set %s: error does not mention %q:\n%s", tc.set, tc.want, stderr)
			}
		})
	}
	// The kube-version floor is enforced too.
	if _, stderr, err := helmTemplate(t, chart, "1.25.0"); err == nil || !strings.Contains(stderr, "kubeVersion") {
		t.Errorf("Kubernetes 1.25 accepted: %v %s", err, stderr)
	}
}

// TestHelmTestHook: the test hook posts a record to the gateway's Service
// on its HTTP port and registers the schema with the registry first.
func TestHelmTestHook(t *testing.T) {
	t.Parallel()
	docs := renderDefaults(t)
	pod := findDoc[*corev1.Pod](t, docs, "test-produce")
	gw := findDoc[*corev1.Service](t, docs, "ingest-gateway")
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if want := "http://" + gw.Name + ":8080"; env["GATEWAY"] != want {
		t.Errorf("test hook targets %q, want %q", env["GATEWAY"], want)
	}
	script := strings.Join(pod.Spec.Containers[0].Args, "\n")
	for _, s := range []string{"$GATEWAY/v1/topics/$TOPIC/records", "$REGISTRY/subjects/$TOPIC-value/versions", "exit 1"} {
		if !strings.Contains(script, s) {
			t.Errorf("test hook script lacks %q", s)
		}
	}
	if len(renderDefaults(t, "--set", "tests.enabled=false")) >= len(docs) {
		t.Error("tests.enabled=false still renders the test hook")
	}
}

// ruleSources are the rule files of deployments/prometheus/rules, which the
// chart ships (its promtool unit tests live in deployments/prometheus/tests).
func ruleSources(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	matches, _ := filepath.Glob(repoPath(t, "deployments", "prometheus", "rules", "*.yml"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(m)] = b
	}
	return out
}

// rulesDrift compares the chart's copy with the source rule files.
func rulesDrift(src, chart map[string][]byte) []string {
	var problems []string
	for name, b := range src {
		c, ok := chart[name]
		switch {
		case !ok:
			problems = append(problems, name+": missing from helm/sluice/files/rules")
		case !bytes.Equal(b, c):
			problems = append(problems, name+": helm/sluice/files/rules copy differs")
		}
	}
	for name := range chart {
		if _, ok := src[name]; !ok {
			problems = append(problems, name+": in the chart but not in deployments/prometheus")
		}
	}
	slices.Sort(problems)
	return problems
}

// TestChartRulesInSync: the PrometheusRule ships exactly deployments/prometheus.
func TestChartRulesInSync(t *testing.T) {
	t.Parallel()
	src := ruleSources(t)
	chart := map[string][]byte{}
	matches, _ := filepath.Glob(filepath.Join(chartDir(t), "files", "rules", "*.yml"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		chart[filepath.Base(m)] = b
	}
	for _, p := range rulesDrift(src, chart) {
		t.Errorf("%s (run make chart-rules)", p)
	}
	// The rendered PrometheusRule carries every group of every file.
	if len(src) == 0 {
		return
	}
	docs := renderDefaults(t, "--set", "prometheusRule.enabled=true")
	rule := findDoc[*monitoringv1.PrometheusRule](t, docs, "sluice")
	var want []string
	for _, b := range src {
		var f struct {
			Groups []struct {
				Name string `json:"name"`
			} `json:"groups"`
		}
		if err := yaml.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		for _, g := range f.Groups {
			want = append(want, g.Name)
		}
	}
	var got []string
	for _, g := range rule.Spec.Groups {
		got = append(got, g.Name)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("PrometheusRule groups %v, want %v", got, want)
	}
}

func TestRulesDriftCaught(t *testing.T) {
	t.Parallel()
	src := map[string][]byte{"alerts.yml": []byte("groups: []\n"), "records.yml": []byte("groups: []\n")}
	chart := map[string][]byte{"alerts.yml": []byte("groups: [x]\n"), "old.yml": nil}
	got := rulesDrift(src, chart)
	want := []string{"alerts.yml: helm/sluice/files/rules copy differs", "old.yml: in the chart but not in deployments/prometheus", "records.yml: missing from helm/sluice/files/rules"}
	if !slices.Equal(got, want) {
		t.Fatalf("rulesDrift = %q, want %q", got, want)
	}
}

// renderNotes renders templates/NOTES.txt (which helm template skips) by
// wrapping it in a named template of a chart copy and rendering that.
func renderNotes(t *testing.T, args ...string) string {
	t.Helper()
	chart := filepath.Join(t.TempDir(), "sluice")
	copyTree(t, chartDir(t), chart)
	notes, err := os.ReadFile(filepath.Join(chart, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(chart, "templates", "NOTES.txt")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"_notes_check.tpl": "{{- define \"sluice.notesCheck\" -}}\n" + string(notes) + "\n{{- end -}}\n",
		"notes-check.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include \"sluice.notesCheck\" . | quote }}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(chart, "templates", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, err := helmTemplate(t, chart, kubeVersions[len(kubeVersions)-1], append(args, "--show-only", "templates/notes-check.yaml")...)
	if err != nil {
		t.Fatalf("rendering NOTES.txt: %v\n%s", err, stderr)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal([]byte(out), &cm); err != nil {
		t.Fatal(err)
	}
	return cm.Data["notes"]
}

// TestNotes: NOTES.txt renders for every values file and tells the user
// each enabled service, how it scales, and how to check the install.
func TestNotes(t *testing.T) {
	t.Parallel()
	chart := chartDir(t)
	for _, v := range valuesMatrix {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			notes := renderNotes(t, valuesArgs(chart, v.file)...)
			for _, want := range []string{"sluice-ingest-gateway: http 8080, grpc 9090, metrics 9104", "sluice-kafka-exporter: metrics 9308", "Kafka: "} {
				if !strings.Contains(notes, want) {
					t.Errorf("NOTES lack %q:\n%s", want, notes)
				}
			}
			if strings.Contains(notes, "<no value>") {
				t.Errorf("NOTES print <no value>:\n%s", notes)
			}
		})
	}
	if notes := renderNotes(t, "-f", filepath.Join(chart, "values-aws.yaml")); !strings.Contains(notes, "KEDA: 1-24 replicas on lag of group sluice-s3-sink") || !strings.Contains(notes, "https://ingest.sluice.internal.example.com/v1/topics") {
		t.Errorf("aws NOTES miss the KEDA range or the ingress URL:\n%s", notes)
	}
	// How to read the admin password, and what is off when it is.
	for _, tc := range []struct {
		set, want string
	}{
		{"registry.auth.enabled=true", "kubectl -n sluice get secret sluice-registry-auth -o jsonpath='{.data.admin-password}' | base64 -d"},
		{"registry.auth.existingSecret=my-registry-users", "get secret my-registry-users -o jsonpath='{.data.admin-password}'"},
		{"registry.auth.enabled=false", "Schema registry auth is OFF"},
		{"networkPolicy.enabled=false", "NetworkPolicies are off"},
		{"networkPolicy.metricsFrom=null", "no one reaches the metrics ports"},
	} {
		if notes := renderNotes(t, "--set", tc.set); !strings.Contains(notes, tc.want) {
			t.Errorf("--set %s: NOTES lack %q:\n%s", tc.set, tc.want, notes)
		}
	}
}

// TestHelmTemplateWarningCaught: helm's warnings go to stderr, which
// TestHelmTemplate requires to be empty; a symlinked rules directory (the
// alternative to the copy in files/rules) is one such warning.
func TestHelmTemplateWarningCaught(t *testing.T) {
	t.Parallel()
	chart := filepath.Join(t.TempDir(), "sluice")
	copyTree(t, chartDir(t), chart)
	rules := filepath.Join(chart, "files", "rules")
	if err := os.RemoveAll(rules); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(repoPath(t, "deployments", "prometheus", "rules"), rules); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := helmTemplate(t, chart, kubeVersions[0], "--set", "prometheusRule.enabled=true")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	if strings.TrimSpace(stderr) == "" {
		t.Fatal("no warning on stderr for a symlinked chart directory")
	}
}
