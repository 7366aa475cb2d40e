package checks

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// requiredLabels are the OCI annotations every image carries.
var requiredLabels = []string{
	"org.opencontainers.image.title",
	"org.opencontainers.image.description",
	"org.opencontainers.image.source",
	"org.opencontainers.image.version",
	"org.opencontainers.image.revision",
}

// dockerContext is the build context every Dockerfile is built with: the
// repository root filtered by .dockerignore.
type dockerContext struct {
	root   string
	ignore *patternmatcher.PatternMatcher
	// mu serialises matching: a PatternMatcher compiles each pattern on
	// first use and is not safe for concurrent use (parallel subtests share
	// one context; -race caught it).
	mu *sync.Mutex
}

func loadDockerContext(tb testing.TB, root string) dockerContext {
	tb.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		tb.Fatalf("opening .dockerignore: %v", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		tb.Fatalf("reading .dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		tb.Fatalf("compiling .dockerignore: %v", err)
	}
	return dockerContext{root: root, ignore: pm, mu: new(sync.Mutex)}
}

// excluded reports whether .dockerignore keeps rel (slash path) out of the context.
func (c dockerContext) excluded(rel string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok, err := c.ignore.MatchesOrParentMatches(rel)
	return err == nil && ok
}

// lintDockerfile applies BuildKit's parse-time lint rules (the linter the
// Dockerfile frontend runs: casing, stage names, EXPOSE format, secrets in
// ARG/ENV, ...), the dispatch-time rules that need no build (JSON args,
// legacy key=value, relative WORKDIR, undefined ARG in FROM), and Sluice's
// image rules. It returns one message per problem.
func lintDockerfile(ctx dockerContext, service, text string) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	res, err := parser.Parse(strings.NewReader(text))
	if err != nil {
		return []string{"parse: " + err.Error()}
	}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		addf("buildkit: %s (line %d)", w.Short, line)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		addf("buildkit %s: %s (line %d)", rule, msg, firstLine(loc))
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return append(problems, "instructions: "+err.Error())
	}
	if len(stages) < 2 {
		addf("not multi-stage: %d stage(s)", len(stages))
		return problems
	}
	metaNames := map[string]bool{"BUILDPLATFORM": true, "TARGETPLATFORM": true, "TARGETOS": true, "TARGETARCH": true}
	metaDefaults := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			metaNames[kv.Key] = true
			if kv.Value != nil {
				metaDefaults[kv.Key] = os.Expand(*kv.Value, func(k string) string { return metaDefaults[k] })
			}
		}
	}
	// A FROM as built without --build-arg: the ARG defaults substituted.
	defaultFrom := func(base string) string { return os.Expand(base, func(k string) string { return metaDefaults[k] }) }
	stageNames := map[string]bool{}
	var cgoOff, cacheMount, builds bool
	for si, st := range stages {
		for _, ref := range regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(st.BaseName+" "+st.Platform, -1) {
			if !metaNames[ref[1]] {
				addf("buildkit UndefinedArgInFrom: FROM uses $%s, not declared before the first FROM (line %d)", ref[1], firstLine(st.Location))
			}
		}
		final := si == len(stages)-1
		if from := defaultFrom(st.BaseName); from != "scratch" && !strings.HasPrefix(st.BaseName, "build-") && !regexp.MustCompile(`@sha256:[a-f0-9]{64}$`).MatchString(from) {
			addf("FROM %s (default %s): pin the base image by digest (line %d)", st.BaseName, from, firstLine(st.Location))
		}
		var user string
		labels := map[string]bool{}
		for _, cmd := range st.Commands {
			switch c := cmd.(type) {
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					if kv.Key == "CGO_ENABLED" && kv.Value == "0" {
						cgoOff = true
					}
					if kv.NoDelim {
						addf("buildkit %s: %s (line %d)", linter.RuleLegacyKeyValueFormat.Name, linter.RuleLegacyKeyValueFormat.Format("ENV"), firstLine(c.Location()))
					}
				}
			case *instructions.LabelCommand:
				for _, kv := range c.Labels {
					labels[kv.Key] = true
					if kv.NoDelim {
						addf("buildkit %s: %s (line %d)", linter.RuleLegacyKeyValueFormat.Name, linter.RuleLegacyKeyValueFormat.Format("LABEL"), firstLine(c.Location()))
					}
				}
			case *instructions.WorkdirCommand:
				if !path.IsAbs(c.Path) {
					addf("buildkit %s: %s (line %d)", linter.RuleWorkdirRelativePath.Name, linter.RuleWorkdirRelativePath.Format(c.Path), firstLine(c.Location()))
				}
			case *instructions.EntrypointCommand:
				if c.PrependShell {
					addf("buildkit %s: %s (line %d)", linter.RuleJSONArgsRecommended.Name, linter.RuleJSONArgsRecommended.Format("ENTRYPOINT"), firstLine(c.Location()))
				}
			case *instructions.CmdCommand:
				if c.PrependShell {
					addf("buildkit %s: %s (line %d)", linter.RuleJSONArgsRecommended.Name, linter.RuleJSONArgsRecommended.Format("CMD"), firstLine(c.Location()))
				}
			case *instructions.UserCommand:
				user = c.User
			case *instructions.RunCommand:
				line := strings.Join(c.CmdLine, " ")
				if strings.Contains(line, "go build") {
					builds = true
					if strings.Contains(line, "CGO_ENABLED=0") {
						cgoOff = true
					}
					if err := c.Expand(func(w string) (string, error) { return w, nil }); err != nil {
						addf("RUN mounts: %v", err)
					}
					for _, m := range instructions.GetMounts(c) {
						if m.Type == instructions.MountTypeCache && m.Target == "/go/pkg/mod" {
							cacheMount = true
						}
					}
				}
			case *instructions.CopyCommand:
				if c.From != "" {
					if !stageNames[strings.ToLower(c.From)] {
						addf("COPY --from=%s: no earlier stage of that name (line %d)", c.From, firstLine(c.Location()))
					}
					continue
				}
				for _, src := range c.SourcePaths {
					problems = append(problems, ctx.checkCopySource(src, firstLine(c.Location()))...)
				}
			}
		}
		if st.Name != "" {
			stageNames[strings.ToLower(st.Name)] = true
		}
		if !final {
			continue
		}
		if from := defaultFrom(st.BaseName); !strings.HasPrefix(from, "gcr.io/distroless/static-debian12:nonroot@") && from != "scratch" {
			addf("final stage FROM %s (default %s): want gcr.io/distroless/static nonroot or scratch by default", st.BaseName, from)
		}
		if u := strings.SplitN(user, ":", 2)[0]; u != "65532" {
			addf("final stage USER %q: want 65532 (numeric, so runAsNonRoot can verify it)", user)
		}
		for _, l := range requiredLabels {
			if !labels[l] {
				addf("final stage lacks LABEL %s", l)
			}
		}
		var exposed []int
		for _, cmd := range st.Commands {
			if e, ok := cmd.(*instructions.ExposeCommand); ok {
				for _, p := range e.Ports {
					n, _ := strconv.Atoi(strings.SplitN(p, "/", 2)[0])
					exposed = append(exposed, n)
				}
			}
		}
		want := designPorts[service]
		for _, p := range []int{want.API, want.GRPC, want.Metrics} {
			if p != 0 && !slices.Contains(exposed, p) {
				addf("final stage does not EXPOSE %d (DESIGN.md port of %s)", p, service)
			}
		}
	}
	if !builds {
		addf("no RUN go build")
	}
	if !cgoOff {
		addf("CGO_ENABLED=0 not set for the go build")
	}
	if !cacheMount {
		addf("go build has no --mount=type=cache,target=/go/pkg/mod")
	}
	problems = append(problems, ctx.checkModuleCopied(service, stages)...)
	return problems
}

