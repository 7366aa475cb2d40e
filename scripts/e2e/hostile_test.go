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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/deadletter"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/proctest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
	"github.com/sluicehq/sluice/pkg/testkit/s3test"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/scripts/loadgen/load"
)

// The hostile-input suite (issue 13): named cases of hostile or unlucky
// input against the five real binaries on the dev-stack backends, while a
// neighbour topic keeps flowing. For each case the sender gets the
// documented answer (or the record is in <topic>.dlq with the reason);
// throughout, the neighbour's records must reach S3 and search within
// neighbourBound, no service's peak RSS may pass its documented limit
// (the Helm chart's memory limit), and every acknowledged neighbour record
// is checked one by one in Kafka, S3 (exactly once) and search.

const (
	neighbour      = "neighbour"
	neighbourBound = 10 * time.Second
	hostileBucket  = "hostile"
	wildKey        = "wild-secret"      // API key allowed "*"
	neighbourKey   = "neighbour-secret" // API key allowed only the neighbour topic
)

// rssLimitMiB is each service's documented memory limit (the Helm chart's
// resources.limits.memory, which the READMEs' Limits sections cite).
var rssLimitMiB = map[string]float64{
	"ingest-gateway":  512,
	"schema-registry": 256,
	"s3-sink":         1024,
	"search-sink":     512,
	"kafka-exporter":  256,
}

// hostile is the running stack plus the neighbour's bookkeeping.
type hostile struct {
	kc        *kafkatest.Cluster
	s3        *s3test.Server
	es        *estest.Server
	reg       *registrytest.Registry
	slack     *receiver
	procs     []*proctest.Proc
	gwHTTP    string
	gwGRPC    string
	gwAdmin   string
	keysFile  string
	s3Metrics string
	s3Field   string // metrics of the second s3-sink (field partitioner)
	esMetrics string

	mu    sync.Mutex
	acked map[string]Loc       // neighbour record id -> where Kafka put it
	ackAt map[string]time.Time // when the gateway acknowledged it
}

const hostileRules = `
rules:
  - name: big-amount
    topic: alerty
    type: threshold
    field: amount
    op: ">"
    value: 100
    group_by: [payload]
    realert: 1h
`

