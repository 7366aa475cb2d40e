package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/linkedin/goavro/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/proctest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
	"github.com/sluicehq/sluice/pkg/testkit/s3test"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/scripts/loadgen/load"
)

const (
	bucket      = "e2e"
	s3Group     = "sluice-s3-sink"
	searchGroup = "sluice-search-sink"
)

// dataTopics and their partition counts; payments dead-letters invalid records.
var dataTopics = map[string]int{"orders": 6, "payments": 3, "metrics": 1}

// stack is the running pipeline.
type stack struct {
	kc            *kafkatest.Cluster
	s3            *s3test.Server
	es            *estest.Server
	reg           *registrytest.Registry
	slack         *receiver
	gw            *proctest.Proc
	s3sink        *proctest.Proc
	search        *proctest.Proc
	exporter      *proctest.Proc
	gwHTTP        string
	gwGRPC        string
	exporterURL   string
	s3Metrics     string
	searchMetrics string
}

// receiver is a Slack incoming-webhook stand-in that keeps every POST.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (r *receiver) posts() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

const rules = `
rules:
  - name: metrics-burst
    topic: metrics
    type: spike
    window: 1m
    factor: 3
    realert: 1h
    severity: critical
`

// startStack runs the backends and the five services; over adds or
// replaces environment variables per service name.
func startStack(t testing.TB, over map[string]map[string]string) *stack {
	t.Helper()
	st := &stack{}
	st.kc = kafkatest.Start(t)
	for topic, parts := range dataTopics {
		st.kc.CreateTopic(topic, int32(parts), nil)
	}
	st.kc.CreateTopic("payments.dlq", 3, nil)
	st.s3 = s3test.Start(t)
	st.s3.CreateBucket(bucket)
	st.es = estest.Start(t)
	st.slack = &receiver{}
	hook := httptest.NewServer(st.slack)
	t.Cleanup(hook.Close)
	st.reg = registrytest.Start(t, st.kc.Brokers())
	for topic := range dataTopics {
		st.reg.Register(t, topic+"-value", load.Schema)
	}
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}

	common := map[string]string{
		"KAFKA_BROKERS":      strings.Join(st.kc.Brokers(), ","),
		"REGISTRY_URL":       st.reg.URL(),
		"REGISTRY_GRPC_ADDR": st.reg.GRPCAddr(), // as the chart, compose and the dev stack: gRPC first, REST the fallback
		"LOG_LEVEL":          "info",
		"SHUTDOWN_TIMEOUT":   "20s",
	}
	withFor := func(name string, extra map[string]string) map[string]string {
		m := map[string]string{}
		for _, src := range []map[string]string{common, extra, over[name]} {
			for k, v := range src {
				m[k] = v
			}
		}
		return m
	}
	topics := "orders,payments,metrics"

	hp, gp := proctest.FreePort(t), proctest.FreePort(t)
	st.gwHTTP, st.gwGRPC = proctest.PortURL(hp, ""), "127.0.0.1:"+strconv.Itoa(gp)
	st.gw = proctest.Start(t, proctest.Spec{Name: "ingest-gateway", Bin: proctest.Build(t, "services/ingest-gateway"),
		ReadyURL: proctest.PortURL(hp, "/readyz"), Env: withFor("ingest-gateway", map[string]string{
			"GATEWAY_HTTP_ADDR":          "127.0.0.1:" + strconv.Itoa(hp),
			"GATEWAY_GRPC_ADDR":          st.gwGRPC,
			"GATEWAY_TOPICS":             topics,
			"GATEWAY_DEAD_LETTER_TOPICS": "payments",
		})})

	sp := proctest.FreePort(t)
	st.s3Metrics = proctest.PortURL(sp, "/metrics")
	st.s3sink = proctest.Start(t, proctest.Spec{Name: "s3-sink", Bin: proctest.Build(t, "services/s3-sink"),
		ReadyURL: proctest.PortURL(sp, "/readyz"), Env: withFor("s3-sink", map[string]string{
			"S3_SINK_ADMIN_ADDR":    "127.0.0.1:" + strconv.Itoa(sp),
			"S3_SINK_TOPICS":        topics,
			"S3_SINK_FLUSH_RECORDS": "3000",
			"S3_SINK_GROUP_ID":      s3Group,
			"S3_ENDPOINT":           st.s3.Endpoint(),
			"S3_BUCKET":             bucket,
			"S3_REGION":             st.s3.Region(),
			"S3_ACCESS_KEY_ID":      st.s3.AccessKey(),
			"S3_SECRET_ACCESS_KEY":  st.s3.SecretKey(),
			"S3_FORCE_PATH_STYLE":   "true",
		})})

	ep := proctest.FreePort(t)
	st.searchMetrics = proctest.PortURL(ep, "/metrics")
	st.search = proctest.Start(t, proctest.Spec{Name: "search-sink", Bin: proctest.Build(t, "services/search-sink"),
		ReadyURL: proctest.PortURL(ep, "/readyz"), Env: withFor("search-sink", map[string]string{
			"SEARCH_SINK_ADMIN_ADDR":        "127.0.0.1:" + strconv.Itoa(ep),
			"SEARCH_SINK_TOPICS":            topics,
			"SEARCH_SINK_GROUP_ID":          searchGroup,
			"SEARCH_SINK_RULES_FILE":        rulesFile,
			"SEARCH_SINK_SLACK_WEBHOOK_URL": hook.URL,
			"ES_URL":                        st.es.URL(),
		})})

	xp := proctest.FreePort(t)
	st.exporterURL = proctest.PortURL(xp, "/metrics")
	st.exporter = proctest.Start(t, proctest.Spec{Name: "kafka-exporter", Bin: proctest.Build(t, "services/kafka-exporter"),
		ReadyURL: proctest.PortURL(xp, "/readyz"), Env: withFor("kafka-exporter", map[string]string{
			"EXPORTER_ADMIN_ADDR": "127.0.0.1:" + strconv.Itoa(xp),
			"EXPORTER_INTERVAL":   "1s",
		})})
	return st
}