// checkCopySource fails a COPY source that does not exist in the repository
// or that .dockerignore keeps out, and a Go build input under it that
// .dockerignore drops (go.mod, go.sum, non-test .go files).
func (c dockerContext) checkCopySource(src string, line int) []string {
	var problems []string
	rel := path.Clean(strings.TrimPrefix(src, "./"))
	if strings.HasPrefix(rel, "dist/bin/") {
		// Built by scripts/release.sh before a BINARY_FROM=prebuilt build:
		// it need not exist, but the context must not exclude it.
		if c.excluded(rel) {
			return []string{fmt.Sprintf("COPY %s: excluded by .dockerignore (line %d)", src, line)}
		}
		return nil
	}
	full := filepath.Join(c.root, filepath.FromSlash(rel))
	info, err := os.Stat(full)
	if err != nil {
		return []string{fmt.Sprintf("COPY %s: not in the build context: %v (line %d)", src, err, line)}
	}
	if c.excluded(rel) && !info.IsDir() {
		return []string{fmt.Sprintf("COPY %s: excluded by .dockerignore (line %d)", src, line)}
	}
	if !info.IsDir() {
		return nil
	}
	kept := 0
	_ = filepath.WalkDir(full, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		r, _ := filepath.Rel(c.root, p)
		r = filepath.ToSlash(r)
		if c.excluded(r) {
			if n := d.Name(); n == "go.mod" || n == "go.sum" || isSource(n) && !strings.Contains(r, "/testdata/") {
				problems = append(problems, fmt.Sprintf("COPY %s: build input %s excluded by .dockerignore (line %d)", src, r, line))
			}
			return nil
		}
		kept++
		return nil
	})
	if kept == 0 {
		problems = append(problems, fmt.Sprintf("COPY %s: .dockerignore leaves nothing of it in the context (line %d)", src, line))
	}
	return problems
}

