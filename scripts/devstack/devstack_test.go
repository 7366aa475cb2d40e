package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
)

// buildAll builds the five services and devstack into one directory, as
// `make build` does.
func buildAll(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range services {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, s.name), ".")
		cmd.Dir = filepath.Join(root, "services", s.name)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", s.name, err, out)
		}
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "devstack"), ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building devstack: %v\n%s", err, out)
	}
	return bin
}

type running struct {
	cmd    *exec.Cmd
	up     chan time.Duration
	exited chan struct{}
	log    *strings.Builder
}

func startStack(t *testing.T, bin, data string) *running {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "devstack"), "-bin", bin, "-data", data, "-no-tty", "-ready-timeout", "60s")
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &running{cmd: cmd, up: make(chan time.Duration, 1), exited: make(chan struct{}), log: &strings.Builder{}}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			r.log.WriteString(line + "\n")
			if strings.Contains(line, "Sluice dev stack is up") {
				r.up <- time.Since(start)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.exited
		waitPortsFree(t)
	})
	select {
	case took := <-r.up:
		t.Logf("dev stack up in %s", took)
	case <-r.exited:
		t.Fatalf("devstack exited before it was up:\n%s", r.log)
	case <-time.After(90 * time.Second):
		t.Fatalf("devstack not up after 90s:\n%s", r.log)
	}
	return r
}

// cleanEnv drops variables that would point the stack at external backends.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "KAFKA_BROKERS" || k == "S3_ENDPOINT" || k == "ES_URL" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// stat: pid (comm) state ppid ...
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

func waitPortsFree(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range []string{defaultKafkaAddr, defaultS3Addr, defaultESAddr, "127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:9102", "127.0.0.1:9103", "127.0.0.1:9308"} {
		for {
			ln, err := net.Listen("tcp", a)
			if err == nil {
				_ = ln.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("port %s still taken 30s after the stack stopped", a)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func TestDevStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every service")
	}
	bin := buildAll(t)
	data := t.TempDir()

	// 1. Up within the bound, every admin endpoint answers 200.
	r := startStack(t, bin, data)
	client := &http.Client{Timeout: 5 * time.Second}
	for _, s := range services {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			resp, err := client.Get("http://127.0.0.1:" + s.adminPort + path)
			if err != nil {
				t.Fatalf("%s %s: %v", s.name, path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s = %d", s.name, path, resp.StatusCode)
			}
		}
	}

	// 2. The banner's record lands in search and in S3 without any
	// pre-configuration of the brand-new topic.
	body := `{"records":[{"key":"o-1","value":{"id":"o-1","amount":12.5,"currency":"EUR","created_at":"2026-01-01T10:00:00Z"}}]}`
	resp, err := client.Post("http://127.0.0.1:8080/v1/topics/orders/records", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"offset":0`) {
		t.Fatalf("send = %d %s", resp.StatusCode, b)
	}
	eventually(t, 60*time.Second, "document in the search double", func() bool {
		resp, err := client.Get("http://" + defaultESAddr + "/orders*/_count")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"count":1`)
	})
	eventually(t, 60*time.Second, "Avro object in the S3 directory", func() bool {
		found, _ := filepath.Glob(filepath.Join(data, "s3", devBucket, "topics", "orders", "*", "*.avro"))
		return len(found) == 1
	})

	// `make run` talks to the registry over gRPC: the gateway resolved
	// orders-value on the registry's gRPC API, the sinks needed the schema
	// to write the record, and nobody used the REST lookup routes (the
	// fallback).
	if n := registryCount(t, "sluice_schema_registry_grpc_request_duration_seconds", `method="/sluice.registry.v1.RegistryService/GetLatestSchema"`, `code="OK"`); n < 1 {
		t.Errorf("registry answered %v GetLatestSchema over gRPC, want >= 1 (the gateway)", n)
	}
	for _, route := range []string{`route="/subjects/`, `route="/schemas/ids/`} {
		if n := registryCount(t, "sluice_schema_registry_http_request_duration_seconds", `method="GET"`, route); n != 0 {
			t.Errorf("%v REST lookups (%s...): a service fell back to REST with gRPC up", n, route)
		}
	}

	// 3. Data written now must survive a kill -9 of the whole stack.
	kc, err := skafka.New(skafka.Config{Brokers: []string{defaultKafkaAddr}, ClientID: "devstack-test", DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := kc.EnsureTopic(ctx, skafka.TopicSpec{Name: "survivor", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	w := kc.NewWriter(skafka.WriterOptions{Topic: "survivor"})
	if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte("k"), Value: []byte("still here")}); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	kids := childPIDs(t, r.cmd.Process.Pid)
	if len(kids) != len(services) {
		t.Fatalf("devstack has %d children, want %d", len(kids), len(services))
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
	deadline := time.Now().Add(30 * time.Second)
	for _, k := range kids {
		for alive(k) {
			if time.Now().After(deadline) {
				t.Fatalf("child %d outlived a kill -9 of devstack (orphan)", k)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitPortsFree(t)

	// 4. Restart on the same data: the topic and record are there.
	r = startStack(t, bin, data)
	info, err := kc.DescribeTopic(ctx, "survivor")
	if err != nil || info.Partitions != 2 {
		t.Fatalf("after restart: topic %+v, %v", info, err)
	}
	rd := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{defaultKafkaAddr}, Topic: "survivor", Partition: partitionOf(t, kc), Dialer: kc.Dialer})
	defer rd.Close()
	m, err := rd.ReadMessage(ctx)
	if err != nil || string(m.Value) != "still here" {
		t.Fatalf("after restart read %q, %v", m.Value, err)
	}

	// 5. Ctrl-C: orderly stop, exit 0, no child left.
	kids = childPIDs(t, r.cmd.Process.Pid)
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("devstack did not exit within 60s of SIGINT:\n%s", r.log)
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("devstack exit code after SIGINT = %d, want 0:\n%s", code, r.log)
	}
	for _, k := range kids {
		if alive(k) {
			t.Fatalf("child %d still alive after devstack exited", k)
		}
	}
	for _, s := range services {
		if !strings.Contains(r.log.String(), "service="+s.name) {
			t.Errorf("no stop line for %s in:\n%s", s.name, r.log)
		}
	}
}

// registryCount sums the dev stack registry's request counts (the _count
// series of a latency histogram) on series containing every fragment.
func registryCount(t *testing.T, family string, fragments ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:8081/metrics")
	if err != nil {
		t.Fatalf("registry metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, family+"_count{") {
			continue
		}
		match := true
		for _, f := range fragments {
			match = match && strings.Contains(line, f)
		}
		if match {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("registry metrics line %q: %v", line, err)
			}
			sum += v
		}
	}
	return sum
}

// partitionOf finds the partition holding the one record written.
func partitionOf(t *testing.T, kc *skafka.Clients) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for p := 0; p < 2; p++ {
		conn, err := kc.Dialer.DialLeader(ctx, "tcp", defaultKafkaAddr, "survivor", p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		_ = conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last > 0 {
			return p
		}
	}
	t.Fatal("record not found in any partition after restart")
	return -1
}

func TestTakenPortIsNamed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:9308")
	if err != nil {
		t.Skipf("port 9308 busy already: %v", err)
	}
	defer ln.Close()
	err = checkPorts(backendsFromEnv())
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:9308") {
		t.Fatalf("checkPorts = %v, want error naming 127.0.0.1:9308", err)
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
