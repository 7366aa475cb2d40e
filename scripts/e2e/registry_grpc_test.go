package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	dto "github.com/prometheus/client_model/go"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/proctest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
	"github.com/sluicehq/sluice/pkg/testkit/s3test"
)

// Registry request metrics (services/schema-registry: internal/grpcapi and
// internal/api); the _count series of each histogram counts requests.
const (
	registryGRPCRequests = "sluice_schema_registry_grpc_request_duration_seconds"
	registryHTTPRequests = "sluice_schema_registry_http_request_duration_seconds"
)

// registryCalls sums the request counts of a registry latency histogram
// over the series keep accepts; -1 when the registry does not answer.
func registryCalls(base, family string, keep func(m *dto.Metric) bool) float64 {
	fams, err := scrape(base + "/metrics")
	if err != nil {
		return -1
	}
	var sum float64
	for _, m := range fams[family].GetMetric() {
		if keep(m) {
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// grpcLookups counts the registry's successful gRPC requests of method
// (every method when empty).
func grpcLookups(base, method string) float64 {
	return registryCalls(base, registryGRPCRequests, func(m *dto.Metric) bool {
		return label(m, "code") == "OK" && (method == "" || label(m, "method") == "/sluice.registry.v1.RegistryService/"+method)
	})
}

// restLookups counts the registry's REST schema lookups (GET on
// /subjects/... or /schemas/ids/...): what a client falling back from gRPC
// sends. Registration (POST) and the readiness ping (/schemas/types) are
// not lookups.
func restLookups(base string) float64 {
	return registryCalls(base, registryHTTPRequests, func(m *dto.Metric) bool {
		r := label(m, "route")
		return label(m, "method") == "GET" && (strings.HasPrefix(r, "/subjects/") || strings.HasPrefix(r, "/schemas/ids/"))
	})
}

// topicRetries sums, on a sink's /metrics, every counter or gauge of a
// family ending in _retries_total, _parks_total or _topics_parked with
// topic=topic: the sink's own evidence that it is waiting on the topic
// rather than dropping or dead-lettering it (the names differ per sink and
// runtime; the suffixes are the convention).
func topicRetries(url, topic string) float64 {
	fams, err := scrape(url)
	if err != nil {
		return 0
	}
	var sum float64
	for name, f := range fams {
		if !strings.HasSuffix(name, "_retries_total") && !strings.HasSuffix(name, "_parks_total") && !strings.HasSuffix(name, "_topics_parked") {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "topic") == topic {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// TestSinksRegistryOverGRPCOutage runs both sink binaries against the
// real schema-registry with REGISTRY_GRPC_ADDR set:
//   - schemas are looked up over gRPC (the registry's gRPC request count
//     grows, its REST lookup routes stay unused);
//   - with the registry stopped, records with an id the sinks have cached
//     keep reaching S3 and the index, records with an id they have not
//     seen wait (retried, the topic parked) and are neither written nor
//     dead-lettered, and neither sink exits;
//   - after the registry is started again on the same _schemas topic the
//     waiting records arrive: every record exactly once in S3 and in the
//     index, nothing in the dead-letter topics.
func TestSinksRegistryOverGRPCOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs both sinks and the registry as processes")
	}
	const per = 5 // records per batch; S3 rotates a file after each batch
	kc := kafkatest.Start(t)
	for _, topic := range []string{"cached", "fresh", "cached.dlq", "fresh.dlq"} {
		kc.CreateTopic(topic, 1, nil)
	}
	st := &stack{kc: kc, s3: s3test.Start(t), es: estest.Start(t)}
	st.s3.CreateBucket(bucket)
	st.reg = registrytest.Start(t, kc.Brokers())
	schemaOf := func(name string) string {
		return `{"type":"record","name":"` + name + `","namespace":"e2e.grpc","fields":[{"name":"id","type":"string"},{"name":"n","type":"long"}]}`
	}
	// fresh-value's second version is registered just before the outage:
	// an id neither sink can have fetched (the search sink reads each
	// topic's latest version when it installs the topic's template).
	freshV2 := strings.Replace(schemaOf("Fresh"), `}]}`, `},{"name":"note","type":"string","default":""}]}`, 1)
	cachedID := st.reg.Register(t, "cached-value", schemaOf("Cached"))
	st.reg.Register(t, "fresh-value", schemaOf("Fresh"))

	common := map[string]string{
		"KAFKA_BROKERS":      strings.Join(kc.Brokers(), ","),
		"REGISTRY_URL":       st.reg.URL(),
		"REGISTRY_GRPC_ADDR": st.reg.GRPCAddr(),
		"REGISTRY_TIMEOUT":   "1s",
		"LOG_LEVEL":          "info",
		"SHUTDOWN_TIMEOUT":   "20s",
	}
	env := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for _, src := range []map[string]string{common, extra} {
			for k, v := range src {
				m[k] = v
			}
		}
		return m
	}
	sp, ep := proctest.FreePort(t), proctest.FreePort(t)
	s3Metrics, searchMetrics := proctest.PortURL(sp, "/metrics"), proctest.PortURL(ep, "/metrics")
	s3sink := proctest.Start(t, proctest.Spec{Name: "s3-sink", Bin: proctest.Build(t, "services/s3-sink"),
		ReadyURL: proctest.PortURL(sp, "/readyz"), Env: env(map[string]string{
			"S3_SINK_ADMIN_ADDR":      "127.0.0.1:" + strconv.Itoa(sp),
			"S3_SINK_TOPICS":          "cached,fresh",
			"S3_SINK_FLUSH_RECORDS":   strconv.Itoa(per),
			"S3_SINK_RETRY_MAX_DELAY": "500ms",
			"S3_SINK_PARK_RETRY_MIN":  "1s",
			"S3_SINK_PARK_RETRY_MAX":  "2s",
			"S3_ENDPOINT":             st.s3.Endpoint(),
			"S3_BUCKET":               bucket,
			"S3_REGION":               st.s3.Region(),
			"S3_ACCESS_KEY_ID":        st.s3.AccessKey(),
			"S3_SECRET_ACCESS_KEY":    st.s3.SecretKey(),
			"S3_FORCE_PATH_STYLE":     "true",
			"S3_SINK_GROUP_ID":        "grpc-s3",
			"S3_SINK_COMMIT_INTERVAL": "200ms",
		})})
	hook := httptest.NewServer(&receiver{})
	t.Cleanup(hook.Close)
	search := proctest.Start(t, proctest.Spec{Name: "search-sink", Bin: proctest.Build(t, "services/search-sink"),
		ReadyURL: proctest.PortURL(ep, "/readyz"), Env: env(map[string]string{
			"SEARCH_SINK_ADMIN_ADDR":      "127.0.0.1:" + strconv.Itoa(ep),
			"SEARCH_SINK_TOPICS":          "cached,fresh",
			"SEARCH_SINK_GROUP_ID":        "grpc-search",
			"SEARCH_SINK_FLUSH_INTERVAL":  "200ms",
			"SEARCH_SINK_RETRY_MAX":       "500ms",
			"SEARCH_SINK_PARK_RETRY_BASE": "1s",
			"SEARCH_SINK_PARK_RETRY_MAX":  "2s",
			"ES_URL":                      st.es.URL(),
		})})

	ctx := kafkatest.Context(t, 5*time.Minute)
	want := map[string][]string{}
	produce := func(topic, schema string, id int, from int) {
		t.Helper()
		codec, err := goavro.NewCodec(schema)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []kafkago.Message
		for i := from; i < from+per; i++ {
			rid := fmt.Sprintf("%s-%d", topic, i)
			bin, err := codec.BinaryFromNative(nil, map[string]any{"id": rid, "n": int64(i)})
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, kafkago.Message{Value: framed(id, bin), Time: time.Now()})
			want[topic] = append(want[topic], rid)
		}
		w := &kafkago.Writer{Addr: kafkago.TCP(kc.Brokers()...), Topic: topic, RequiredAcks: kafkago.RequireAll, Transport: kc.Clients().Transport}
		defer w.Close()
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("writing %s: %v", topic, err)
		}
	}
	delivered := func(topic string) (inS3, inIndex int) {
		return len(s3Records(t, ctx, st)[topic]), len(indexedIDs(t, st, topic))
	}
	waitDelivered := func(topic string, n int, within time.Duration) {
		t.Helper()
		var s, e int
		if !waitUntil(nil, within, func() bool { s, e = delivered(topic); return s >= n && e >= n }) {
			t.Fatalf("%s: %d records in S3 and %d in the index after %s, want %d each", topic, s, e, within, n)
		}
	}

	// 1. Registry up: both sinks need the schema to deliver anything, and
	// the registry answered them on gRPC only.
	produce("cached", schemaOf("Cached"), cachedID, 0)
	waitDelivered("cached", per, time.Minute)
	if n := grpcLookups(st.reg.URL(), ""); n < 2 {
		t.Fatalf("registry answered %v gRPC requests, want one per sink at least", n)
	}
	if n := restLookups(st.reg.URL()); n != 0 {
		t.Fatalf("sinks fell back to REST with gRPC up: %v REST lookups", n)
	}

	// 2. Registry gone: the cached id flows, the unknown one waits.
	freshID := st.reg.Register(t, "fresh-value", freshV2)
	if freshID == cachedID {
		t.Fatalf("both subjects got schema id %d", freshID)
	}
	st.reg.Stop()
	produce("fresh", freshV2, freshID, 0)
	produce("cached", schemaOf("Cached"), cachedID, per)
	waitDelivered("cached", 2*per, time.Minute)
	for name, url := range map[string]string{"s3-sink": s3Metrics, "search-sink": searchMetrics} {
		if !waitUntil(nil, time.Minute, func() bool { return topicRetries(url, "fresh") > 0 }) {
			t.Fatalf("%s shows no retry or park of topic fresh while the registry is down", name)
		}
	}
	if s, e := delivered("fresh"); s != 0 || e != 0 {
		t.Fatalf("fresh records delivered while their schema could not be fetched: %d in S3, %d in the index", s, e)
	}
	for _, p := range []*proctest.Proc{s3sink, search} {
		if !p.Running() {
			t.Fatalf("%s exited while the registry was down", p.Name())
		}
	}

	// 3. Registry back on the same _schemas topic: the waiting records arrive.
	st.reg.Restart(t)
	waitDelivered("fresh", per, 2*time.Minute)

	var p Problems
	for topic, ids := range want {
		sort.Strings(ids)
		s3ids := s3Records(t, ctx, st)[topic]
		sort.Strings(s3ids)
		if strings.Join(s3ids, ",") != strings.Join(ids, ",") {
			p.Addf("s3", "%s: S3 holds %v, want each of %v once", topic, s3ids, ids)
		}
		var docs []string
		for _, rid := range indexedIDs(t, st, topic) {
			docs = append(docs, rid)
		}
		sort.Strings(docs)
		if strings.Join(docs, ",") != strings.Join(ids, ",") {
			p.Addf("index", "%s: index holds %v, want %v", topic, docs, ids)
		}
		if n := dlqCount(t, ctx, kc, topic+".dlq"); n != 0 {
			p.Addf("dlq", "%s.dlq holds %d records, want none", topic, n)
		}
	}
	if !p.Empty() {
		t.Fatalf("after the outage:\n%s", p.String())
	}
	// Right after the restart the clients may still be reconnecting gRPC
	// and use the REST fallback: both count as recovery.
	t.Logf("restarted registry: %v gRPC requests, %v REST lookups", grpcLookups(st.reg.URL(), ""), restLookups(st.reg.URL()))
}

// indexedIDs returns document id -> record id of topic's daily indices
// (today's and yesterday's, UTC).
func indexedIDs(t *testing.T, st *stack, topic string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range []time.Time{time.Now().UTC(), time.Now().UTC().Add(-24 * time.Hour)} {
		for docID, raw := range st.es.Docs(topic + "-" + d.Format("2006.01.02")) {
			var doc struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("document %s: %v", docID, err)
			}
			out[docID] = doc.ID
		}
	}
	return out
}

// dlqCount is the end offset of a single-partition dead-letter topic.
func dlqCount(t *testing.T, ctx context.Context, kc *kafkatest.Cluster, topic string) int64 {
	t.Helper()
	conn, err := kc.Clients().Dialer.DialLeader(ctx, "tcp", kc.Brokers()[0], topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	end, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatal(err)
	}
	return end
}