// checkModuleCopied fails unless the build stage copies the service module
// and every directory its go.mod replaces a module with (../../pkg, ...), so
// the GOWORK=off build finds them.
func (c dockerContext) checkModuleCopied(service string, stages []instructions.Stage) []string {
	var copied []string
	for _, st := range stages {
		for _, cmd := range st.Commands {
			if cp, ok := cmd.(*instructions.CopyCommand); ok && cp.From == "" {
				for _, s := range cp.SourcePaths {
					copied = append(copied, path.Clean(strings.TrimPrefix(s, "./")))
				}
			}
		}
	}
	covered := func(dir string) bool {
		for _, c := range copied {
			if c == "." || dir == c || strings.HasPrefix(dir, c+"/") {
				return true
			}
		}
		return false
	}
	moduleDir := "services/" + service
	need := []string{moduleDir}
	f, err := os.Open(filepath.Join(c.root, moduleDir, "go.mod"))
	if err != nil {
		return []string{"reading go.mod: " + err.Error()}
	}
	defer f.Close()
	replace := regexp.MustCompile(`=>\s*(\.\.?/\S+)`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := replace.FindStringSubmatch(sc.Text()); m != nil {
			need = append(need, path.Clean(path.Join(moduleDir, m[1])))
		}
	}
	var problems []string
	for _, d := range need {
		if !covered(d) {
			problems = append(problems, fmt.Sprintf("build needs %s (module or go.mod replace target) but no COPY brings it in", d))
		}
	}
	return problems
}

