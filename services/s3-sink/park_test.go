package main

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// parkEnv is the configuration of the parking tests: quick retries, a
// short park cadence, count rotation only.
func parkEnv(topics, prefix string, extra map[string]string) map[string]string {
	env := map[string]string{
		"S3_SINK_TOPICS": topics, "S3_SINK_GROUP_ID": prefix, "S3_SINK_PREFIX": prefix,
		"S3_SINK_FLUSH_RECORDS": "50", "S3_SINK_RETRY_ATTEMPTS": "3", "S3_SINK_RETRY_MAX_DELAY": "200ms",
		"S3_SINK_PARK_RETRY_MIN": "300ms", "S3_SINK_PARK_RETRY_MAX": "1s",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// TestParkedTopicNeighbourFlows: the bucket refuses one topic's prefix
// (403 AccessDenied). That topic parks (log line, metric, no commit) and
// is retried with backoff; its neighbour's records reach S3 and are
// committed within 10 s. When the operator fixes the policy, the parked
// topic's records land exactly once and it unparks.
func TestParkedTopicNeighbourFlows(t *testing.T) {
	h := newHarness(t)
	proxy := h.faultProxy(t)
	for _, topic := range []string{"blocked", "flowing"} {
		h.kc.CreateTopic(topic, 2, nil)
	}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	blocked, flowing := genEvents(200, 2, base), genEvents(200, 2, base)
	h.produce(t, "blocked", blocked)
	h.produce(t, "flowing", flowing)
	proxy.fail("pk/blocked/", 403, "AccessDenied")

	start := time.Now()
	p := h.startInProc(t, proxy.srv.URL, parkEnv("blocked,flowing", "pk", nil))
	h.waitRecords(t, "pk/flowing/", 200, 10*time.Second)
	eventually(t, 10*time.Second-time.Since(start), "flowing's offsets committed", func() bool {
		return slices.Equal(h.committed(t, "pk", "flowing", 2), []int64{100, 100})
	})
	t.Logf("neighbour in S3 and committed %s after start", time.Since(start).Round(time.Millisecond))
	eventually(t, 10*time.Second, "blocked parked", func() bool {
		v, _ := p.metric("sluice_sink_topics_parked", map[string]string{"topic": "blocked"})
		n, _ := p.metric("sluice_sink_topic_parks_total", map[string]string{"topic": "blocked", "reason": "s3_refused"})
		return v == 1 && n >= 1
	})
	if lines := p.logs.find("topic parked: its records wait here while other topics flow; fix the cause, it is retried",
		map[string]string{"topic": "blocked", "reason": "s3_refused"}); len(lines) == 0 {
		t.Fatal("no error log line naming the parked topic and its reason")
	}
	if v, ok := p.metric("sluice_sink_topics_parked", map[string]string{"topic": "flowing"}); ok && v != 0 {
		t.Fatalf("flowing parked: %v", v)
	}
	// It keeps being retried, and nothing of it is committed or stored.
	before := proxy.count("pk/blocked/")
	eventually(t, 10*time.Second, "parked topic retried", func() bool { return proxy.count("pk/blocked/") > before+2 })
	// No record of it is committed: at most the start position (the
	// runtime commits the first fetched offset of a group without
	// commits, 0 here, which holds nothing).
	if got := h.committed(t, "pk", "blocked", 2); got[0] > 0 || got[1] > 0 {
		t.Fatalf("blocked committed %v while parked", got)
	}
	if n := len(h.keys(t, "pk/blocked/")); n != 0 {
		t.Fatalf("%d objects of the refused prefix", n)
	}

	proxy.clear() // the operator fixes the bucket policy
	h.waitRecords(t, "pk/blocked/", 200, 30*time.Second)
	eventually(t, 30*time.Second, "blocked committed and unparked", func() bool {
		v, _ := p.metric("sluice_sink_topics_parked", map[string]string{"topic": "blocked"})
		return v == 0 && slices.Equal(h.committed(t, "pk", "blocked", 2), []int64{100, 100})
	})
	if len(p.logs.find("topic unparked: records flow again", map[string]string{"topic": "blocked"})) == 0 {
		t.Fatal("no log line for the unparking")
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	for topic, evs := range map[string][]event{"blocked": blocked, "flowing": flowing} {
		objs, err := h.objects(t.Context(), "pk/"+topic+"/")
		if err != nil {
			t.Fatal(err)
		}
		checkExactlyOnce(t, topic, "pk", objs, evs, func(e event) string { return fmt.Sprintf("partition=%d", e.Partition) })
	}
}

// TestTransientS3FailuresPark: S3 answers 503 SlowDown for one topic's
// keys. The sink retries a bounded number of times with backoff, then
// parks the topic (reason s3_unavailable) and retries it at the slow park
// cadence instead of replaying the same offset in a tight loop; the
// neighbour flows; when S3 recovers, every record lands exactly once.
func TestTransientS3FailuresPark(t *testing.T) {
	h := newHarness(t)
	proxy := h.faultProxy(t)
	for _, topic := range []string{"throttled", "calm"} {
		h.kc.CreateTopic(topic, 1, nil)
	}
	base := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	throttled, calm := genEvents(100, 1, base), genEvents(100, 1, base)
	h.produce(t, "throttled", throttled)
	proxy.fail("ts/throttled/", 503, "SlowDown")

	p := h.startInProc(t, proxy.srv.URL, parkEnv("throttled,calm", "ts", map[string]string{"S3_SINK_PARK_RETRY_MIN": "2s", "S3_SINK_PARK_RETRY_MAX": "2s"}))
	eventually(t, 60*time.Second, "throttled parked after its retries", func() bool {
		n, _ := p.metric("sluice_sink_topic_parks_total", map[string]string{"topic": "throttled", "reason": "s3_unavailable"})
		return n >= 1
	})
	if r, _ := p.metric("sluice_sink_retries_total", map[string]string{"topic": "throttled", "reason": "s3_unavailable"}); r < 2 {
		t.Fatalf("%v retries before parking, want S3_SINK_RETRY_ATTEMPTS-1 = 2 at least", r)
	}
	// While parked the topic is retried every 1-2 s (park cadence), each
	// retry one upload (the SDK itself tries a 503 three times), not
	// replayed in a tight loop; meanwhile a neighbour flows, completing
	// objects (which used to reset the shared backoff).
	h.produce(t, "calm", calm)
	h.waitRecords(t, "ts/calm/", 100, 20*time.Second)
	before := proxy.count("ts/throttled/")
	window := time.Now()
	eventually(t, 20*time.Second, "two park retries", func() bool { return proxy.count("ts/throttled/") >= before+6 })
	time.Sleep(4 * time.Second) // a measuring window, not synchronisation
	n, secs := proxy.count("ts/throttled/")-before, time.Since(window).Seconds()
	if perSec := float64(n) / secs; perSec > 6 {
		t.Fatalf("%d requests in %.1fs (%.1f/s) to a parked topic: a tight loop", n, secs, perSec)
	}
	t.Logf("parked topic: %d requests in %.1fs", n, secs)

	proxy.clear()
	h.waitRecords(t, "ts/throttled/", 100, 30*time.Second)
	eventually(t, 30*time.Second, "throttled unparked", func() bool {
		v, _ := p.metric("sluice_sink_topics_parked", map[string]string{"topic": "throttled"})
		return v == 0
	})
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	objs, err := h.objects(t.Context(), "ts/throttled/")
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, "throttled", "ts", objs, throttled, func(e event) string { return fmt.Sprintf("partition=%d", e.Partition) })
}
