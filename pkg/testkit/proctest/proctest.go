// Package proctest builds Sluice service binaries once per test process and
// runs them as real subprocesses on 127.0.0.1: start and wait for /readyz,
// SIGTERM, SIGKILL (crash tests) and restart on the same ports, with each
// process's log kept in a file and printed when the test fails.
package proctest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu  sync.Mutex
	builds   = map[string]string{}
	buildDir string
)

// RepoRoot is the repository root, located from this file's path.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("proctest: cannot locate own source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Build compiles the command in dir (relative to the repository root, e.g.
// "services/s3-sink") once per test process and returns the binary's path.
func Build(tb testing.TB, dir string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builds[dir]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "sluice-proctest-")
		if err != nil {
			tb.Fatalf("proctest: temp dir: %v", err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(dir))
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = filepath.Join(RepoRoot(tb), dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("proctest: go build in %s: %v\n%s", cmd.Dir, err, b)
	}
	builds[dir] = out
	return out
}

// FreePort returns a port that was free on 127.0.0.1 a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proctest: picking a port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Spec describes a process to run.
type Spec struct {
	Name         string            // for logs and errors
	Bin          string            // path from Build
	Args         []string          // command-line arguments
	Env          map[string]string // added to the test's environment
	ReadyURL     string            // polled until 200; empty: do not wait
	StartTimeout time.Duration     // default 60s
}

// Proc is a running (or stopped) process.
type Proc struct {
	spec    Spec
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logf *os.File
}

// Start launches the process, waits for ReadyURL, and stops it (SIGTERM)
// at cleanup, printing its log if the test failed.
func Start(tb testing.TB, spec Spec) *Proc {
	tb.Helper()
	if spec.StartTimeout <= 0 {
		spec.StartTimeout = 60 * time.Second
	}
	p := &Proc{spec: spec, logPath: filepath.Join(tb.TempDir(), spec.Name+".log")}
	tb.Cleanup(func() {
		p.signal(syscall.SIGTERM, 20*time.Second)
		if tb.Failed() {
			tb.Logf("%s log (%s):\n%s", spec.Name, p.logPath, p.Log(12000))
		}
	})
	if err := p.launch(); err != nil {
		tb.Fatalf("proctest: %s: %v\n%s", spec.Name, err, p.Log(12000))
	}
	return p
}

func (p *Proc) launch() error {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.spec.Bin, p.spec.Args...)
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(p.spec.Env))
	for k := range p.spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+p.spec.Env[k])
	}
	cmd.Stdout, cmd.Stderr = f, f
	// If the test binary dies, take the child with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", p.spec.Bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done, p.logf = cmd, done, f
	p.mu.Unlock()
	if p.spec.ReadyURL == "" {
		return nil
	}
	return p.waitReady(done)
}

func (p *Proc) waitReady(done chan struct{}) error {
	deadline := time.Now().Add(p.spec.StartTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		resp, err := hc.Get(p.spec.ReadyURL)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("exited before it was ready")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("no 200 from %s within %s", p.spec.ReadyURL, p.spec.StartTimeout)
}

// signal sends sig and waits up to wait for the exit, then SIGKILLs.
func (p *Proc) signal(sig syscall.Signal, wait time.Duration) (exitCode int) {
	p.mu.Lock()
	cmd, done, f := p.cmd, p.done, p.logf
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return -1
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
	f.Close()
	return cmd.ProcessState.ExitCode()
}

// Name is the process's name from its Spec.
func (p *Proc) Name() string { return p.spec.Name }

// Kill stops the process with SIGKILL, as a crash would.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM, waits up to 30s, and returns the exit code.
func (p *Proc) Stop() int { return p.signal(syscall.SIGTERM, 30*time.Second) }

// Running reports whether the process is still alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Restart stops the process if running (SIGTERM) and starts it again with
// the same spec, waiting until it is ready.
func (p *Proc) Restart(tb testing.TB) {
	tb.Helper()
	p.signal(syscall.SIGTERM, 20*time.Second)
	if err := p.launch(); err != nil {
		tb.Fatalf("proctest: restarting %s: %v\n%s", p.spec.Name, err, p.Log(12000))
	}
}

// PeakRSSMiB is the process's peak resident memory (VmHWM), or 0 when it
// is not running or /proc is not there.
func (p *Proc) PeakRSSMiB() float64 {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return 0
	}
	b, err := PeakRSSBytes(cmd.Process.Pid)
	if err != nil {
		return 0
	}
	return float64(b) / (1 << 20)
}

// PeakRSSBytes reads a running process's peak resident memory (VmHWM in
// /proc/<pid>/status), in bytes.
func PeakRSSBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("reading peak RSS of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing VmHWM %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// Log returns the last n bytes of the process's output.
func (p *Proc) Log(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// PortURL is "http://127.0.0.1:<port><path>".
func PortURL(port int, path string) string { return "http://127.0.0.1:" + strconv.Itoa(port) + path }
