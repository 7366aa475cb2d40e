package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMBinaryUnderLoad builds the gateway, runs it as a subprocess,
// sends SIGTERM while producers are busy, and checks that it exits 0 and
// every record it acknowledged is in Kafka.
func TestSIGTERMBinaryUnderLoad(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "ingest-gateway")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	e := &env{t: t, client: &http.Client{Timeout: 30 * time.Second}}
	e.kafka, e.reg = startKafkaAndRegistry(t)
	e.kafka.CreateTopic("term", 3, nil)
	id := e.reg.Register(t, "term-value", orderSchema)
	httpAddr := freeAddr(t)
	e.httpURL = "http://" + httpAddr
	var logs strings.Builder
	var logMu sync.Mutex
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"KAFKA_BROKERS="+e.kafka.Brokers()[0], "REGISTRY_URL="+e.reg.URL(),
		"GATEWAY_HTTP_ADDR="+httpAddr, "GATEWAY_GRPC_ADDR="+freeAddr(t), "GATEWAY_TOPICS=*",
		"LOG_LEVEL=info", "SHUTDOWN_TIMEOUT=20s")
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(p) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			logMu.Lock()
			t.Logf("gateway log:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := e.client.Get(e.httpURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var (
		mu    sync.Mutex
		acked []sent
		seq   atomic.Int64
		wg    sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			for {
				base := int(seq.Add(20)) - 20
				body := records(20, func(j int) string { return `{"value":` + orderJSON(base+j) + `}` })
				resp, err := client.Post(e.httpURL+"/v1/topics/term/records", "application/json", strings.NewReader(string(body)))
				if err != nil {
					return // the listener is closed: the gateway is stopping
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 503 {
					return
				}
				if resp.StatusCode != 200 {
					t.Errorf("status %d: %s", resp.StatusCode, b)
					return
				}
				var out struct {
					Results []struct {
						Partition *int32 `json:"partition"`
						Offset    *int64 `json:"offset"`
					} `json:"results"`
				}
				if err := json.Unmarshal(b, &out); err != nil {
					t.Errorf("bad 2xx body: %v", err)
					return
				}
				mu.Lock()
				for j, r := range out.Results {
					acked = append(acked, sent{i: base + j, partition: *r.Partition, offset: *r.Offset})
				}
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d records acknowledged", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatalf("gateway exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit within 30s of SIGTERM")
	}
	wg.Wait()
	got := readTopic(t, e.kafka.Brokers(), "term", -1)
	serde := decoder(t, id, orderSchema)
	for _, a := range acked {
		r, ok := got[[2]int64{int64(a.partition), a.offset}]
		if !ok {
			t.Fatalf("record %d acknowledged at %d/%d is not in Kafka", a.i, a.partition, a.offset)
		}
		var o hOrder
		if err := serde.Decode(r.Value, &o); err != nil || o.ID != fmt.Sprintf("o-%d", a.i) {
			t.Fatalf("record at %d/%d is %s (%v), want o-%d", a.partition, a.offset, o.ID, err, a.i)
		}
	}
	logMu.Lock()
	stopped := strings.Contains(logs.String(), `"msg":"service stopped"`)
	logMu.Unlock()
	if !stopped {
		t.Error("no orderly shutdown in the log")
	}
	t.Logf("%d records acknowledged before SIGTERM, all in Kafka", len(acked))
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