// TestPipeline pushes 100,000 records through the gateway over HTTP and
// gRPC while the gateway and both sinks are SIGKILLed and restarted once
// each, then checks every invariant the product promises.
func TestPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	st := startStack(t, nil)
	ctx := kafkatest.Context(t, 9*time.Minute)

	var (
		mu       sync.Mutex
		acked    = map[string]Loc{}
		nAcked   atomic.Int64
		inFlight atomic.Int64
		summary  = map[string]load.Summary{}
		loadWG   sync.WaitGroup
	)
	onAck := func(topic string) func(string, int32, int64) {
		return func(id string, p int32, off int64) {
			mu.Lock()
			acked[id] = Loc{topic, int(p), off}
			mu.Unlock()
			nAcked.Add(1)
		}
	}
	runs := []load.Config{
		{Protocol: "http", HTTPURL: st.gwHTTP, Topic: "orders", Count: 60000, Rate: 6000, Batch: 500, Concurrency: 2, RecordSize: 200, IDPrefix: "o-", OnAck: onAck("orders"), InFlight: &inFlight},
		{Protocol: "grpc", GRPCAddr: st.gwGRPC, Topic: "payments", Count: 40000, Rate: 4000, Batch: 250, Concurrency: 2, RecordSize: 200, IDPrefix: "p-", OnAck: onAck("payments"), InFlight: &inFlight},
	}
	for _, cfg := range runs {
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			s, err := load.Run(ctx, cfg)
			if err != nil {
				t.Errorf("load %s: %v", cfg.Topic, err)
			}
			mu.Lock()
			summary[cfg.Topic] = s
			mu.Unlock()
		}()
	}
	loadDone := make(chan struct{})
	go func() { loadWG.Wait(); close(loadDone) }()

	// Chaos: SIGKILL each service once while it is busy, restart it at
	// once. The gateway dies mid-load; each sink dies mid-consumption, when
	// it has written part of the stream and holds more in flight (open
	// files, unacknowledged bulk items), which is when a sink that commits
	// too early loses data.
	for _, step := range []struct {
		what string
		at   float64
		done func() float64
		proc *proctest.Proc
	}{
		// The gateway dies with requests in flight: their records may or may
		// not be in Kafka, but none of them was acknowledged.
		{"gateway acknowledged", 15000, func() float64 {
			if inFlight.Load() == 0 {
				return 0
			}
			return float64(nAcked.Load())
		}, st.gw},
		{"s3-sink wrote", 30000, func() float64 { return metricSum(st.s3Metrics, "sluice_sink_records_written_total") }, st.s3sink},
		{"search-sink indexed", 50000, func() float64 { return metricSum(st.searchMetrics, "sluice_sink_records_written_total") }, st.search},
	} {
		if !waitUntil(nil, 5*time.Minute, func() bool { return step.done() >= step.at }) {
			t.Fatalf("%s never reached %v records (at %v)", step.what, step.at, step.done())
		}
		t.Logf("SIGKILL %s after it %s %v records (%d requests in flight)", filepath.Base(step.proc.Name()), step.what, step.done(), inFlight.Load())
		step.proc.Kill()
		step.proc.Restart(t)
	}
	<-loadDone
	for topic, s := range summary {
		t.Logf("load %s: %s", topic, s)
		if s.Acked < s.Records*9/10 {
			t.Errorf("%s: only %d of %d records acknowledged (first error %q)", topic, s.Acked, s.Records, s.FirstError)
		}
	}

	// Bad data: rejected on orders, dead-lettered on payments.
	rejected := sendInvalid(t, st.gwHTTP, "orders", "bad-o-", 20, false)
	dlqd := sendInvalid(t, st.gwHTTP, "payments", "bad-p-", 20, true)

	// The burst: 5 records a minute, then 40 in one minute, then quiet.
	sendBurst(t, st.gwHTTP, onAck("metrics"))

	// Before the test's own REST lookups (readAll): the services used the
	// registry over gRPC, not the REST fallback.
	checkRegistryOverGRPC(t, st)

	// Drain: the search sink indexes as it goes; the S3 sink flushes its
	// open files and commits on SIGTERM.
	kafka := readAll(t, ctx, st)
	if !waitUntil(nil, 2*time.Minute, func() bool { return countDocs(searchDocs(t, st)) >= len(kafka) }) {
		t.Logf("search index did not reach %d documents in time", len(kafka))
	}
	if code := st.s3sink.Stop(); code != 0 {
		t.Errorf("s3-sink exit code after SIGTERM = %d", code)
	}

	var p Problems
	mu.Lock()
	CheckAcked(&p, acked, kafka)
	mu.Unlock()
	CheckAbsent(&p, rejected, kafka)
	s3ids := s3Records(t, ctx, st)
	docs := searchDocs(t, st)
	for topic := range dataTopics {
		CheckExactlyOnce(&p, "s3", kafka, topic, s3ids[topic])
		CheckDocIDs(&p, kafka, topic, docs[topic])
	}
	checkDLQ(t, &p, ctx, st, dlqd)
	if !p.Empty() {
		t.Fatalf("pipeline invariants broken:\n%s", p.String())
	}
	t.Logf("verified %d Kafka records, %d acknowledged, %d rejected, %d dead-lettered", len(kafka), len(acked), len(rejected), len(dlqd))

	// Exactly one alert for the burst, and the exporter sees both groups caught up.
	if !waitUntil(nil, 30*time.Second, func() bool { return len(st.slack.posts()) >= 1 }) {
		t.Fatal("no alert delivered for the burst")
	}
	time.Sleep(2 * time.Second) // give a duplicate the chance to show up
	if posts := st.slack.posts(); len(posts) != 1 || !bytes.Contains(posts[0], []byte("metrics-burst")) {
		t.Fatalf("slack got %d posts, want exactly 1 for metrics-burst: %s", len(posts), posts)
	}
	var lagErr string
	if !waitUntil(nil, 60*time.Second, func() bool { lagErr = groupsCaughtUp(st.exporterURL); return lagErr == "" }) {
		t.Fatalf("exporter never reported zero lag: %s", lagErr)
	}
}

