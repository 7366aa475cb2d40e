package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type matrixCase struct {
	name        string
	path        string
	contentType string
	body        []byte
	auth        string
	status      int
	code        int
	message     string // substring of the error message
	field       string // for record errors
}

// TestErrorMatrix checks status, code and message for each kind of bad
// input, and that every record that got a success is in Kafka while no
// rejected record is.
func TestErrorMatrix(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{"writer": "s3cret-writer-key", "other": "s3cret-other-key"}
	kf := keysFile(t, map[string][]string{"writer": {"orders*", "noschema", "missing-topic"}, "other": {"payments"}}, secrets)
	e := startEnv(t, nil, nil,
		"-gateway-api-keys-file", kf,
		"-gateway-topics", "orders*,noschema,payments,missing-topic",
		"-gateway-max-request-bytes", "65536",
		"-gateway-inflight-bytes", "1048576",
		"-gateway-max-record-bytes", "2000",
		"-gateway-max-records", "50",
		"-gateway-produce-timeout", "2s",
	)
	e.kafka.CreateTopic("orders", 3, nil)
	e.kafka.CreateTopic("noschema", 1, nil)
	e.kafka.CreateTopic("payments", 1, nil)
	e.reg.Register(t, "orders-value", orderSchema)

	bearer := "Bearer " + secrets["writer"]
	basicOther := "Basic " + base64.StdEncoding.EncodeToString([]byte("other:"+secrets["other"]))
	n := 1000
	// one returns a one-record request whose value is orderJSON with edits
	// (old, new pairs), tagged with a fresh id.
	one := func(edits ...string) []byte {
		n++
		v := orderJSON(n)
		for i := 0; i+1 < len(edits); i += 2 {
			v = strings.Replace(v, edits[i], edits[i+1], 1)
		}
		return []byte(`{"records":[{"value":` + v + `}]}`)
	}
	native := "/v1/topics/orders/records"
	cases := []matrixCase{
		{name: "malformed JSON", path: native, body: []byte(`{"records":[{"value":`), status: 400, code: 40001, message: "malformed JSON request"},
		{name: "unknown request field", path: native, body: []byte(`{"records":[{"valeu":{}}]}`), status: 400, code: 40001, message: `unknown field "valeu"`},
		{name: "wrong type", path: native, body: one(`"qty":`, `"qty":"abc","x":`), status: 422, code: 42201, field: "value.items[0].qty", message: `value.items[0].qty: expected int, got string "abc"`},
		{name: "missing required field", path: native, body: one(`"id":`, `"idx":`), status: 422, code: 42201, field: "value.id", message: "value.id: missing required field"},
		{name: "unknown field", path: native, body: one(`"status":`, `"colour":"red","status":`), status: 422, code: 42201, field: "value.colour", message: `value.colour: unknown field (record com.acme.Order has no field "colour")`},
		{name: "bad union", path: native, body: one(`"note":`, `"note":true,"x":`), status: 422, code: 42201, field: "value.note", message: "value.note: no union branch matches: expected one of [null, string, long], got boolean true"},
		{name: "bad logical type", path: native, body: one(`"created":"`, `"created":"yesterday","x":"`), status: 422, code: 42201, field: "value.created", message: `value.created: expected timestamp-millis (RFC 3339 string or number), got string "yesterday"`},
		{name: "bad decimal", path: native, body: one(`.25"`, `.255"`), status: 422, code: 42201, field: "value.amount", message: "more than 2 digits after the point"},
		{name: "oversize request", path: native, body: []byte(`{"records":[{"value":"` + strings.Repeat("x", 70000) + `"}]}`), status: 413, code: 41301, message: "over the limit of 65536"},
		{name: "oversize record", path: native, body: one(`"email":"`, `"email":"`+strings.Repeat("y", 3000)), status: 422, code: 42202, message: "more than the limit of 2000"},
		{name: "too many records", path: native, body: records(51, func(int) string { return `{"value":null}` }), status: 413, code: 41301, message: "more than the limit of 50 records"},
		{name: "topic not allowed", path: "/v1/topics/secret/records", body: one(), status: 404, code: 40401, message: "Topic secret not found."},
		{name: "topic missing in kafka", path: "/v1/topics/missing-topic/records", body: one(), status: 404, code: 40401, message: "Topic missing-topic not found."},
		{name: "subject without schema", path: "/v1/topics/noschema/records", body: one(), status: 404, code: 40403, message: "subject noschema-value has no registered schema"},
		{name: "unknown schema id", path: native, body: []byte(`{"schema_id":9999,"records":[{"value":{}}]}`), status: 404, code: 40403, message: "schema id 9999"},
		{name: "missing API key", path: native, body: one(), auth: "-", status: 401, code: 40101, message: "missing API key"},
		{name: "bad API key", path: native, body: one(), auth: "Bearer nope", status: 401, code: 40101, message: "invalid API key"},
		{name: "topic not allowed for key", path: native, body: one(), auth: basicOther, status: 403, code: 40301, message: "API key other may not produce to topic orders"},
		{name: "bad content type", path: native, contentType: "text/csv", body: one(), status: 415, code: 41501, message: "unsupported Content-Type"},
		// Confluent REST Proxy v2 codes.
		{name: "v2 unknown topic", path: "/topics/secret", contentType: "application/vnd.kafka.json.v2+json", body: one(), status: 404, code: 40401, message: "Topic secret not found."},
		{name: "v2 avro without value schema", path: "/topics/orders", contentType: "application/vnd.kafka.avro.v2+json", body: one(), status: 422, code: 42202, message: "Request includes values but does not include value schema"},
		{name: "v2 avro key without key schema", path: "/topics/orders", contentType: "application/vnd.kafka.avro.v2+json", body: []byte(`{"value_schema_id":1,"records":[{"key":"k","value":null}]}`), status: 422, code: 42201, message: "Request includes keys but does not include key schema"},
		{name: "v2 conversion failure", path: "/topics/orders", contentType: "application/vnd.kafka.json.v2+json", body: one(`"qty":`, `"qty":"abc","x":`), status: 422, code: 42203, message: `Conversion of JSON to Avro failed: records[0]: value.items[0].qty: expected int`},
		{name: "v2 invalid inline schema", path: "/topics/orders", contentType: "application/vnd.kafka.avro.v2+json", body: []byte(`{"value_schema":"{\"type\":\"recrd\"}","records":[{"value":{}}]}`), status: 422, code: 42205, message: "Invalid schema"},
		{name: "v2 partition not found", path: "/topics/orders/partitions/7", contentType: "application/vnd.kafka.json.v2+json", body: one(), status: 404, code: 40402, message: "Partition 7 not found"},
	}
	var rejected []string // ids that must not be in Kafka
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			a := tc.auth
			switch a {
			case "":
				a = bearer
			case "-":
				a = ""
			}
			res := post(t, e.httpURL+tc.path, ct, tc.body, "Authorization", a)
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			var single struct {
				Code    int    `json:"error_code"`
				Message string `json:"message"`
				Results []struct {
					Code    int    `json:"error_code"`
					Message string `json:"message"`
					Field   string `json:"field"`
				} `json:"results"`
			}
			res.json(t, &single)
			code, msg, field := single.Code, single.Message, ""
			if len(single.Results) == 1 {
				code, msg, field = single.Results[0].Code, single.Results[0].Message, single.Results[0].Field
			}
			if code != tc.code || !strings.Contains(msg, tc.message) || field != tc.field {
				t.Fatalf("got code %d message %q field %q; want code %d, message containing %q, field %q", code, msg, field, tc.code, tc.message, tc.field)
			}
		})
		rejected = append(rejected, fmt.Sprintf("o-%d", n))
	}

	// A partial batch: valid records succeed, the invalid one is reported.
	var acked []sent
	base := n
	body := records(3, func(j int) string {
		v := orderJSON(base + 1 + j)
		if j == 1 {
			v = strings.Replace(v, `"qty":`, `"qty":1.5,"x":`, 1)
		}
		return `{"value":` + v + `}`
	})
	n += 3
	rejected = append(rejected, fmt.Sprintf("o-%d", base+2))
	res := post(t, e.httpURL+native, "application/json", body, "Authorization", bearer)
	var pr struct {
		Results []struct {
			Partition *int32 `json:"partition"`
			Offset    *int64 `json:"offset"`
			Code      int    `json:"error_code"`
			Field     string `json:"field"`
		} `json:"results"`
	}
	res.json(t, &pr)
	if res.status != http.StatusMultiStatus || pr.Results[1].Code != 42201 || pr.Results[1].Field != "value.items[0].qty" || pr.Results[0].Partition == nil || pr.Results[2].Partition == nil {
		t.Fatalf("partial batch: %d %s", res.status, res.body)
	}
	acked = append(acked, sent{i: base + 1, partition: *pr.Results[0].Partition, offset: *pr.Results[0].Offset}, sent{i: base + 3, partition: *pr.Results[2].Partition, offset: *pr.Results[2].Offset})

	// Kafka down: produce requests fail at the broker; the gateway answers
	// 503 with Retry-After after its bounded wait, then recovers by itself.
	fault := e.kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	res = post(t, e.httpURL+native, "application/json", one(), "Authorization", bearer)
	if res.status != 503 || res.header.Get("Retry-After") == "" {
		t.Fatalf("kafka down: %d %v %s", res.status, res.header, res.body)
	}
	var down struct {
		Results []struct {
			Code int `json:"error_code"`
		} `json:"results"`
	}
	res.json(t, &down)
	if len(down.Results) != 1 || down.Results[0].Code != 50301 {
		t.Fatalf("kafka down: %s", res.body)
	}
	if fault.Hits() == 0 {
		t.Fatal("the produce fault was never hit")
	}
	fault.Remove()
	res = post(t, e.httpURL+native, "application/json", one(), "Authorization", bearer)
	res.json(t, &pr)
	if res.status != 200 {
		t.Fatalf("after recovery: %d %s", res.status, res.body)
	}
	acked = append(acked, sent{i: n, partition: *pr.Results[0].Partition, offset: *pr.Results[0].Offset})

	// Compare the results with the topic's contents.
	got := readTopic(t, e.kafka.Brokers(), "orders", -1)
	serde := decoder(t, 1, orderSchema)
	byID := map[string]consumed{}
	for _, r := range got {
		var o hOrder
		if err := serde.Decode(r.Value, &o); err != nil {
			t.Fatalf("record at %d/%d does not decode: %v", r.Partition, r.Offset, err)
		}
		byID[o.ID] = r
	}
	for _, a := range acked {
		r, ok := byID[fmt.Sprintf("o-%d", a.i)]
		if !ok || r.Partition != a.partition || r.Offset != a.offset {
			t.Errorf("acknowledged record o-%d (%d/%d) missing from Kafka (found %v)", a.i, a.partition, a.offset, ok)
		}
	}
	for _, id := range rejected {
		if _, ok := byID[id]; ok {
			t.Errorf("rejected record %s is in Kafka", id)
		}
	}

	// Metrics carry the dashboard names.
	resp, err := http.Get(e.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sluice_gateway_records_total{outcome="accepted",topic="orders"}`,
		`sluice_gateway_records_total{outcome="rejected",topic="orders"}`,
		`sluice_gateway_http_requests_total{code="422",route="/v1/topics/{topic}/records"}`,
		`sluice_gateway_request_duration_seconds_bucket{route="/v1/topics/{topic}/records"`,
		`sluice_gateway_produce_duration_seconds_bucket`,
		`sluice_gateway_inflight_bytes`,
		`sluice_gateway_batch_records_bucket`,
	} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	_ = json.Valid
}
