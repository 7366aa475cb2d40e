package checks

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// serviceBinaries builds every service once per test run (the go build
// cache makes repeats cheap) into a directory shared by the tests.
func serviceBinaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "sluice-checks-bin-")
		if binErr != nil {
			return
		}
		for _, s := range services {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, s), ".")
			cmd.Dir = repoPath(t, "services", s)
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = &buildError{s, err, string(out)}
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

type buildError struct {
	svc string
	err error
	out string
}

func (e *buildError) Error() string { return "building " + e.svc + ": " + e.err.Error() + "\n" + e.out }

// podEnv is the environment a Deployment's first container starts with:
// its ConfigMap (envFrom), then its env entries. A secretKeyRef stands in
// as "placeholder-<key>" (an https URL for *_URL variables); $(VAR) references expand as the kubelet does.
func podEnv(t *testing.T, docs []manifest, d *appsv1.Deployment) map[string]string {
	t.Helper()
	env := map[string]string{}
	c := d.Spec.Template.Spec.Containers[0]
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		cm := findDoc[*corev1.ConfigMap](t, docs, ef.ConfigMapRef.Name)
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = ref.ReplaceAllStringFunc(e.Value, func(m string) string {
				if v, ok := env[m[2:len(m)-1]]; ok {
					return v
				}
				return m
			})
		case e.ValueFrom.SecretKeyRef != nil && strings.HasSuffix(e.Name, "_URL"):
			env[e.Name] = "https://placeholder.invalid/" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "placeholder-" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	return env
}

// checkConfig runs `<service> -check-config` with exactly env.
func checkConfig(t *testing.T, bin, svc string, env map[string]string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, svc), "-check-config")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// TestRenderedEnvPassesConfigCheck: every container the chart renders, for
// every values file, starts with an environment its own service accepts
// (the service's -check-config: the same loading and validation as at start).
func TestRenderedEnvPassesConfigCheck(t *testing.T) {
	bin := serviceBinaries(t)
	chart := chartDir(t)
	for _, v := range valuesMatrix {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			docs := renderDefaults(t, valuesArgs(chart, v.file)...)
			n := 0
			// renderDefaults adds ci/required-values.yaml only when no
			// values file is given: each file here stands alone.
			for _, d := range docs {
				dep, ok := d.Obj.(*appsv1.Deployment)
				if !ok {
					continue
				}
				n++
				svc := dep.Spec.Template.Spec.Containers[0].Name
				env := podEnv(t, docs, dep)
				// Files the chart mounts from the user's Secrets and
				// ConfigMaps (API keys, rules, CA): their contents are the
				// user's; the path must be a mount, the rest is checked.
				for k, v := range env {
					if !strings.HasPrefix(v, "/etc/sluice/") {
						continue
					}
					if !slices.ContainsFunc(dep.Spec.Template.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(v, m.MountPath+"/") }) {
						t.Errorf("%s: %s=%s is under no volume mount", dep.Name, k, v)
					}
					delete(env, k)
				}
				if out, code := checkConfig(t, bin, svc, env); code != 0 {
					t.Errorf("%s: -check-config exit %d with the rendered env:\n%s", dep.Name, code, out)
				}
			}
			if n == 0 {
				t.Fatal("no Deployment rendered")
			}
		})
	}
}

// TestConfigCheckCatchesBadEnv: the config check above fails when the
// rendered env lacks what a service needs.
func TestConfigCheckCatchesBadEnv(t *testing.T) {
	bin := serviceBinaries(t)
	docs := renderDefaults(t, valuesArgs(chartDir(t), "ci/minimal-values.yaml")...)
	dep := findDoc[*appsv1.Deployment](t, docs, "ingest-gateway")
	env := podEnv(t, docs, dep)
	delete(env, "GATEWAY_TOPICS")
	if out, code := checkConfig(t, bin, "ingest-gateway", env); code != 2 || !strings.Contains(out, "GATEWAY_TOPICS") {
		t.Fatalf("without GATEWAY_TOPICS: exit %d, output %q; want 2 naming the variable", code, out)
	}
}

// TestMinimalValuesWireGRPC: the gateway and both sinks reach this
// release's registry over gRPC (its Service's grpc port), REST beside it.
func TestMinimalValuesWireGRPC(t *testing.T) {
	t.Parallel()
	docs := renderDefaults(t, valuesArgs(chartDir(t), "ci/minimal-values.yaml")...)
	regSvc := findDoc[*corev1.Service](t, docs, "schema-registry")
	var grpcPort int32
	for _, p := range regSvc.Spec.Ports {
		if p.Name == "grpc" {
			grpcPort = p.Port
		}
	}
	for _, name := range []string{"ingest-gateway", "s3-sink", "search-sink"} {
		env := podEnv(t, docs, findDoc[*appsv1.Deployment](t, docs, name))
		want := regSvc.Name + ":" + strconv.Itoa(int(grpcPort))
		if env["REGISTRY_GRPC_ADDR"] != want || env["REGISTRY_URL"] == "" {
			t.Errorf("%s: REGISTRY_GRPC_ADDR=%q REGISTRY_URL=%q; want %q and the REST URL as fallback", name, env["REGISTRY_GRPC_ADDR"], env["REGISTRY_URL"], want)
		}
	}
	// An external (e.g. Confluent) registry: REST only.
	docs = renderDefaults(t, "--set", "registry.url=https://registry.example.com", "--set", "registry.auth.existingSecret=reg")
	if env := podEnv(t, docs, findDoc[*appsv1.Deployment](t, docs, "s3-sink")); env["REGISTRY_GRPC_ADDR"] != "" {
		t.Errorf("registry.url set: REGISTRY_GRPC_ADDR=%q, want none", env["REGISTRY_GRPC_ADDR"])
	}
}