// checkRegistryOverGRPC: the gateway resolved its subjects over the
// registry's gRPC API (GetLatestSchema, at least once per gateway process:
// it was restarted once), the sinks needed schemas to deliver anything, and
// nobody used the REST lookup routes (the fallback).
func checkRegistryOverGRPC(t *testing.T, st *stack) {
	t.Helper()
	latest, all, rest := grpcLookups(st.reg.URL(), "GetLatestSchema"), grpcLookups(st.reg.URL(), ""), restLookups(st.reg.URL())
	t.Logf("registry: %v gRPC requests (%v GetLatestSchema), %v REST lookups", all, latest, rest)
	if latest < 2 {
		t.Errorf("registry answered %v GetLatestSchema over gRPC, want >= 2 (the gateway before and after its restart)", latest)
	}
	if rest != 0 {
		t.Errorf("services fell back to REST with gRPC up: %v REST lookups", rest)
	}
}

func waitUntil(stop <-chan struct{}, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-stop:
			return cond()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

type nativeResult struct {
	Topic        string `json:"topic"`
	Partition    *int32 `json:"partition"`
	Offset       *int64 `json:"offset"`
	DeadLettered bool   `json:"dead_lettered"`
	ErrorCode    int    `json:"error_code"`
	Message      string `json:"message"`
	Field        string `json:"field"`
}

func postRecords(t *testing.T, base, topic string, records []map[string]any) (int, []nativeResult) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"records": records})
	resp, err := http.Post(base+"/v1/topics/"+topic+"/records", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("posting to %s: %v", topic, err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []nativeResult `json:"results"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil || len(out.Results) != len(records) {
		t.Fatalf("posting to %s: status %d body %s", topic, resp.StatusCode, b)
	}
	return resp.StatusCode, out.Results
}

// sendInvalid sends n records whose amount is a string; returns their ids.
func sendInvalid(t *testing.T, base, topic, prefix string, n int, dlq bool) []string {
	t.Helper()
	var recs []map[string]any
	var ids []string
	for i := 0; i < n; i++ {
		id := prefix + strconv.Itoa(i)
		ids = append(ids, id)
		recs = append(recs, map[string]any{"key": id, "value": map[string]any{
			"id": id, "seq": i, "worker": 0, "amount": "not a number", "payload": "x", "sent_at": time.Now().UnixMilli()}})
	}
	status, res := postRecords(t, base, topic, recs)
	for i, r := range res {
		if dlq {
			if !r.DeadLettered || r.Topic != topic+".dlq" {
				t.Fatalf("%s record %d: %+v, want dead-lettered to %s.dlq", topic, i, r, topic)
			}
			continue
		}
		if r.ErrorCode == 0 || r.Field != "value.amount" || r.Offset != nil {
			t.Fatalf("%s record %d: %+v, want a rejection naming value.amount", topic, i, r)
		}
	}
	if !dlq && status != http.StatusUnprocessableEntity {
		t.Fatalf("all-invalid batch to %s answered %d, want 422", topic, status)
	}
	return ids
}

// burstStart is when sendBurst's series begins: fixed for the run, recent
// enough for the gateway's GATEWAY_MAX_TIMESTAMP_AGE and the search-sink's
// retention window.
var burstStart = time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)

// sendBurst sends the metrics series with explicit record timestamps so the
// spike rule sees the same windows whatever the machine's speed.
func sendBurst(t *testing.T, base string, ack func(string, int32, int64)) {
	t.Helper()
	day := burstStart
	var recs []map[string]any
	seq := 0
	for minute, n := range []int{5, 5, 5, 5, 5, 40, 5, 1} {
		for k := 0; k < n; k++ {
			at := day.Add(time.Duration(minute)*time.Minute + time.Duration(k)*time.Minute/time.Duration(n))
			id := "m-" + strconv.Itoa(seq)
			seq++
			recs = append(recs, map[string]any{"key": "svc-a", "timestamp": at.UnixMilli(), "value": map[string]any{
				"id": id, "seq": seq, "worker": 0, "amount": 1.5, "payload": "burst", "sent_at": at.UnixMilli()}})
		}
	}
	status, res := postRecords(t, base, "metrics", recs)
	if status != http.StatusOK {
		t.Fatalf("burst answered %d: %+v", status, res[0])
	}
	for i, r := range res {
		if r.ErrorCode != 0 || r.Offset == nil {
			t.Fatalf("burst record %d: %+v", i, r)
		}
		ack(recs[i]["value"].(map[string]any)["id"].(string), *r.Partition, *r.Offset)
	}
}

// readAll reads every data topic to its end and decodes each value's id
// independently of the services (wire framing + goavro by registry id).
func readAll(t *testing.T, ctx context.Context, st *stack) map[Loc]string {
	t.Helper()
	codecs := avro.NewCodecs(registry.New(registry.Config{URL: st.reg.URL(), Timeout: 10 * time.Second}))
	kc := st.kc.Clients()
	out := map[Loc]string{}
	for topic, parts := range dataTopics {
		for p := 0; p < parts; p++ {
			conn, err := kc.Dialer.DialLeader(ctx, "tcp", st.kc.Brokers()[0], topic, p)
			if err != nil {
				t.Fatal(err)
			}
			end, err := conn.ReadLastOffset()
			_ = conn.Close()
			if err != nil {
				t.Fatal(err)
			}
			if end == 0 {
				continue
			}
			r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: st.kc.Brokers(), Topic: topic, Partition: p, Dialer: kc.Dialer, MaxWait: 100 * time.Millisecond, MaxBytes: 8 << 20})
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					t.Fatalf("reading %s/%d: %v", topic, p, err)
				}
				out[Loc{topic, p, m.Offset}] = idOf(t, ctx, codecs, m.Value)
				if m.Offset >= end-1 {
					break
				}
			}
			_ = r.Close()
		}
	}
	return out
}

func idOf(t *testing.T, ctx context.Context, codecs *avro.Codecs, v []byte) string {
	t.Helper()
	id, payload, err := wire.Decode(v)
	if err != nil {
		t.Fatalf("Kafka value not Confluent-framed: %v", err)
	}
	c, err := codecs.ByID(ctx, int(id))
	if err != nil {
		t.Fatal(err)
	}
	native, _, err := c.NativeFromBinary(payload)
	if err != nil {
		t.Fatalf("Kafka value does not decode with schema %d: %v", id, err)
	}
	return native.(map[string]any)["id"].(string)
}

// s3Records decodes every object in the bucket with goavro's OCF reader and
// returns the record ids per topic.
func s3Records(t *testing.T, ctx context.Context, st *stack) map[string][]string {
	t.Helper()
	cl := st.s3.Client()
	out := map[string][]string{}
	pager := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			parts := strings.Split(key, "/")
			if len(parts) < 3 || !strings.HasSuffix(key, ".avro") {
				t.Fatalf("unexpected object key %s", key)
			}
			topic := parts[1]
			obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			rd, err := goavro.NewOCFReader(obj.Body)
			if err != nil {
				t.Fatalf("%s is not an Avro container file: %v", key, err)
			}
			for rd.Scan() {
				rec, err := rd.Read()
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				out[topic] = append(out[topic], rec.(map[string]any)["id"].(string))
			}
			if err := rd.Err(); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			_ = obj.Body.Close()
		}
	}
	return out
}

// searchDocs returns, per topic, document id -> record id from the daily
// indices the records' timestamps fall in.
func searchDocs(t *testing.T, st *stack) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	days := map[string]bool{}
	for _, d := range []time.Time{time.Now().UTC(), time.Now().UTC().Add(-24 * time.Hour), burstStart} {
		days[d.Format("2006.01.02")] = true
	}
	for topic := range dataTopics {
		out[topic] = map[string]string{}
		for day := range days {
			for docID, raw := range st.es.Docs(topic + "-" + day) {
				var d struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(raw, &d); err != nil {
					t.Fatalf("document %s: %v", docID, err)
				}
				out[topic][docID] = d.ID
			}
		}
	}
	return out
}

func countDocs(docs map[string]map[string]string) int {
	n := 0
	for _, d := range docs {
		n += len(d)
	}
	return n
}

// checkDLQ: every dead-lettered record is in payments.dlq with the
// original bytes and the DESIGN.md headers.
func checkDLQ(t *testing.T, p *Problems, ctx context.Context, st *stack, ids []string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for part := 0; part < 3; part++ {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: st.kc.Brokers(), Topic: "payments.dlq", Partition: part, MaxWait: 100 * time.Millisecond})
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		for {
			m, err := r.ReadMessage(rctx)
			if err != nil {
				break
			}
			headers := map[string]string{}
			for _, h := range m.Headers {
				headers[h.Key] = string(h.Value)
			}
			if headers["sluice-error"] == "" || headers["sluice-stage"] == "" || headers["sluice-source-topic"] != "payments" {
				p.Addf("dlq-headers", "record at %d/%d has headers %v", part, m.Offset, headers)
			}
			for id := range want {
				if bytes.Contains(m.Value, []byte(`"`+id+`"`)) {
					delete(want, id)
				}
			}
		}
		cancel()
		_ = r.Close()
	}
	for id := range want {
		p.Addf("dlq-missing", "%s was dead-lettered but is not in payments.dlq", id)
	}
}

// groupsCaughtUp scrapes the exporter and returns "" when both sink groups
// have zero lag on every data topic.
func groupsCaughtUp(url string) string {
	fams, err := scrape(url)
	if err != nil {
		return err.Error()
	}
	fam := fams["kafka_consumergroup_lag_sum"]
	if fam == nil {
		return "no kafka_consumergroup_lag_sum in the scrape"
	}
	lag := map[string]float64{}
	for _, m := range fam.GetMetric() {
		lag[label(m, "consumergroup")+"/"+label(m, "topic")] = m.GetGauge().GetValue()
	}
	for _, g := range []string{s3Group, searchGroup} {
		for topic := range dataTopics {
			v, ok := lag[g+"/"+topic]
			if !ok {
				return fmt.Sprintf("no lag series for %s/%s", g, topic)
			}
			if v != 0 {
				return fmt.Sprintf("lag %s/%s = %v", g, topic, v)
			}
		}
	}
	return ""
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// metricSum scrapes url and sums every sample of the named counter or
// gauge; 0 when the service does not answer or has no such series yet.
func metricSum(url, name string) float64 {
	fams, err := scrape(url)
	if err != nil || fams[name] == nil {
		return 0
	}
	var sum float64
	for _, m := range fams[name].GetMetric() {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}

// scrape fetches url and parses the Prometheus text exposition.
func scrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}