func startHostile(t *testing.T) *hostile {
	t.Helper()
	h := &hostile{acked: map[string]Loc{}, ackAt: map[string]time.Time{}}
	h.kc = kafkatest.Start(t)
	h.kc.CreateTopic(neighbour, 3, nil)
	h.s3 = s3test.Start(t)
	h.s3.CreateBucket(hostileBucket)
	h.es = estest.Start(t)
	h.slack = &receiver{}
	hook := httptest.NewServer(h.slack)
	t.Cleanup(hook.Close)
	h.reg = registrytest.Start(t, h.kc.Brokers())
	h.reg.Register(t, neighbour+"-value", load.Schema)

	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(hostileRules), 0o600); err != nil {
		t.Fatal(err)
	}
	h.keysFile = filepath.Join(dir, "keys.json")
	h.writeKeys(t, map[string][]string{wildKey: {"*"}, neighbourKey: {neighbour}})

	common := map[string]string{
		"KAFKA_BROKERS":      strings.Join(h.kc.Brokers(), ","),
		"REGISTRY_URL":       h.reg.URL(),
		"REGISTRY_GRPC_ADDR": h.reg.GRPCAddr(),
		"LOG_LEVEL":          "info",
		"SHUTDOWN_TIMEOUT":   "20s",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	s3env := func(extra map[string]string) map[string]string {
		m := with(map[string]string{
			"S3_ENDPOINT":             h.s3.Endpoint(),
			"S3_BUCKET":               hostileBucket,
			"S3_REGION":               h.s3.Region(),
			"S3_ACCESS_KEY_ID":        h.s3.AccessKey(),
			"S3_SECRET_ACCESS_KEY":    h.s3.SecretKey(),
			"S3_FORCE_PATH_STYLE":     "true",
			"S3_SINK_FLUSH_RECORDS":   "200",
			"S3_SINK_ROTATE_MAX_OPEN": "1s",
			"S3_SINK_TOPIC_REFRESH":   "1s",
		})
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	// The gateway as the Helm chart runs it: admin routes on a port of
	// their own.
	hp, gp, ap := proctest.FreePort(t), proctest.FreePort(t), proctest.FreePort(t)
	h.gwHTTP, h.gwGRPC, h.gwAdmin = proctest.PortURL(hp, ""), "127.0.0.1:"+strconv.Itoa(gp), proctest.PortURL(ap, "")
	h.start(t, "ingest-gateway", proctest.PortURL(ap, "/readyz"), with(map[string]string{
		"GATEWAY_HTTP_ADDR":          "127.0.0.1:" + strconv.Itoa(hp),
		"GATEWAY_ADMIN_ADDR":         "127.0.0.1:" + strconv.Itoa(ap),
		"GATEWAY_GRPC_ADDR":          h.gwGRPC,
		"GATEWAY_TOPICS":             "*",
		"GATEWAY_DEAD_LETTER_TOPICS": "dl-*",
		"GATEWAY_AUTO_CREATE_TOPICS": "true",
		"GATEWAY_API_KEYS_FILE":      h.keysFile,
		"GATEWAY_API_KEYS_RELOAD":    "1s",
		"GATEWAY_INFLIGHT_BYTES":     strconv.Itoa(8 << 20),
		"GATEWAY_MAX_REQUEST_BYTES":  strconv.Itoa(4 << 20),
		"GATEWAY_METADATA_TTL":       "1s",
		"KAFKA_METADATA_TTL":         "1s",
	}))

	sp := proctest.FreePort(t)
	h.s3Metrics = proctest.PortURL(sp, "/metrics")
	h.start(t, "s3-sink", proctest.PortURL(sp, "/readyz"), s3env(map[string]string{
		"S3_SINK_ADMIN_ADDR":  "127.0.0.1:" + strconv.Itoa(sp),
		"S3_SINK_TOPIC_REGEX": "^[^K].*", // every data topic but the field-partitioned ones
	}))
	fp := proctest.FreePort(t)
	h.s3Field = proctest.PortURL(fp, "/metrics")
	h.start(t, "s3-sink", proctest.PortURL(fp, "/readyz"), s3env(map[string]string{
		"S3_SINK_ADMIN_ADDR":      "127.0.0.1:" + strconv.Itoa(fp),
		"S3_SINK_GROUP_ID":        "sluice-s3-sink-by-field",
		"S3_SINK_TOPIC_REGEX":     "^K.*",
		"S3_SINK_PREFIX":          "by-field",
		"S3_SINK_PARTITIONER":     "field",
		"S3_SINK_PARTITION_FIELD": "payload",
	}))

	ep := proctest.FreePort(t)
	h.esMetrics = proctest.PortURL(ep, "/metrics")
	h.start(t, "search-sink", proctest.PortURL(ep, "/readyz"), with(map[string]string{
		"SEARCH_SINK_ADMIN_ADDR":        "127.0.0.1:" + strconv.Itoa(ep),
		"SEARCH_SINK_TOPIC_REFRESH":     "1s",
		"SEARCH_SINK_FLUSH_INTERVAL":    "200ms",
		"SEARCH_SINK_RULES_FILE":        rulesFile,
		"SEARCH_SINK_SLACK_WEBHOOK_URL": hook.URL,
		"ES_URL":                        h.es.URL(),
	}))

	xp := proctest.FreePort(t)
	h.start(t, "kafka-exporter", proctest.PortURL(xp, "/readyz"), with(map[string]string{
		"EXPORTER_ADMIN_ADDR": "127.0.0.1:" + strconv.Itoa(xp),
		"EXPORTER_INTERVAL":   "1s",
	}))
	return h
}

func (h *hostile) start(t *testing.T, name, ready string, env map[string]string) {
	t.Helper()
	h.procs = append(h.procs, proctest.Start(t, proctest.Spec{Name: name, Bin: proctest.Build(t, "services/"+name), ReadyURL: ready, Env: env}))
}

// writeKeys replaces the gateway's API keys file (secret -> topics).
func (h *hostile) writeKeys(t *testing.T, keys map[string][]string) {
	t.Helper()
	type key struct {
		ID     string   `json:"id"`
		SHA256 string   `json:"sha256"`
		Topics []string `json:"topics"`
	}
	var f struct {
		Keys []key `json:"keys"`
	}
	for secret, topics := range keys {
		f.Keys = append(f.Keys, key{ID: secret, SHA256: sha256hex(secret), Topics: topics})
	}
	b, _ := json.Marshal(f)
	tmp := h.keysFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.keysFile); err != nil {
		t.Fatal(err)
	}
}