// TestRequiredValues: without a value a service cannot start, the chart
// refuses to render and names the value.
func TestRequiredValues(t *testing.T) {
	t.Parallel()
	chart := chartDir(t)
	req := filepath.Join(chart, "ci", "required-values.yaml")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"nothing given", nil, "kafka.brokers is required"},
		{"no gateway topics", []string{"-f", req, "--set", "gateway.topics=null"}, "gateway.topics is required"},
		{"no bucket", []string{"-f", req, "--set", "s3.bucket="}, "s3.bucket is required"},
		{"no s3 topics", []string{"-f", req, "--set", "s3.topicRegex="}, "s3.topics or s3.topicRegex is required"},
		{"both s3 topics and regex", []string{"-f", req, "--set", "s3.topics={a}"}, "exclusive"},
		{"no search url", []string{"-f", req, "--set", "search.url="}, "search.url is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := helmTemplateBare(t, chart, kubeVersions[len(kubeVersions)-1], tc.args...)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Fatalf("err %v, stderr %q; want a failure containing %q", err, stderr, tc.want)
			}
		})
	}
	// A disabled sink needs nothing.
	if _, stderr, err := helmTemplateBare(t, chart, kubeVersions[0], "-f", req, "--set", "s3.bucket=", "--set", "services.s3-sink.enabled=false"); err != nil {
		t.Fatalf("s3-sink disabled without a bucket: %v\n%s", err, stderr)
	}
}

// TestSecurityContextsAndImages: OpenShift values drop the fixed ids and
// keep the rest; global.imageRegistry and global.imagePullSecrets reach
// every pod.
func TestSecurityContextsAndImages(t *testing.T) {
	t.Parallel()
	docs := renderDefaults(t, valuesArgs(chartDir(t), "ci/openshift-values.yaml")...)
	n := 0
	for _, d := range docs {
		dep, ok := d.Obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		n++
		ps, c := dep.Spec.Template.Spec.SecurityContext, dep.Spec.Template.Spec.Containers[0]
		if ps == nil || ps.RunAsUser != nil || ps.RunAsGroup != nil || ps.FSGroup != nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
			t.Errorf("%s: pod securityContext %+v: want runAsNonRoot without fixed ids", dep.Name, ps)
		}
		cs := c.SecurityContext
		if cs == nil || cs.RunAsUser != nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
			t.Errorf("%s: container securityContext %+v: want no runAsUser, read-only root, no privilege escalation", dep.Name, cs)
		}
		if !strings.HasPrefix(c.Image, "image-registry.openshift-image-registry.svc:5000/sluicehq/") {
			t.Errorf("%s: image %s ignores global.imageRegistry", dep.Name, c.Image)
		}
		if !slices.ContainsFunc(dep.Spec.Template.Spec.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == "mirror-pull" }) {
			t.Errorf("%s: imagePullSecrets %v lack global.imagePullSecrets", dep.Name, dep.Spec.Template.Spec.ImagePullSecrets)
		}
	}
	if n == 0 {
		t.Fatal("no Deployment rendered")
	}
	// Defaults keep the fixed nonroot ids.
	dep := findDoc[*appsv1.Deployment](t, renderDefaults(t), "s3-sink")
	if u := dep.Spec.Template.Spec.SecurityContext.RunAsUser; u == nil || *u != 65532 {
		t.Errorf("default pod runAsUser %v, want 65532", u)
	}
}

// TestDashboardConfigMaps: every dashboard of deployments/grafana ships as
// a ConfigMap labelled grafana_dashboard, with the same JSON.
func TestDashboardConfigMaps(t *testing.T) {
	t.Parallel()
	docs := renderDefaults(t)
	files, err := filepath.Glob(repoPath(t, "deployments", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in deployments/grafana/dashboards: %v", err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		want, _ := os.ReadFile(f)
		cm := findDoc[*corev1.ConfigMap](t, docs, "dashboard-"+strings.TrimSuffix(base, ".json"))
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("%s: labels %v lack grafana_dashboard", cm.Name, cm.Labels)
		}
		if strings.TrimSpace(cm.Data[base]) != strings.TrimSpace(string(want)) {
			t.Errorf("%s: %s differs from deployments/grafana/dashboards (run make chart-rules)", cm.Name, base)
		}
	}
	for _, d := range renderDefaults(t, "--set", "dashboards.enabled=false") {
		if strings.Contains(d.Name, "dashboard-") {
			t.Errorf("dashboards.enabled=false still renders %s", d.Name)
		}
	}
}
