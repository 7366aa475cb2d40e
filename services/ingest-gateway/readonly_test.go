package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
)

// TestInlineSchemaWithReadOnlyRegistryCredential: the chart gives the
// gateway a read-only registry user, so a REST Proxy v2 request with an
// inline value_schema that is already registered is looked up (allowed to
// ro) instead of registered (rw only); a new inline schema is refused with
// the registry's 403, and nothing reaches Kafka.
func TestInlineSchemaWithReadOnlyRegistryCredential(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t)
	reg := registrytest.Start(t, k.Brokers(),
		registrytest.WithEnv("SCHEMA_REGISTRY_AUTH_USERS", "reader:rpw:ro,admin:apw:rw"),
		registrytest.WithBasicAuth("admin", "apw"))
	k.CreateTopic("ro", 1, nil)
	reg.Register(t, "ro-value", orderSchema)
	e := startEnv(t, k, reg, "-registry-username", "reader", "-registry-password", "rpw")
	schemaJSON, _ := json.Marshal(orderSchema)
	avroJSON := strings.Replace(orderJSON(1), `"amount":"1.25"`, `"amount":1.25`, 1)
	avroJSON = strings.Replace(avroJSON, `"email":"c1@example.com"`, `"email":{"string":"c1@example.com"}`, 1)
	avroJSON = strings.Replace(avroJSON, `"ref":"6f1c8a7e-3b2d-4c5e-9f00-112233445501"`, `"ref":{"string":"6f1c8a7e-3b2d-4c5e-9f00-112233445501"}`, 1)
	avroJSON = strings.Replace(avroJSON, `"note":1`, `"note":{"long":1}`, 1)
	avroJSON = strings.Replace(avroJSON, `"created":"2024-05-01T12:00:00.001Z"`, `"created":1714564800001`, 1)
	const ct = "application/vnd.kafka.avro.v2+json"

	res := post(t, e.httpURL+"/topics/ro", ct, []byte(`{"value_schema":`+string(schemaJSON)+`,"records":[{"value":`+avroJSON+`}]}`))
	if res.status != 200 {
		t.Fatalf("registered inline schema with a read-only credential: %d %s", res.status, res.body)
	}
	if got := readTopic(t, k.Brokers(), "ro", 1); len(got) != 1 {
		t.Fatalf("topic holds %d records, want 1", len(got))
	}

	newSchema, _ := json.Marshal(`{"type":"record","name":"Fresh","fields":[{"name":"a","type":"int"}]}`)
	res = post(t, e.httpURL+"/topics/ro", ct, []byte(`{"value_schema":`+string(newSchema)+`,"records":[{"value":{"a":1}}]}`))
	if res.status < 400 || !strings.Contains(string(res.body), "40301") && !strings.Contains(strings.ToLower(string(res.body)), "forbidden") && !strings.Contains(strings.ToLower(string(res.body)), "permission") {
		t.Fatalf("new inline schema with a read-only credential: %d %s, want a refusal carrying the registry's 403", res.status, res.body)
	}
}