func firstLine(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

func TestDockerfiles(t *testing.T) {
	t.Parallel()
	ctx := loadDockerContext(t, repoRoot(t))
	for _, s := range services {
		t.Run(s, func(t *testing.T) {
			b, err := os.ReadFile(repoPath(t, "services", s, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range lintDockerfile(ctx, s, string(b)) {
				t.Error(p)
			}
		})
	}
}

// TestDockerfileDefectsCaught injects one defect at a time into a real
// Dockerfile and requires the lint to name it.
func TestDockerfileDefectsCaught(t *testing.T) {
	t.Parallel()
	ctx := loadDockerContext(t, repoRoot(t))
	b, err := os.ReadFile(repoPath(t, "services", "s3-sink", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	good := string(b)
	cases := []struct {
		name, old, new, want string
	}{
		{"missing COPY source", "COPY pkg/ pkg/", "COPY pkg/ pkg/\nCOPY nosuchdir/ nosuchdir/", "COPY nosuchdir/: not in the build context"},
		{"replace target not copied", "COPY pkg/ pkg/\n", "", "build needs pkg"},
		{"root user", "USER 65532:65532", "USER root", `USER "root"`},
		{"no user", "USER 65532:65532\n", "", `USER ""`},
		{"cgo on", "CGO_ENABLED=0 ", "CGO_ENABLED=1 ", "CGO_ENABLED=0 not set"},
		{"no cache mount", "--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/tmp/x", "no --mount=type=cache,target=/go/pkg/mod"},
		{"full base image", "ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot@", "ARG BASE_IMAGE=debian:12@", "want gcr.io/distroless/static"},
		{"base image not pinned", "ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:", "ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot\nARG UNUSED=", "pin the base image by digest"},
		{"build image not pinned", "ARG GO_IMAGE=golang:${GO_VERSION}@sha256:", "ARG GO_IMAGE=golang:${GO_VERSION}\nARG UNUSED=", "pin the base image by digest"},
		{"prebuilt binary outside dist/bin", "COPY dist/bin/", "COPY dist/other/", "not in the build context"},
		{"label missing", "org.opencontainers.image.revision", "org.example.revision", "lacks LABEL org.opencontainers.image.revision"},
		{"port missing", "EXPOSE 9102", "EXPOSE 9999", "does not EXPOSE 9102"},
		{"shell-form entrypoint", `ENTRYPOINT ["/usr/local/bin/s3-sink"]`, "ENTRYPOINT /usr/local/bin/s3-sink", "JSONArgsRecommended"},
		{"casing (buildkit FromAsCasing)", "AS runtime", "as runtime", "FromAsCasing"},
		{"legacy ENV (buildkit)", "ENV CGO_ENABLED=0 GOWORK=off GOFLAGS=-trimpath", "ENV CGO_ENABLED 0", "LegacyKeyValueFormat"},
		{"undefined ARG in FROM", "FROM --platform=$BUILDPLATFORM ${GO_IMAGE}", "FROM --platform=$BUILDPLATFORM ${GO_IMAG}", "UndefinedArgInFrom"},
		{"unknown stage", "COPY --from=build", "COPY --from=builder", "no earlier stage"},
		{"single stage", "FROM ${BASE_IMAGE} AS runtime\n", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("the Dockerfile no longer contains %q: update the injected defect", tc.old)
			}
			bad := strings.Replace(good, tc.old, tc.new, 1)
			problems := lintDockerfile(ctx, "s3-sink", bad)
			if len(problems) == 0 {
				t.Fatalf("defect not caught")
			}
			if tc.want != "" && !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Fatalf("want a problem containing %q, got %q", tc.want, problems)
			}
		})
	}
}

// TestDockerignoreDefectCaught: a .dockerignore that drops Go sources breaks
// every image build; the COPY check must see it.
func TestDockerignoreDefectCaught(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	pm, err := patternmatcher.New([]string{"*", "!pkg/", "!services/", "**/*.go"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := dockerContext{root: root, ignore: pm, mu: new(sync.Mutex)}
	problems := ctx.checkCopySource("services/s3-sink/", 1)
	if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "excluded by .dockerignore") }) {
		t.Fatalf("excluded Go sources not caught: %q", problems)
	}
	real := loadDockerContext(t, root)
	for _, rel := range []string{"Makefile", ".git/config", "helm/sluice/values.yaml", "services/s3-sink/main_test.go"} {
		if !real.excluded(rel) {
			t.Errorf(".dockerignore sends %s to the build context", rel)
		}
	}
	for _, rel := range []string{"pkg/go.mod", "services/s3-sink/main.go", "services/s3-sink/go.sum"} {
		if real.excluded(rel) {
			t.Errorf(".dockerignore drops %s, which the build needs", rel)
		}
	}
}
