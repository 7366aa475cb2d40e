package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// imageVersion is stamped into the images the test builds.
const imageVersion = "v0.0.0-imagetest"

// imageRunner runs commands in one service image the way a cluster with a
// restricted security context would: as 65532, on a read-only root (only
// /tmp and /run are writable tmpfs mounts, as the chart's emptyDir /tmp),
// with buildah's chroot isolation on the host network.
type imageRunner struct {
	t       *testing.T
	flags   []string // buildah storage flags
	name    string   // service
	ctr     string   // buildah working container
	rootDir string   // its mounted root filesystem
}

func (r *imageRunner) buildah(args ...string) (string, error) {
	cmd := exec.Command("buildah", append(append([]string{}, r.flags...), args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// command builds (unstarted) `buildah run` of the service binary with env
// and args in a private mount namespace where the root is read-only.
func (r *imageRunner) command(env map[string]string, args ...string) *exec.Cmd {
	run := []string{"buildah"}
	run = append(run, r.flags...)
	run = append(run, "run", "--isolation", "chroot", "--network", "host", "--user", "65532:65532")
	for k, v := range env {
		run = append(run, "-e", k+"="+v)
	}
	run = append(run, r.ctr, "--", "/usr/local/bin/"+r.name)
	run = append(run, args...)
	m := r.rootDir
	script := fmt.Sprintf(`set -e
mount --bind %[1]s %[1]s
mount -o remount,ro,bind %[1]s
if touch %[1]s/.rw-probe 2>/dev/null; then echo "image root is writable" >&2; exit 99; fi
mount -t tmpfs -o mode=1777 tmpfs %[1]s/tmp
mount -t tmpfs tmpfs %[1]s/run
exec "$@"`, m)
	cmd := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh"}, run...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// run runs the binary to completion and returns its output and exit code.
func (r *imageRunner) run(env map[string]string, args ...string) (string, int) {
	r.t.Helper()
	cmd := r.command(env, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		r.t.Fatalf("%s %v did not exit within 2m:\n%s", r.name, args, out.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// servicePID finds the service process started from the image (its
// executable path inside the chroot is /usr/local/bin/<name>).
func servicePID(name string) (int, bool) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.SplitN(string(b), "\x00", 2)[0] == "/usr/local/bin/"+name {
			return pid, true
		}
	}
	return 0, false
}

// uidOf reads the real and effective uid of a process.
func uidOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Uid:") {
			f := strings.Fields(l)
			return f[1] + "/" + f[2]
		}
	}
	return "?"
}

// TestImagesRun builds every service's image as `make release-snapshot`
// does (scripts/release.sh: binaries once, the offline scratch-based base,
// services/<svc>/Dockerfile with BINARY_FROM=prebuilt) and runs each one as
// 65532 on a read-only root: it prints its version, refuses a bad
// configuration with exit 2 and, with the dev stack's backends (kfake,
// versitygw, the ES double) on 127.0.0.1, answers /healthz and /readyz
// (the registry image stays up for the services after it, which reach it
// over gRPC as the dev stack does) and exports sluice_build_info with the
// stamped version.
func TestImagesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("image-run test: skipped in -short mode")
	}
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Skip("image-run test SKIPPED: buildah is not installed (make tools installs it: Debian package buildah)")
	}
	if os.Geteuid() != 0 {
		t.Skip("image-run test SKIPPED: needs root (buildah vfs storage and a private mount namespace for the read-only root)")
	}
	waitPortsFree(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	flags := []string{"--storage-driver", "vfs", "--root", filepath.Join(work, "storage"), "--runroot", filepath.Join(work, "run")}
	t.Cleanup(func() {
		_ = exec.Command("buildah", append(append([]string{}, flags...), "rm", "--all")...).Run()
		_ = exec.Command("buildah", append(append([]string{}, flags...), "rmi", "--all", "--force")...).Run()
	})
	start := time.Now()
	build := exec.Command(filepath.Join(root, "scripts", "release.sh"), "binaries", "base", "images")
	build.Dir = root
	build.Env = append(os.Environ(), "VERSION="+imageVersion, "REVISION=imagetest", "ARCHES="+runtime.GOARCH,
		"DIST="+filepath.Join(work, "dist"), "BUILDAH_FLAGS="+strings.Join(flags, " "), "IMAGE_REPO=localhost/sluice")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release.sh binaries base images: %v\n%s", err, out)
	}
	t.Logf("built binaries, base and %d images in %s", len(services), time.Since(start).Round(time.Second))

	st := &stack{log: slog.New(slog.NewTextHandler(io.Discard, nil)), opts: options{dataDir: filepath.Join(work, "backends")}, be: backendsFromEnv()}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := st.startBackends(ctx); err != nil {
		t.Fatalf("starting the dev-stack backends: %v", err)
	}
	t.Cleanup(st.stopBackends)

	parent := t
	for _, s := range services {
		t.Run(s.name, func(t *testing.T) {
			// The registry's container keeps running for the services
			// after it (they resolve schemas through it over gRPC), so its
			// teardown belongs to the parent test.
			owner := testing.TB(t)
			if s.name == "schema-registry" {
				owner = parent
			}
			r := &imageRunner{t: t, flags: flags, name: s.name}
			image := fmt.Sprintf("localhost/sluice/%s:%s-%s", s.name, imageVersion, runtime.GOARCH)
			cfg, err := r.buildah("inspect", "--format", "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}", image)
			if err != nil || cfg != fmt.Sprintf("65532:65532 [/usr/local/bin/%s]", s.name) {
				t.Fatalf("image config: user and entrypoint %q (%v), want 65532:65532 [/usr/local/bin/%s]", cfg, err, s.name)
			}
			if r.ctr, err = r.buildah("from", "--pull-never", image); err != nil {
				t.Fatalf("buildah from: %v: %s", err, r.ctr)
			}
			if r.rootDir, err = r.buildah("mount", r.ctr); err != nil {
				t.Fatalf("buildah mount: %v: %s", err, r.rootDir)
			}
			owner.Cleanup(func() { _, _ = r.buildah("umount", r.ctr); _, _ = r.buildah("rm", r.ctr) })

			out, code := r.run(nil, "-version")
			if code != 0 || !strings.Contains(out, s.name+" version "+imageVersion+", revision imagetest") {
				t.Fatalf("-version: exit %d, output %q", code, out)
			}
			out, code = r.run(map[string]string{"LOG_LEVEL": "loud"}, nil...)
			if code != 2 || !strings.Contains(out, "LOG_LEVEL") {
				t.Fatalf("bad LOG_LEVEL: exit %d (want 2), output %q", code, out)
			}

			env := s.env(st.be)
			cmd := r.command(env)
			var log syncBuffer
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			owner.Cleanup(func() {
				if pid, ok := servicePID(s.name); ok {
					_ = syscall.Kill(pid, syscall.SIGTERM)
				}
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-done
					owner.Errorf("%s did not stop within 30s of SIGTERM", s.name)
				}
			})
			base := "http://127.0.0.1:" + s.adminPort
			// /healthz (alive), then /readyz: the image reaches the dev-stack
			// backends and the registry image from inside its chroot.
			for _, path := range []string{"/healthz", "/readyz"} {
				if status, err := poll(base+path, done, 90*time.Second); status != http.StatusOK {
					t.Fatalf("%s: %s answered %d within 90s (last error %v; exited: %v):\n%s", s.name, path, status, err, exited(done), log.String())
				}
			}
			pid, ok := servicePID(s.name)
			if !ok {
				t.Fatal("service process not found in /proc")
			}
			if uid := uidOf(pid); uid != "65532/65532" {
				t.Errorf("process runs as uid %s, want 65532", uid)
			}
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if !strings.Contains(string(body), `sluice_build_info{go_version="`) || !strings.Contains(string(body), `version="`+imageVersion+`"`) {
				t.Errorf("/metrics lacks sluice_build_info with version %s", imageVersion)
			}
		})
	}
}

// poll GETs url until it answers 200, the process exits (done closed) or
// the deadline passes; it returns the last status (0: no answer) and error.
func poll(url string, done <-chan struct{}, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		status := 0
		resp, err := client.Get(url)
		if err == nil {
			status = resp.StatusCode
			_ = resp.Body.Close()
			if status == http.StatusOK {
				return status, nil
			}
		}
		if exited(done) || time.Now().After(deadline) {
			return status, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func exited(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// syncBuffer is a bytes.Buffer the process's output goroutine writes while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
