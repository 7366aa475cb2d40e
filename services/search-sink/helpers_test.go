package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
	"github.com/sluicehq/sluice/pkg/wire"
)

const ordersSchema = `{"type":"record","name":"Order","namespace":"shop","fields":[
 {"name":"id","type":"long"},
 {"name":"region","type":"string"},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"latency_ms","type":["null","double"],"default":null},
 {"name":"created","type":{"type":"long","logicalType":"timestamp-millis"}}
]}`

// env is a running Kafka + registry + ES double with the orders topic.
type env struct {
	kc       *kafkatest.Cluster
	reg      *registrytest.Registry
	es       *estest.Server
	schemaID int
	codec    *goavro.Codec
	w        *kafkago.Writer
}

func newEnv(t *testing.T, partitions int32, esOpts ...estest.Option) *env {
	t.Helper()
	e := &env{kc: kafkatest.Start(t)}
	e.kc.CreateTopic("orders", partitions, nil)
	e.reg = registrytest.Start(t, e.kc.Brokers())
	e.schemaID = e.reg.Register(t, "orders-value", ordersSchema)
	e.es = estest.Start(t, esOpts...)
	e.codec = ordersCodec(t)
	e.w = e.kc.Clients().NewWriter(kafka.WriterOptions{Topic: "orders", Balancer: &kafkago.RoundRobin{}})
	t.Cleanup(func() { _ = e.w.Close() })
	return e
}

func ordersCodec(t testing.TB) *goavro.Codec {
	t.Helper()
	c, err := goavro.NewCodec(ordersSchema)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// day0 is 23:00 UTC four days before the tests run: records up to a few
// days after it are inside the sink's time window (30-day retention, 1h
// future skew) whatever the date.
var day0 = time.Now().UTC().Truncate(24 * time.Hour).Add(-4*24*time.Hour + 23*time.Hour)

// dayIndex names topic's daily index n days after day0's.
func dayIndex(topic string, n int) string {
	return topic + "-" + day0.AddDate(0, 0, n).Format("2006.01.02")
}

// order encodes one Confluent-framed record.
func (e *env) order(t testing.TB, i int, region string, latency float64) []byte {
	t.Helper()
	native := map[string]any{
		"id": int64(i), "region": region, "amount": big.NewRat(1234, 100),
		"latency_ms": goavro.Union("double", latency), "created": day0.Add(time.Duration(i) * time.Minute),
	}
	payload, err := e.codec.BinaryFromNative(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	return wire.Encode(uint32(e.schemaID), payload)
}

// produce writes n orders; record i has timestamp day0 + i minutes, so the
// records span two daily indices.
func (e *env) produce(t testing.TB, from, n int) {
	t.Helper()
	ctx := kafkatest.Context(t, 30*time.Second)
	msgs := make([]kafkago.Message, 0, n)
	for i := from; i < from+n; i++ {
		msgs = append(msgs, kafkago.Message{Key: []byte(fmt.Sprintf("k%d", i)), Value: e.order(t, i, "eu", 100), Time: day0.Add(time.Duration(i) * time.Minute)})
	}
	if err := e.w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

func (e *env) args(t testing.TB, extra ...string) []string {
	return append([]string{
		"-kafka-brokers", strings.Join(e.kc.Brokers(), ","),
		"-registry-url", e.reg.URL(),
		"-es-url", e.es.URL(),
		"-search-sink-admin-addr", "127.0.0.1:0",
		"-search-sink-topic-refresh", "300ms",
		"-search-sink-commit-interval", "100ms",
		"-search-sink-flush-interval", "50ms",
		"-search-sink-retry-base", "20ms",
		"-search-sink-retry-max", "500ms",
		"-shutdown-timeout", "10s",
		"-log-level", "warn",
	}, extra...)
}

// startSink runs the service in-process until the test ends; it returns a
// function that stops it and waits.
func startSink(t *testing.T, args []string) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, args) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("sink did not stop within 30s")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) committed(t testing.TB, group string) map[int]int64 {
	t.Helper()
	ctx := kafkatest.Context(t, 10*time.Second)
	offs, err := e.kc.Clients().Admin.ConsumerOffsets(ctx, kafkago.TopicAndGroup{Topic: "orders", GroupId: group})
	if err != nil {
		return nil
	}
	return offs
}

func sum(m map[int]int64) int64 {
	var s int64
	for _, v := range m {
		if v > 0 {
			s += v
		}
	}
	return s
}

// docs returns every document of the orders indices by id.
func (e *env) docs(names ...string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for _, n := range names {
		for id, d := range e.es.Docs(n) {
			out[id] = d
		}
	}
	return out
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func metric(t testing.TB, addr, name string) string {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			return line
		}
	}
	return ""
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// sinkBinary builds this service once per test process.
func sinkBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "search-sink-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "search-sink")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var _ = binary.BigEndian
