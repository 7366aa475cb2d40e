package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"
)

// outMu serialises prefixed lines from all children onto stdout.
var outMu sync.Mutex

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startChild starts bin in its own process group (so a terminal Ctrl-C
// reaches only devstack, which stops children in order) with
// Pdeathsig=SIGTERM (so a kill -9 of devstack leaves no orphans). Each
// output line is prefixed with the service name.
func startChild(_ context.Context, bin, name string, env map[string]string, exited chan<- string) (*child, error) {
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go prefix(&wg, name, stdout)
	go prefix(&wg, name, stderr)
	go func() {
		wg.Wait()
		_ = cmd.Wait()
		close(c.done)
		exited <- name
	}()
	return c, nil
}

func prefix(wg *sync.WaitGroup, name string, r io.Reader) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		outMu.Lock()
		fmt.Fprintf(os.Stdout, "%-16s| %s\n", name, sc.Bytes())
		outMu.Unlock()
	}
}

func (c *child) stop(timeout time.Duration, log *slog.Logger) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		log.Info("stopped", "service", c.name, "exit", c.cmd.ProcessState.ExitCode())
	case <-time.After(timeout):
		log.Warn("did not stop in time; killing", "service", c.name, "timeout", timeout)
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}
