package checks

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// fakeAPIServer answers as much of the Kubernetes API as `helm install
// --dry-run=server` asks for: version, discovery of the kinds the chart
// renders, empty lists, and GETs of the Secrets given (404 for the rest).
// Every other request fails the test, so nothing is silently faked.
func fakeAPIServer(t *testing.T, secrets map[string]*corev1.Secret) string {
	t.Helper()
	resources := map[string][][2]string{ // group/version -> {plural, Kind}
		"v1":                   {{"configmaps", "ConfigMap"}, {"secrets", "Secret"}, {"services", "Service"}, {"serviceaccounts", "ServiceAccount"}, {"pods", "Pod"}},
		"apps/v1":              {{"deployments", "Deployment"}},
		"autoscaling/v2":       {{"horizontalpodautoscalers", "HorizontalPodAutoscaler"}},
		"policy/v1":            {{"poddisruptionbudgets", "PodDisruptionBudget"}},
		"networking.k8s.io/v1": {{"networkpolicies", "NetworkPolicy"}, {"ingresses", "Ingress"}},
	}
	write := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if r.Method != http.MethodGet {
			t.Errorf("unexpected %s %s (a dry run must not write)", r.Method, r.URL)
			write(w, http.StatusMethodNotAllowed, nil)
			return
		}
		switch {
		case p == "/version":
			write(w, 200, map[string]string{"major": "1", "minor": "34", "gitVersion": "v1.34.0"})
		case p == "/api":
			write(w, 200, map[string]any{"kind": "APIVersions", "versions": []string{"v1"}})
		case p == "/apis":
			var groups []map[string]any
			for gv := range resources {
				if g, v, ok := strings.Cut(gv, "/"); ok {
					ver := map[string]string{"groupVersion": gv, "version": v}
					groups = append(groups, map[string]any{"name": g, "versions": []any{ver}, "preferredVersion": ver})
				}
			}
			write(w, 200, map[string]any{"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
		case p == "/api/v1" || strings.HasPrefix(p, "/apis/") && strings.Count(p, "/") == 3:
			gv := strings.TrimPrefix(strings.TrimPrefix(p, "/api/"), "/apis/")
			var list []map[string]any
			for _, r := range resources[gv] {
				list = append(list, map[string]any{"name": r[0], "namespaced": true, "kind": r[1], "verbs": []string{"get", "list", "create"}})
			}
			write(w, 200, map[string]any{"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
		case strings.HasPrefix(p, "/api/v1/namespaces/sluice/secrets/"):
			if s, ok := secrets[strings.TrimPrefix(p, "/api/v1/namespaces/sluice/secrets/")]; ok {
				write(w, 200, s)
				return
			}
			write(w, 404, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
		case strings.Count(p, "/") == 5 && strings.HasPrefix(p, "/api/v1/namespaces/sluice/"):
			write(w, 200, map[string]any{"kind": "List", "apiVersion": "v1", "items": []any{}})
		case strings.HasPrefix(p, "/api") && strings.Contains(p, "/namespaces/sluice/"):
			write(w, 404, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
		default:
			t.Errorf("unexpected request %s", r.URL)
			write(w, 404, nil)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// installDryRun renders the chart as `helm install --dry-run=server` does
// against the fake API server (so lookup sees its Secrets) and decodes the
// manifests.
func installDryRun(t *testing.T, secrets map[string]*corev1.Secret) []manifest {
	t.Helper()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: fake, cluster: {server: \"" + fakeAPIServer(t, secrets) + "\"}}]\n" +
		"users: [{name: fake, user: {token: fake}}]\ncontexts: [{name: fake, context: {cluster: fake, user: fake, namespace: sluice}}]\ncurrent-context: fake\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	out, stderr, err := runEnv(t, chartDir(t), []string{
		"KUBECONFIG=" + kc,
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}, tool(t, "helm"), "install", "sluice", chartDir(t), "--namespace", "sluice", "--dry-run=server", "--disable-openapi-validation", "-f", filepath.Join(chartDir(t), "ci", "required-values.yaml"))
	if err != nil {
		t.Fatalf("helm install --dry-run=server: %v\n%s", err, stderr)
	}
	// The output is a release summary, HOOKS:, MANIFEST: and NOTES:.
	_, rest, ok := strings.Cut(out, "\nHOOKS:\n")
	if !ok {
		t.Fatalf("no HOOKS: in the dry run's output:\n%s", out)
	}
	rest, _, _ = strings.Cut(rest, "\nNOTES:\n")
	rest = strings.Replace(rest, "\nMANIFEST:\n", "\n---\n", 1)
	docs, errs := decodeManifests(rest)
	if len(errs) > 0 {
		t.Fatalf("decode: %v", errs)
	}
	return docs
}

// TestRegistryAuthSecretKeptOnUpgrade: the generated registry passwords are
// random (two renders without a cluster differ) and, when the Secret is in
// the cluster, every key it holds is reused, so `helm upgrade` never changes
// the passwords under running pods; a key it lacks is generated.
func TestRegistryAuthSecretKeptOnUpgrade(t *testing.T) {
	t.Parallel()
	a := findDoc[*corev1.Secret](t, renderDefaults(t), "registry-auth")
	b := findDoc[*corev1.Secret](t, renderDefaults(t), "registry-auth")
	for _, k := range []string{"reader-password", "admin-password"} {
		if len(a.Data[k]) < 32 || string(a.Data[k]) == string(b.Data[k]) {
			t.Errorf("%s: %q then %q: want a fresh random password of 32 characters per render", k, a.Data[k], b.Data[k])
		}
	}
	if string(a.Data["reader-password"]) == string(a.Data["admin-password"]) {
		t.Error("reader and admin share a password")
	}
	// The Secret an earlier release of the chart left (helm's ownership
	// annotations on it, as on everything it applies).
	meta := *a.ObjectMeta.DeepCopy()
	meta.Annotations = map[string]string{"meta.helm.sh/release-name": "sluice", "meta.helm.sh/release-namespace": "sluice"}
	existing := &corev1.Secret{
		TypeMeta: a.TypeMeta, ObjectMeta: meta,
		Data: map[string][]byte{"reader-username": []byte("sluice"), "reader-password": []byte("kept-reader-password"), "admin-username": []byte("ops")},
	}
	got := findDoc[*corev1.Secret](t, installDryRun(t, map[string]*corev1.Secret{existing.Name: existing}), "registry-auth")
	for k, v := range existing.Data {
		if string(got.Data[k]) != string(v) {
			t.Errorf("%s: upgrade renders %q, the cluster holds %q", k, got.Data[k], v)
		}
	}
	if len(got.Data["admin-password"]) < 32 {
		t.Errorf("admin-password missing from the cluster's Secret was not generated: %q", got.Data["admin-password"])
	}
	// Without the Secret in the cluster (first install) it is generated.
	fresh := findDoc[*corev1.Secret](t, installDryRun(t, nil), "registry-auth")
	if string(fresh.Data["reader-password"]) == "kept-reader-password" || len(fresh.Data["reader-password"]) < 32 {
		t.Errorf("first install: reader-password %q", fresh.Data["reader-password"])
	}
}
