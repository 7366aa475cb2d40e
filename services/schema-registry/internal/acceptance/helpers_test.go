package acceptance_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

func avroRecord(name string, fields ...string) string {
	fs := ""
	for i, f := range fields {
		if i > 0 {
			fs += ","
		}
		fs += fmt.Sprintf(`{"name":%q,"type":"string","default":""}`, f)
	}
	return fmt.Sprintf(`{"type":"record","name":%q,"namespace":"com.acme","fields":[%s]}`, name, fs)
}

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func register(base, subject, schema string) (int, int, error) {
	body, _ := json.Marshal(map[string]string{"schema": schema})
	resp, err := httpClient.Post(base+"/subjects/"+subject+"/versions", "application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, resp.StatusCode, fmt.Errorf("registering under %s: %d %s", subject, resp.StatusCode, b)
	}
	var out struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, resp.StatusCode, err
	}
	return out.ID, resp.StatusCode, nil
}

func getBody(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reached within %s: %s", what, d, why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
