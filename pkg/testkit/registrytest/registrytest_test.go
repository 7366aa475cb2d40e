package registrytest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
)

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("GET %s: decoding %q: %v", url, b, err)
		}
	}
	return resp.StatusCode
}

func TestStartRegisterRestart(t *testing.T) {
	kc := kafkatest.Start(t)
	reg := registrytest.Start(t, kc.Brokers())
	schema := `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}`
	id := reg.Register(t, "orders-value", schema)
	if id < 1 {
		t.Fatalf("id = %d, want >= 1", id)
	}
	if again := reg.Register(t, "orders-value", schema); again != id {
		t.Fatalf("re-registering gave id %d, want %d", again, id)
	}
	var got struct {
		Schema string `json:"schema"`
	}
	if code := getJSON(t, reg.URL()+"/schemas/ids/"+strconv.Itoa(id), &got); code != http.StatusOK || got.Schema != schema {
		t.Fatalf("GET by id: %d %q", code, got.Schema)
	}
	reg.Restart(t)
	got.Schema = ""
	if code := getJSON(t, reg.URL()+"/schemas/ids/"+strconv.Itoa(id), &got); code != http.StatusOK || got.Schema != schema {
		t.Fatalf("GET by id after restart: %d %q", code, got.Schema)
	}
	if reg.GRPCAddr() == "" {
		t.Fatal("no gRPC address")
	}
}
