package es

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sluicehq/sluice/pkg/testkit/estest"
)

// fakeRoot answers GET / like a given product and forwards everything else
// to the estest double (without its product header for non-Elasticsearch).
func fakeRoot(t *testing.T, header, distribution, version string, ism *ismStore) *httptest.Server {
	t.Helper()
	double := estest.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			if header != "" {
				w.Header().Set("X-Elastic-Product", header)
			}
			w.Header().Set("Content-Type", "application/json")
			v := map[string]any{"number": version}
			if distribution != "" {
				v["distribution"] = distribution
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"name": "n", "version": v, "tagline": "The OpenSearch Project: https://opensearch.org/"})
			return
		}
		if ism != nil && strings.HasPrefix(r.URL.Path, "/_plugins/_ism/policies/") {
			ism.serve(w, r)
			return
		}
		rec := httptest.NewRecorder()
		double.Handler().ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			if k == "X-Elastic-Product" && header == "" {
				continue
			}
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv
}

type ismStore struct {
	mu   sync.Mutex
	puts []string
	body json.RawMessage
}

func (s *ismStore) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		if s.body == nil {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"type":"status_exception","reason":"Policy not found"},"status":404}`)
			return
		}
		_, _ = w.Write([]byte(`{"_id":"p","_seq_no":3,"_primary_term":1,"policy":` + string(s.body) + `}`))
	case http.MethodPut:
		var req struct {
			Policy json.RawMessage `json:"policy"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &req)
		s.body = req.Policy
		s.puts = append(s.puts, r.URL.RequestURI())
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"_id":"p"}`)
	}
}

func TestVerifyProduct(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                  string
		flavor                Flavor
		header, dist, version string
		wantErr               string
	}{
		{"elasticsearch 8", Elasticsearch, "Elasticsearch", "", "8.15.0", ""},
		{"elasticsearch 7 refused", Elasticsearch, "Elasticsearch", "", "7.17.0", "need Elasticsearch 8"},
		{"opensearch when elasticsearch configured", Elasticsearch, "", "opensearch", "2.11.0", "set ES_FLAVOR=opensearch"},
		{"unknown product", Elasticsearch, "", "", "8.0.0", "neither Elasticsearch 8"},
		{"opensearch 2", OpenSearch, "", "opensearch", "2.11.0", ""},
		{"opensearch 1 refused", OpenSearch, "", "opensearch", "1.3.0", "need OpenSearch 2"},
		{"elasticsearch when opensearch configured", OpenSearch, "Elasticsearch", "", "8.15.0", "set ES_FLAVOR=elasticsearch"},
		{"unknown product for opensearch", OpenSearch, "", "", "2.0.0", "neither Elasticsearch 8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := fakeRoot(t, tc.header, tc.dist, tc.version, nil)
			c, err := New(Options{URLs: []string{srv.URL}, Flavor: tc.flavor, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Verify(context.Background())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify = %v", err)
				}
				return
			}
			var pe *ProductError
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !asProduct(err, &pe) {
				t.Fatalf("Verify = %v, want ProductError containing %q", err, tc.wantErr)
			}
		})
	}
}

func asProduct(err error, pe **ProductError) bool {
	p, ok := err.(*ProductError)
	*pe = p
	return ok
}

func TestVerifyAgainstDouble(t *testing.T) {
	t.Parallel()
	ok := estest.Start(t)
	c, _ := New(Options{URLs: []string{ok.URL()}, Timeout: 5 * time.Second})
	if err := c.Verify(context.Background()); err != nil {
		t.Fatalf("Verify against the ES 8 double: %v", err)
	}
	bad := estest.Start(t, estest.WithoutProductHeader())
	c, _ = New(Options{URLs: []string{bad.URL()}, Timeout: 5 * time.Second})
	if err := c.Verify(context.Background()); err == nil || !strings.Contains(err.Error(), "X-Elastic-Product") {
		t.Fatalf("Verify without product header = %v", err)
	}
}

func TestOpenSearchInstallAndBulkWithoutProductHeader(t *testing.T) {
	t.Parallel()
	ism := &ismStore{}
	srv := fakeRoot(t, "", "opensearch", "2.13.0", ism)
	c, err := New(Options{URLs: []string{srv.URL}, Flavor: OpenSearch, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	in := NewInstaller(c, InstallOptions{Policy: "p", RetentionDays: 7, Replicas: -1}, slog.New(slog.DiscardHandler))
	for i := 0; i < 2; i++ {
		if err := in.EnsurePolicy(ctx); err != nil {
			t.Fatal(err)
		}
		if err := in.EnsureTemplate(ctx, "sluice-orders", "orders-*", map[string]any{"m": map[string]any{"type": "flat_object"}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(ism.puts) != 1 {
		t.Fatalf("ISM policy written %d times, want 1", len(ism.puts))
	}
	if !strings.Contains(string(ism.body), `"min_index_age":"7d"`) || !strings.Contains(string(ism.body), `"index_patterns":["orders-*"]`) {
		t.Fatalf("ISM policy = %s", ism.body)
	}
	// A second topic (and a second process, which knows only its own
	// topic) extends the list instead of replacing it.
	other := NewInstaller(c, InstallOptions{Policy: "p", RetentionDays: 7, Replicas: -1}, slog.New(slog.DiscardHandler))
	if err := other.EnsureTemplate(ctx, "sluice-payments", "payments-*", nil); err != nil {
		t.Fatal(err)
	}
	if len(ism.puts) != 2 || !strings.Contains(ism.puts[1], "if_seq_no=3&if_primary_term=1") || !strings.Contains(string(ism.body), `"index_patterns":["orders-*","payments-*"]`) {
		t.Fatalf("ISM puts %v, policy %s", ism.puts, ism.body)
	}
	// A bulk request through the bare transport works without the header
	// the Elasticsearch client insists on.
	req, _ := http.NewRequest(http.MethodPost, "/_bulk", strings.NewReader("{\"index\":{\"_index\":\"orders-1\",\"_id\":\"a\"}}\n{\"x\":1}\n"))
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := c.Perform(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("bulk status %d", res.StatusCode)
	}
	var tmpl struct {
		IndexTemplates []struct {
			IndexTemplate map[string]any `json:"index_template"`
		} `json:"index_templates"`
	}
	if _, err := c.Do(ctx, http.MethodGet, "/_index_template/sluice-orders", nil, &tmpl); err != nil {
		t.Fatal(err)
	}
	settings := tmpl.IndexTemplates[0].IndexTemplate["template"].(map[string]any)["settings"].(map[string]any)
	if _, ok := settings["index.lifecycle.name"]; ok {
		t.Fatal("OpenSearch template carries an ILM setting")
	}
}

func TestSigV4Signing(t *testing.T) {
	t.Parallel()
	type seen struct {
		auth, date, hash, body string
	}
	got := make(chan seen, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date"), r.Header.Get("X-Amz-Content-Sha256"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"version":{"number":"2.11.0","distribution":"opensearch"}}`)
	}))
	t.Cleanup(srv.Close)
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")
	c, err := New(Options{URLs: []string{srv.URL}, Flavor: OpenSearch, SigV4: true, AWSRegion: "eu-west-1", AWSService: "es", Credentials: creds, Username: "ignored", Password: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if !strings.HasPrefix(s.auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(s.auth, "/eu-west-1/es/aws4_request") || !strings.Contains(s.auth, "Signature=") {
		t.Fatalf("Authorization = %q", s.auth)
	}
	empty := sha256.Sum256(nil)
	if s.date == "" || s.hash != hex.EncodeToString(empty[:]) {
		t.Fatalf("X-Amz-Date %q, payload hash %q", s.date, s.hash)
	}
	body := `{"a":1}`
	if _, err := c.Do(context.Background(), http.MethodPut, "/x", json.RawMessage(body), nil); err != nil {
		t.Fatal(err)
	}
	s = <-got
	sum := sha256.Sum256([]byte(body))
	if s.body != body || s.hash != hex.EncodeToString(sum[:]) {
		t.Fatalf("signed body %q hash %q", s.body, s.hash)
	}
	if _, err := New(Options{URLs: []string{srv.URL}, SigV4: true}); err == nil {
		t.Fatal("SigV4 without credentials accepted")
	}
	var _ aws.CredentialsProvider = creds
}