// answer is one HTTP response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.body) }

// do sends one HTTP request with the wild key unless hdr sets Authorization.
func (h *hostile) do(t *testing.T, method, url, contentType string, body io.Reader, hdr ...string) answer {
	t.Helper()
	a, err := h.send(method, url, contentType, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

// send is do without a testing.T, for goroutines.
func (h *hostile) send(method, url, contentType string, body io.Reader, hdr ...string) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+wildKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Authorization" && hdr[i+1] == "" {
			req.Header.Del("Authorization")
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if hdr := req.Header.Values("Authorization"); len(hdr) > 1 && hdr[0] == "Bearer "+wildKey {
		req.Header["Authorization"] = hdr[1:]
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}, nil
}

// produce posts a native JSON batch to the gateway with the wild key.
func (h *hostile) produce(t *testing.T, topic string, records []map[string]any, query string) (answer, []nativeResult) {
	t.Helper()
	return h.produceBody(t, topic, map[string]any{"records": records}, query)
}

// produceBody posts a native request body (records plus request-level
// fields such as schema_id) with the wild key.
func (h *hostile) produceBody(t *testing.T, topic string, req map[string]any, query string) (answer, []nativeResult) {
	t.Helper()
	body, _ := json.Marshal(req)
	a := h.do(t, http.MethodPost, h.gwHTTP+"/v1/topics/"+topic+"/records"+query, "application/json", bytes.NewReader(body))
	var out struct {
		Results []nativeResult `json:"results"`
	}
	_ = json.Unmarshal(a.body, &out)
	return a, out.Results
}

// loadRecord is a record of load.Schema.
func loadRecord(id string, amount float64, payload string) map[string]any {
	return map[string]any{"id": id, "seq": 1, "worker": 0, "amount": amount, "payload": payload, "sent_at": time.Now().UnixMilli()}
}

// registerSchema registers schema under subject with the registry's REST
// API and returns the answer (not failing on refusals).
func (h *hostile) registerSchema(t *testing.T, subject, schema string, refs ...map[string]any) answer {
	t.Helper()
	req := map[string]any{"schema": schema}
	if len(refs) > 0 {
		req["references"] = refs
	}
	b, _ := json.Marshal(req)
	return h.do(t, http.MethodPost, h.reg.URL()+"/subjects/"+subject+"/versions", "application/vnd.schemaregistry.v1+json", bytes.NewReader(b))
}

// schemaID registers schema under subject and returns its id.
func (h *hostile) schemaID(t *testing.T, subject, schema string) int {
	t.Helper()
	a := h.registerSchema(t, subject, schema)
	var out struct {
		ID int `json:"id"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &out) != nil || out.ID == 0 {
		t.Fatalf("registering %s: %s", subject, a)
	}
	return out.ID
}

// writeRaw writes records straight to Kafka (a producer that bypasses the
// gateway: another team's client, a connector, a replay tool).
func (h *hostile) writeRaw(t *testing.T, topic string, msgs ...kafkago.Message) {
	t.Helper()
	ctx := kafkatest.Context(t, 30*time.Second)
	w := &kafkago.Writer{Addr: kafkago.TCP(h.kc.Brokers()...), Topic: topic, RequiredAcks: kafkago.RequireAll,
		AllowAutoTopicCreation: true, Transport: h.kc.Clients().Transport}
	defer w.Close()
	for attempt := 0; ; attempt++ {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return
		}
		if attempt > 20 || ctx.Err() != nil {
			t.Fatalf("writing %d records to %s: %v", len(msgs), topic, err)
		}
		time.Sleep(100 * time.Millisecond) // a topic being auto-created
	}
}

// framed is a Confluent-framed value.
func framed(id int, payload []byte) []byte { return wire.Encode(uint32(id), payload) }

// deadLetters reads <topic>.dlq from the start until n records arrived or
// the deadline passed, and returns them.
func (h *hostile) deadLetters(t *testing.T, topic string, n int, within time.Duration) []kafkago.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var out []kafkago.Message
	dlq := deadletter.Topic(topic)
	for ctx.Err() == nil && len(out) < n {
		out = out[:0]
		for _, p := range h.partitions(ctx, dlq) {
			r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: h.kc.Brokers(), Topic: dlq, Partition: p, Dialer: h.kc.Clients().Dialer, MaxWait: 100 * time.Millisecond})
			end := h.endOffset(ctx, dlq, p)
			for off := int64(0); off < end; off++ {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					break
				}
				out = append(out, m)
			}
			_ = r.Close()
		}
		if len(out) < n {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if len(out) < n {
		t.Fatalf("%s holds %d dead letters after %s, want at least %d", dlq, len(out), within, n)
	}
	return out
}

func (h *hostile) partitions(ctx context.Context, topic string) []int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := h.kc.Clients().Dialer.DialContext(ctx, "tcp", h.kc.Brokers()[0])
	if err != nil {
		return nil
	}
	defer conn.Close()
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil
	}
	var out []int
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

// endOffset is a partition's end offset (0 when the topic does not exist).
func (h *hostile) endOffset(ctx context.Context, topic string, partition int) int64 {
	if !slices.Contains(h.partitions(ctx, topic), partition) {
		return 0 // DialLeader would wait for a leader that never comes
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := h.kc.Clients().Dialer.DialLeader(ctx, "tcp", h.kc.Brokers()[0], topic, partition)
	if err != nil {
		return 0
	}
	defer conn.Close()
	end, _ := conn.ReadLastOffset()
	return end
}

// header returns a record header's value.
func header(m kafkago.Message, key string) string {
	for _, hd := range m.Headers {
		if hd.Key == key {
			return string(hd.Value)
		}
	}
	return ""
}

// reasonsOf lists the sluice-stage: sluice-error of dead letters.
func reasonsOf(ms []kafkago.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, header(m, deadletter.HeaderStage)+": "+header(m, deadletter.HeaderError))
	}
	return out
}

// wantDeadLetter waits for a dead letter of topic from stage whose reason
// contains every fragment.
func (h *hostile) wantDeadLetter(t *testing.T, topic, stage string, fragments ...string) kafkago.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ms := h.deadLetters(t, topic, 1, time.Until(deadline)+time.Second)
		for _, m := range ms {
			if header(m, deadletter.HeaderStage) != stage {
				continue
			}
			reason := header(m, deadletter.HeaderError)
			ok := true
			for _, f := range fragments {
				ok = ok && strings.Contains(reason, f)
			}
			if ok {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter from %s in %s.dlq with %q; have %q", stage, topic, fragments, reasonsOf(ms))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// wantJSONError checks an HTTP answer's status and that its body carries
// error_code (0: any) and every message fragment.
func wantJSONError(t *testing.T, a answer, status, code int, fragments ...string) {
	t.Helper()
	var e struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}
	_ = json.Unmarshal(a.body, &e)
	if a.status != status || (code != 0 && e.ErrorCode != code) {
		t.Fatalf("answer %s, want status %d error_code %d", a, status, code)
	}
	for _, f := range fragments {
		if !strings.Contains(e.Message, f) {
			t.Fatalf("message %q lacks %q", e.Message, f)
		}
	}
}

// wantRecordError checks one native per-record result.
func wantRecordError(t *testing.T, r nativeResult, code int, field string, fragments ...string) {
	t.Helper()
	if r.ErrorCode != code || (field != "" && r.Field != field) || r.Offset != nil {
		t.Fatalf("record result %+v, want error_code %d on field %q and no offset", r, code, field)
	}
	for _, f := range fragments {
		if !strings.Contains(r.Message, f) {
			t.Fatalf("record message %q lacks %q", r.Message, f)
		}
	}
}

// neighbourFlow produces one neighbour record every interval until stop,
// noting where each acknowledged record went and when.
func (h *hostile) neighbourFlow(t *testing.T, stop <-chan struct{}, interval time.Duration) {
	seq := 0
	tick := time.NewTicker(interval)
	defer tick.Stop()
	client := &http.Client{Timeout: 20 * time.Second}
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		seq++
		id := "n-" + strconv.Itoa(seq)
		body, _ := json.Marshal(map[string]any{"records": []map[string]any{{"key": id, "value": loadRecord(id, 1, "neighbour")}}})
		req, _ := http.NewRequest(http.MethodPost, h.gwHTTP+"/v1/topics/"+neighbour+"/records", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+neighbourKey)
		resp, err := client.Do(req)
		if err != nil {
			continue // not acknowledged: nothing promised
		}
		var out struct {
			Results []nativeResult `json:"results"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Results) != 1 || out.Results[0].Offset == nil {
			continue
		}
		r := out.Results[0]
		h.mu.Lock()
		h.acked[id] = Loc{neighbour, int(*r.Partition), *r.Offset}
		h.ackAt[id] = time.Now()
		h.mu.Unlock()
	}
}

