package checks

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// releaseServices are the images release.yml pushes.
var releaseServices = []string{"ingest-gateway", "schema-registry", "s3-sink", "search-sink", "kafka-exporter"}

// publishedImages checks the release workflow's promises against each
// other: the images it pushes ($IMAGE_REPO/<svc>:$VERSION, IMAGE_REPO =
// ghcr.io/<owner>), where it pushes the chart, and the image registry the
// chart defaults to. It returns the owner's registry, e.g. ghcr.io/sluicehq.
func publishedImages(t *testing.T, workflow, values string) (string, []string) {
	t.Helper()
	var problems []string
	for _, want := range []string{
		`IMAGE_REPO: ghcr.io/${{ github.repository_owner }}`,
		`manifest push --all "$IMAGE_REPO/$s:$VERSION" "docker://$IMAGE_REPO/$s:$VERSION"`,
		`helm push dist/chart/sluice-*.tgz "oci://$IMAGE_REPO/charts"`,
		`for s in ` + strings.Join(releaseServices, " ") + `; do`,
	} {
		if !strings.Contains(workflow, want) {
			problems = append(problems, "release.yml lacks "+want)
		}
	}
	m := regexp.MustCompile(`(?m)^image:\n(?:  #.*\n)*  registry: (\S+)`).FindStringSubmatch(values)
	if m == nil {
		return "", append(problems, "values.yaml: no image.registry")
	}
	return m[1], problems
}

// TestPublishedChartUsesPublishedImages packages the chart the way a tag
// does (scripts/release.sh chart with VERSION=v9.8.7, as release.yml runs
// it) and renders it with the README's minimal values: every Deployment
// must run ghcr.io/<owner>/<service>:v9.8.7, the exact reference release.yml
// pushes, and the chart's default registry must be that owner's.
func TestPublishedChartUsesPublishedImages(t *testing.T) {
	t.Parallel()
	workflow, err := os.ReadFile(repoPath(t, ".github", "workflows", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	values, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	registry, problems := publishedImages(t, string(workflow), string(values))
	for _, p := range problems {
		t.Error(p)
	}
	chart, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	home := regexp.MustCompile(`(?m)^home: https://github.com/([^/\s]+)/`).FindStringSubmatch(string(chart))
	if home == nil || registry != "ghcr.io/"+home[1] {
		t.Errorf("chart image.registry %q, want ghcr.io/<owner of %v> (release.yml pushes there)", registry, home)
	}

	const version = "v9.8.7"
	dist := t.TempDir()
	helmDir := filepath.Dir(tool(t, "helm"))
	if out, stderr, err := runEnv(t, repoRoot(t), []string{"VERSION=" + version, "DIST=" + dist, "PATH=" + helmDir + ":" + os.Getenv("PATH")},
		repoPath(t, "scripts", "release.sh"), "chart"); err != nil {
		t.Fatalf("scripts/release.sh chart: %v\n%s%s", err, out, stderr)
	}
	pkg := filepath.Join(dist, "chart", "sluice-"+strings.TrimPrefix(version, "v")+".tgz")
	if _, err := os.Stat(pkg); err != nil {
		t.Fatalf("release.sh chart did not write %s: %v", pkg, err)
	}
	args := append([]string{"template", "sluice", pkg, "--namespace", "sluice", "--kube-version", kubeVersions[len(kubeVersions)-1]}, readmeSets(t)...)
	out, stderr, err := runHelm(t, dist, args...)
	if err != nil {
		t.Fatalf("helm template %s with the README's --set values: %v\n%s", filepath.Base(pkg), err, stderr)
	}
	docs, errs := decodeManifests(out)
	if len(errs) > 0 {
		t.Fatalf("decode: %v", errs)
	}
	got := map[string]string{}
	for _, d := range docs {
		if dep, ok := d.Obj.(*appsv1.Deployment); ok {
			got[dep.Labels["app.kubernetes.io/component"]] = dep.Spec.Template.Spec.Containers[0].Image
		}
	}
	for _, s := range releaseServices {
		if want := registry + "/" + s + ":" + version; got[s] != want {
			t.Errorf("%s: the published chart runs %q, release.yml pushes %q", s, got[s], want)
		}
	}
}

// readmeSets returns the --set arguments of the README's
// `helm install sluice oci://...` command, so the documented command is
// the one rendered.
func readmeSets(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "helm install sluice oci://")
	if i < 0 {
		t.Fatal("README.md has no `helm install sluice oci://...` command")
	}
	cmd := text[i:]
	cmd = strings.ReplaceAll(cmd[:strings.Index(cmd, "\n```")], "\\\n", " ")
	var sets []string
	for _, m := range regexp.MustCompile(`--set '([^']+)'|--set (\S+)`).FindAllStringSubmatch(cmd, -1) {
		sets = append(sets, "--set", m[1]+m[2])
	}
	if len(sets) == 0 {
		t.Fatalf("no --set in the README's install command: %s", cmd)
	}
	return sets
}

// TestPublishedImagesDefectCaught: publishedImages notices a workflow that
// pushes another tag and a chart registry the workflow does not push to.
func TestPublishedImagesDefectCaught(t *testing.T) {
	t.Parallel()
	workflow, err := os.ReadFile(repoPath(t, ".github", "workflows", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(workflow), `"docker://$IMAGE_REPO/$s:$VERSION"`, `"docker://$IMAGE_REPO/$s:latest"`, 1)
	if _, problems := publishedImages(t, bad, "image:\n  registry: ghcr.io/sluicehq\n"); len(problems) == 0 {
		t.Error("a workflow pushing :latest passed")
	}
	if reg, _ := publishedImages(t, string(workflow), "image:\n  # a comment\n  registry: docker.io/someone\n"); reg != "docker.io/someone" {
		t.Errorf("registry parsed as %q", reg)
	}
}
