package checks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// buildStage is the build stage of a Dockerfile replayed onto a directory:
// the files its COPY instructions bring in from the .dockerignore-filtered
// context, the WORKDIR and ENV in force at its `go build`.
type buildStage struct {
	FS      string   // stand-in for the stage's filesystem root
	Workdir string   // absolute, inside FS
	Env     []string // KEY=value from ENV instructions
}

// replayBuildStage replays WORKDIR, ENV and COPY of the stage that runs
// `go build`, so the Go toolchain can be pointed at exactly what the image
// build would see.
func replayBuildStage(tb testing.TB, ctx dockerContext, text string) (*buildStage, error) {
	tb.Helper()
	res, err := parser.Parse(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, err
	}
	for _, st := range stages {
		bs := &buildStage{FS: tb.TempDir(), Workdir: "/"}
		for _, cmd := range st.Commands {
			switch c := cmd.(type) {
			case *instructions.WorkdirCommand:
				bs.Workdir = path.Join(bs.Workdir, c.Path)
				if path.IsAbs(c.Path) {
					bs.Workdir = path.Clean(c.Path)
				}
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					bs.Env = append(bs.Env, kv.Key+"="+kv.Value)
				}
			case *instructions.CopyCommand:
				if c.From != "" {
					continue
				}
				dest := c.DestPath
				if !path.IsAbs(dest) {
					dest = path.Join(bs.Workdir, dest)
				}
				for _, src := range c.SourcePaths {
					if err := ctx.copyInto(src, filepath.Join(bs.FS, filepath.FromSlash(dest)), strings.HasSuffix(c.DestPath, "/")); err != nil {
						return nil, fmt.Errorf("COPY %s: %w", src, err)
					}
				}
			case *instructions.RunCommand:
				if strings.Contains(strings.Join(c.CmdLine, " "), "go build") {
					return bs, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no stage runs go build")
}

// copyInto copies a context path (minus what .dockerignore excludes) to
// dst with COPY's rules: a directory's contents go into dst.
func (c dockerContext) copyInto(src, dst string, dstIsDir bool) error {
	rel := path.Clean(strings.TrimPrefix(src, "./"))
	full := filepath.Join(c.root, filepath.FromSlash(rel))
	info, err := os.Stat(full)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		if c.excluded(rel) {
			return fmt.Errorf("%s is excluded by .dockerignore", rel)
		}
		if dstIsDir {
			dst = filepath.Join(dst, filepath.Base(full))
		}
		return copyFile(full, dst)
	}
	return filepath.WalkDir(full, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		r, _ := filepath.Rel(c.root, p)
		if c.excluded(filepath.ToSlash(r)) {
			return nil
		}
		within, _ := filepath.Rel(full, p)
		return copyFile(p, filepath.Join(dst, within))
	})
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// goListInStage resolves every package the service's build needs, in the
// replayed stage, with the stage's ENV (GOWORK=off, ...) and -mod=readonly,
// so a missing directory, go.mod replace target or go.sum line fails here
// as it would in `docker build`.
func goListInStage(tb testing.TB, bs *buildStage) (string, error) {
	tb.Helper()
	env := append(os.Environ(), bs.Env...)
	goflags := "-mod=readonly"
	for _, kv := range bs.Env {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			goflags = v + " " + goflags
		}
	}
	env = append(env, "GOFLAGS="+goflags, "GOTOOLCHAIN=local")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}", ".")
	cmd.Dir = filepath.Join(bs.FS, filepath.FromSlash(bs.Workdir))
	cmd.Env = env
	// Only stdout carries the template's per-package errors; stderr holds
	// progress ("go: downloading ...") on a cold module cache, which is not
	// an error. A failure of the command itself shows in its exit status.
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	switch {
	case err != nil:
		return out + stderr.String(), fmt.Errorf("go list: %w", err)
	case strings.TrimSpace(out) != "":
		return out, fmt.Errorf("package errors")
	}
	return out, nil
}

// TestDockerBuildContext: what each Dockerfile copies in is enough to
// resolve its service's whole build (module graph, replace targets, every
// imported package) with GOWORK=off, as the image build runs it.
func TestDockerBuildContext(t *testing.T) {
	t.Parallel()
	ctx := loadDockerContext(t, repoRoot(t))
	for _, s := range services {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(repoPath(t, "services", s, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			bs, err := replayBuildStage(t, ctx, string(b))
			if err != nil {
				t.Fatal(err)
			}
			if out, err := goListInStage(t, bs); err != nil {
				t.Fatalf("go list in the build stage: %v\n%s", err, out)
			}
		})
	}
}

func TestDockerBuildContextDefectCaught(t *testing.T) {
	t.Parallel()
	ctx := loadDockerContext(t, repoRoot(t))
	b, err := os.ReadFile(repoPath(t, "services", "kafka-exporter", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "COPY pkg/ pkg/\n", "COPY pkg/wire/ pkg/wire/\n", 1)
	if bad == string(b) {
		t.Fatal("the Dockerfile no longer copies pkg/: update the injected defect")
	}
	bs, err := replayBuildStage(t, ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := goListInStage(t, bs); err == nil {
		t.Fatalf("build resolved without pkg/ copied:\n%s", out)
	}
}