// neighbourWatch polls S3 and search for neighbour records and notes when
// each was first seen in each.
func (h *hostile) neighbourWatch(ctx context.Context, inS3, inSearch *seen) {
	cl := h.s3.Client()
	done := map[string]bool{}
	for ctx.Err() == nil {
		now := time.Now()
		pager := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(hostileBucket), Prefix: aws.String("topics/" + neighbour + "/")})
		for pager.HasMorePages() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				break
			}
			for _, o := range page.Contents {
				k := aws.ToString(o.Key)
				if done[k] {
					continue
				}
				obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(hostileBucket), Key: o.Key})
				if err != nil {
					continue
				}
				if rd, err := goavro.NewOCFReader(obj.Body); err == nil {
					for rd.Scan() {
						if rec, err := rd.Read(); err == nil {
							inS3.mark(rec.(map[string]any)["id"].(string), now)
						}
					}
					done[k] = true
				}
				_ = obj.Body.Close()
			}
		}
		for _, day := range []time.Time{now.UTC(), now.UTC().Add(-24 * time.Hour)} {
			for _, raw := range h.es.Docs(neighbour + "-" + day.Format("2006.01.02")) {
				var d struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(raw, &d) == nil {
					inSearch.mark(d.ID, now)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// hostileCase is one named case; class names the issue section it covers.
type hostileCase struct {
	name  string
	class string
	run   func(t *testing.T, h *hostile)
}

// TestHostileInput runs every case on one stack while the neighbour flows,
// then checks the neighbour record by record and every service's RSS.
func TestHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	h := startHostile(t)

	stop := make(chan struct{})
	var flow sync.WaitGroup
	flow.Add(1)
	go func() { defer flow.Done(); h.neighbourFlow(t, stop, 100*time.Millisecond) }()
	inS3, inSearch := &seen{at: map[string]time.Time{}}, &seen{at: map[string]time.Time{}}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var watch sync.WaitGroup
	watch.Add(1)
	go func() { defer watch.Done(); h.neighbourWatch(watchCtx, inS3, inSearch) }()

	// Let the neighbour settle before the first case.
	if !waitUntil(nil, 60*time.Second, func() bool { return inS3.len() > 0 && inSearch.len() > 0 }) {
		t.Fatal("the neighbour topic never reached S3 and search")
	}
	classes := map[string]int{}
	for _, c := range hostileCases {
		classes[c.class]++
		t.Run(c.name, func(t *testing.T) { c.run(t, h) })
	}
	t.Logf("%d hostile cases in %d classes: %v", len(hostileCases), len(classes), classes)

	// Let the last neighbour records land, then stop and check.
	time.Sleep(time.Second)
	close(stop)
	flow.Wait()
	h.mu.Lock()
	acked := maps(h.acked)
	ackAt := mapsT(h.ackAt)
	h.mu.Unlock()
	waitUntil(nil, neighbourBound+5*time.Second, func() bool {
		for id := range acked {
			if !inS3.has(id) || !inSearch.has(id) {
				return false
			}
		}
		return true
	})
	stopWatch()
	watch.Wait()

	var p Problems
	worst := map[string]time.Duration{}
	for id, at := range ackAt {
		for sink, s := range map[string]*seen{"s3": inS3, "search": inSearch} {
			s.mu.Lock()
			got, ok := s.at[id]
			s.mu.Unlock()
			switch {
			case !ok:
				p.Addf("neighbour-missing-in-"+sink, "%s acknowledged at %s, never seen in %s", id, at.Format(time.TimeOnly), sink)
			case got.Sub(at) > neighbourBound:
				p.Addf("neighbour-late-in-"+sink, "%s took %s to reach %s", id, got.Sub(at).Round(time.Millisecond), sink)
			}
			worst[sink] = max(worst[sink], got.Sub(at))
		}
	}
	ctx := kafkatest.Context(t, 2*time.Minute)
	kafka := h.readTopic(t, ctx, neighbour)
	CheckAcked(&p, acked, kafka)
	CheckExactlyOnce(&p, "s3", kafka, neighbour, h.s3IDs(t, ctx, neighbour))
	docs := map[string]string{}
	for _, day := range []time.Time{time.Now().UTC(), time.Now().UTC().Add(-24 * time.Hour)} {
		for docID, raw := range h.es.Docs(neighbour + "-" + day.Format("2006.01.02")) {
			var d struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(raw, &d)
			docs[docID] = d.ID
		}
	}
	CheckDocIDs(&p, kafka, neighbour, docs)
	type proc interface {
		PeakRSSMiB() float64
		Running() bool
	}
	all := map[string]proc{"schema-registry": h.reg}
	for i, pr := range h.procs {
		all[pr.Name()+"#"+strconv.Itoa(i)] = pr
	}
	for name, pr := range all {
		if !pr.Running() {
			p.Addf("service-exited", "%s is not running at the end of the suite (a crash loses its peak RSS too)", name)
		}
		rss := pr.PeakRSSMiB()
		limit := rssLimitMiB[strings.Split(name, "#")[0]]
		t.Logf("%s peak RSS %.0f MiB (limit %.0f)", name, rss, limit)
		if rss > limit {
			p.Addf("rss-over-limit", "%s peaked at %.0f MiB, documented limit %.0f MiB", name, rss, limit)
		}
	}

	t.Logf("neighbour: %d records acknowledged during the suite; slowest to S3 %s, to search %s (bound %s)",
		len(acked), worst["s3"].Round(time.Millisecond), worst["search"].Round(time.Millisecond), neighbourBound)
	if len(acked) < 100 {
		p.Addf("neighbour-starved", "only %d neighbour records were acknowledged", len(acked))
	}
	if !p.Empty() {
		t.Fatalf("invariants violated:\n%s", p.String())
	}
}

func maps(m map[string]Loc) map[string]Loc {
	out := make(map[string]Loc, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mapsT(m map[string]time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// readTopic reads one load.Schema topic to its end: location -> record id.
func (h *hostile) readTopic(t *testing.T, ctx context.Context, topic string) map[Loc]string {
	t.Helper()
	out := map[Loc]string{}
	for _, p := range h.partitions(ctx, topic) {
		end := h.endOffset(ctx, topic, p)
		if end == 0 {
			continue
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: h.kc.Brokers(), Topic: topic, Partition: p, Dialer: h.kc.Clients().Dialer, MaxWait: 100 * time.Millisecond, MaxBytes: 8 << 20})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("reading %s/%d: %v", topic, p, err)
			}
			id, payload, err := wire.Decode(m.Value)
			if err != nil {
				t.Fatalf("%s/%d@%d not framed: %v", topic, p, m.Offset, err)
			}
			codec, err := goavro.NewCodec(load.Schema)
			if err != nil || id == 0 {
				t.Fatal(err)
			}
			native, _, err := codec.NativeFromBinary(payload)
			if err != nil {
				t.Fatalf("%s/%d@%d: %v", topic, p, m.Offset, err)
			}
			out[Loc{topic, p, m.Offset}] = native.(map[string]any)["id"].(string)
			if m.Offset >= end-1 {
				break
			}
		}
		_ = r.Close()
	}
	return out
}

// s3IDs decodes every object of a topic under the default prefix.
func (h *hostile) s3IDs(t *testing.T, ctx context.Context, topic string) []string {
	t.Helper()
	cl := h.s3.Client()
	var ids []string
	pager := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(hostileBucket), Prefix: aws.String("topics/" + topic + "/")})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(hostileBucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			rd, err := goavro.NewOCFReader(obj.Body)
			if err != nil {
				t.Fatalf("%s: %v", aws.ToString(o.Key), err)
			}
			for rd.Scan() {
				rec, err := rd.Read()
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, rec.(map[string]any)["id"].(string))
			}
			_ = obj.Body.Close()
		}
	}
	return ids
}

// metric sums a metric family's samples whose labels contain every
// name=value pair given.
func metric(url, name string, labels ...string) float64 {
	mfs, err := scrape(url)
	if err != nil {
		return -1
	}
	mf, ok := mfs[name]
	if !ok {
		return 0
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && label(m, labels[i]) == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}
