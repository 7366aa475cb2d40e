package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/auth"
)

// orderSchema is the test value schema: nested record, array, map, enum,
// unions and logical types.
const orderSchema = `{"type":"record","name":"Order","namespace":"com.acme","fields":[
 {"name":"id","type":"string"},
 {"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"name","type":"string"},{"name":"email","type":["null","string"],"default":null}]}},
 {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[{"name":"sku","type":"string"},{"name":"qty","type":"int"},{"name":"price","type":"double"}]}}},
 {"name":"tags","type":{"type":"map","values":"string"},"default":{}},
 {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]},"default":"NEW"},
 {"name":"created","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"day","type":{"type":"int","logicalType":"date"},"default":0},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2},"default":"\u0000"},
 {"name":"ref","type":["null",{"type":"string","logicalType":"uuid"}],"default":null},
 {"name":"note","type":["null","string","long"],"default":null}
]}`

// env is one test's Kafka, registry and gateway.
type env struct {
	t       testing.TB
	kafka   *kafkatest.Cluster
	reg     *registrytest.Registry
	httpURL string
	grpc    string
	cancel  context.CancelFunc
	done    chan error
	client  *http.Client
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startEnv starts kfake, the real schema registry and the gateway (run()
// in-process) with flags; extra flags override the defaults.
func startEnv(tb testing.TB, kafka *kafkatest.Cluster, reg *registrytest.Registry, flags ...string) *env {
	tb.Helper()
	return startEnvTLS(tb, kafka, reg, nil, flags...)
}

// startEnvTLS is startEnv for a gateway serving TLS; clientTLS trusts it.
func startEnvTLS(tb testing.TB, kafka *kafkatest.Cluster, reg *registrytest.Registry, clientTLS *tls.Config, flags ...string) *env {
	tb.Helper()
	if kafka == nil {
		kafka = kafkatest.Start(tb)
	}
	if reg == nil {
		reg = registrytest.Start(tb, kafka.Brokers())
	}
	e := &env{t: tb, kafka: kafka, reg: reg, done: make(chan error, 1), client: &http.Client{Timeout: 30 * time.Second}}
	httpAddr, grpcAddr := freeAddr(tb), freeAddr(tb)
	e.httpURL, e.grpc = "http://"+httpAddr, grpcAddr
	if clientTLS != nil {
		e.httpURL = "https://" + httpAddr
		e.client.Transport = &http.Transport{TLSClientConfig: clientTLS}
	}
	args := []string{
		"-kafka-brokers", kafka.Brokers()[0],
		"-registry-url", reg.URL(),
		"-registry-latest-ttl", "0s",
		"-gateway-http-addr", httpAddr,
		"-gateway-grpc-addr", grpcAddr,
		"-gateway-topics", "*",
		"-gateway-produce-timeout", "3s",
		"-log-level", "warn",
		"-shutdown-timeout", "20s",
	}
	args = append(args, flags...)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- run(ctx, args) }()
	tb.Cleanup(func() { e.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := e.client.Get(e.httpURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return e
			}
		}
		select {
		case err := <-e.done:
			e.cancel()
			e.cancel = nil
			tb.Fatalf("gateway exited during start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gateway not ready after 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startKafkaAndRegistry starts kfake and the real registry only.
func startKafkaAndRegistry(tb testing.TB) (*kafkatest.Cluster, *registrytest.Registry) {
	tb.Helper()
	k := kafkatest.Start(tb)
	return k, registrytest.Start(tb, k.Brokers())
}

// stop cancels run's context (as SIGTERM does) and waits for it to return.
func (e *env) stop() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		return err
	case <-time.After(30 * time.Second):
		e.t.Errorf("gateway did not stop within 30s")
		return errors.New("timeout")
	}
}

// keysFile writes an API keys file and returns its path.
func keysFile(tb testing.TB, keys map[string][]string, secrets map[string]string) string {
	tb.Helper()
	var f auth.File
	for id, topics := range keys {
		f.Keys = append(f.Keys, auth.Key{ID: id, SHA256: auth.HashSecret(secrets[id]), Topics: topics})
	}
	b, _ := json.Marshal(f)
	p := filepath.Join(tb.TempDir(), "keys.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

func (r httpResult) json(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("response %d is not JSON: %v\n%s", r.status, err, r.body)
	}
}

func post(tb testing.TB, url, contentType string, body []byte, hdr ...string) httpResult {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("reading response: %v", err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: b}
}

// consumed is one record read back from Kafka.
type consumed struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
	Time      time.Time
}

// readTopic reads every record of topic with franz-go until want records
// arrived (or the deadline); want < 0 reads until nothing new arrives
// for a while.
func readTopic(tb testing.TB, brokers []string, topic string, want int) map[[2]int64]consumed {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	out := map[[2]int64]consumed{}
	deadline := time.Now().Add(15 * time.Second)
	quiet := 0
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			out[[2]int64{int64(r.Partition), r.Offset}] = consumed{r.Partition, r.Offset, r.Key, r.Value, h, r.Timestamp}
		})
		if want >= 0 && len(out) >= want {
			if len(out) > want {
				tb.Errorf("topic %s has %d records, want %d", topic, len(out), want)
			}
			return out
		}
		if n == 0 {
			quiet++
			if want < 0 && quiet >= 3 {
				return out
			}
		} else {
			quiet = 0
		}
	}
	if want >= 0 {
		tb.Fatalf("topic %s: read %d records, want %d", topic, len(out), want)
	}
	return out
}

func records(n int, mk func(i int) string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"records":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(mk(i))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func orderJSON(i int) string {
	return fmt.Sprintf(`{"id":"o-%d","customer":{"name":"c%d","email":"c%d@example.com"},"items":[{"sku":"s%d","qty":%d,"price":%d.5}],`+
		`"tags":{"k":"v%d"},"status":"PAID","created":"2024-05-01T12:00:00.%03dZ","day":"2024-05-01","amount":"%d.25","ref":"6f1c8a7e-3b2d-4c5e-9f00-1122334455%02d","note":%d}`,
		i, i, i, i, i%7+1, i, i, i%1000, i, i%100, i)
}

func itoa(i int) string { return strconv.Itoa(i) }
