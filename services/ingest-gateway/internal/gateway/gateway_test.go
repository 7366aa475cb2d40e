package gateway

import (
	"strings"
	"testing"
	"time"
)

func TestTopicPolicy(t *testing.T) {
	t.Parallel()
	p := TopicPolicy{Allow: []string{"orders", "logs.*", "_audit"}, DeadLetter: []string{"logs.*"}}
	for topic, want := range map[string]bool{
		"orders": true, "logs.app": true, "logs": false, "_audit": true, "_logs.x": false,
		"bad topic": false, "": false, "orders.dlq": false,
		// a glob never reaches a dead-letter topic
		"logs.app.dlq": false, "logs.dlq": false,
	} {
		if got := p.Allowed(topic); got != want {
			t.Errorf("Allowed(%q) = %v", topic, got)
		}
	}
	dev := TopicPolicy{Allow: []string{"*"}}
	if !dev.Allowed("anything-1") || dev.Allowed("_schemas") || dev.Allowed("__consumer_offsets") {
		t.Error("'*' must allow any non-internal topic and no internal one")
	}
	for _, topic := range []string{"orders.dlq", "_sluice-alerts", strings.Repeat("a", 246), ".", ".."} {
		if dev.Allowed(topic) {
			t.Errorf("'*' allows %q", topic)
		}
	}
	alerts := TopicPolicy{Allow: []string{"*alerts*", "orders.*"}}
	for _, topic := range []string{"_sluice-alerts", "fraud-alerts.dlq", "orders.dlq", "orders.eu.dlq"} {
		if alerts.Allowed(topic) {
			t.Errorf("glob allows %q", topic)
		}
	}
	if !alerts.Allowed("fraud-alerts") || !alerts.Allowed("orders.eu") {
		t.Error("globs must still match data topics")
	}
	explicit := TopicPolicy{Allow: []string{"orders.dlq", "_sluice-alerts"}}
	if !explicit.Allowed("orders.dlq") || !explicit.Allowed("_sluice-alerts") {
		t.Error("an explicit name grants a dead-letter or internal topic")
	}
	if !p.DeadLetters("logs.app") || p.DeadLetters("orders") {
		t.Error("dead-letter patterns")
	}
}

func TestReserve(t *testing.T) {
	t.Parallel()
	e := &Engine{cfg: Config{InflightBytes: 100, ProduceTimeout: time.Second}}
	h1, err := e.Reserve(60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reserve(50); err == nil || err.Kind != KindBusy || !err.Kind.Retryable() || err.Kind.Status() != 429 {
		t.Fatalf("over budget: %v", err)
	}
	h1.Release()
	h1.Release() // idempotent
	if e.Inflight() != 0 {
		t.Fatalf("inflight %d after release", e.Inflight())
	}
	// A single request larger than the budget is admitted when nothing else is in flight.
	h2, err := e.Reserve(150)
	if err != nil {
		t.Fatal(err)
	}
	h2.Release()
}

func TestKindMapping(t *testing.T) {
	t.Parallel()
	for k, want := range map[Kind][2]int{
		KindInvalidRecord: {422, 42201}, KindRecordTooLarge: {422, 42202}, KindBadRequest: {400, 40001},
		KindRequestTooLarge: {413, 41301}, KindUnknownTopic: {404, 40401}, KindUnknownPartition: {404, 40402},
		KindNoSchema: {404, 40403}, KindUnauthorized: {401, 40101}, KindForbidden: {403, 40301},
		KindBusy: {429, 42901}, KindRateLimited: {429, 42902}, KindUnavailable: {503, 50301}, KindRegistryUnavailable: {503, 50302}, KindShuttingDown: {503, 50303},
	} {
		if k.Status() != want[0] || k.Code() != want[1] {
			t.Errorf("kind %d: %d/%d, want %v", k, k.Status(), k.Code(), want)
		}
	}
}
