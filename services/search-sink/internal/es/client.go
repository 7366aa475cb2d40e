// Package es connects to Elasticsearch 8 or OpenSearch 2 (optionally with
// AWS SigV4 signing), verifies which product answers, and installs the
// lifecycle policy and index templates the sink relies on.
package es

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/elastic/elastic-transport-go/v8/elastictransport"
	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// Flavor is the search engine product.
type Flavor string

// Flavors.
const (
	Elasticsearch Flavor = "elasticsearch"
	OpenSearch    Flavor = "opensearch"
)

// Options describe how to reach the cluster.
type Options struct {
	URLs               []string
	Username, Password string
	APIKey             string
	Flavor             Flavor
	CACert             []byte
	InsecureSkipVerify bool
	Timeout            time.Duration
	// SigV4 signs every request for Amazon OpenSearch Service.
	SigV4        bool
	AWSRegion    string
	AWSService   string // "es" (managed domains) or "aoss" (serverless)
	Credentials  aws.CredentialsProvider
	RoundTripper http.RoundTripper // base transport; default a tuned http.Transport
}

// Client is the transport every request of the sink goes through (bulk
// indexer included), plus the product it verified.
type Client struct {
	esapi.Transport
	Flavor  Flavor
	Version string
}

// New builds the transport. It performs no I/O; call Verify next.
func New(o Options) (*Client, error) {
	rt := o.RoundTripper
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		tr.ResponseHeaderTimeout = o.Timeout
		if o.InsecureSkipVerify || len(o.CACert) > 0 {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // opt-in
		}
		rt = tr
	}
	if o.SigV4 {
		if o.Credentials == nil {
			return nil, fmt.Errorf("sigv4 signing needs AWS credentials")
		}
		svc := o.AWSService
		if svc == "" {
			svc = "es"
		}
		rt = &SigV4RoundTripper{Base: rt, Signer: v4.NewSigner(), Credentials: o.Credentials, Region: o.AWSRegion, Service: svc, Now: time.Now}
	}
	var urls []*url.URL
	for _, s := range o.URLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("parsing url %q: %w", s, err)
		}
		urls = append(urls, u)
	}
	// Retries are the sink's job (with backoff and metrics), not the transport's.
	if o.Flavor == OpenSearch {
		// The Elasticsearch client refuses servers without X-Elastic-Product;
		// OpenSearch gets the bare transport, which does no product check.
		tp, err := elastictransport.New(elastictransport.Config{
			URLs: urls, Username: o.Username, Password: o.Password, APIKey: o.APIKey,
			CACert: o.CACert, DisableRetry: true, Transport: rt,
		})
		if err != nil {
			return nil, fmt.Errorf("building opensearch transport: %w", err)
		}
		return &Client{Transport: tp, Flavor: OpenSearch}, nil
	}
	cl, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: o.URLs, Username: o.Username, Password: o.Password, APIKey: o.APIKey,
		CACert: o.CACert, DisableRetry: true, Transport: rt,
	})
	if err != nil {
		return nil, fmt.Errorf("building elasticsearch client: %w", err)
	}
	return &Client{Transport: cl, Flavor: Elasticsearch}, nil
}

// ProductError says the server is not what the sink was configured for.
type ProductError struct{ Msg string }

func (e *ProductError) Error() string { return e.Msg }

// Verify asks GET / and checks the product: Elasticsearch must answer with
// X-Elastic-Product: Elasticsearch and version >= 8; OpenSearch with
// version.distribution "opensearch" and version >= 2. Anything else is a
// *ProductError naming what was found and the setting to change.
func (c *Client) Verify(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	res, err := c.rawPerform(req)
	if err != nil {
		return fmt.Errorf("contacting search cluster: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
		return &ProductError{fmt.Sprintf("search cluster refused the credentials (HTTP %d): check ES_USERNAME/ES_PASSWORD/ES_API_KEY or ES_AWS_SIGV4", res.StatusCode)}
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET / answered HTTP %d: %s", res.StatusCode, truncate(body, 200))
	}
	var info struct {
		Version struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
		} `json:"version"`
	}
	_ = json.Unmarshal(body, &info)
	major, _ := strconv.Atoi(strings.SplitN(info.Version.Number, ".", 2)[0])
	isES := res.Header.Get("X-Elastic-Product") == "Elasticsearch"
	isOS := info.Version.Distribution == "opensearch"
	c.Version = info.Version.Number
	switch c.Flavor {
	case OpenSearch:
		if isOS && major >= 2 {
			return nil
		}
		if isOS {
			return &ProductError{fmt.Sprintf("OpenSearch %s is not supported: need OpenSearch 2 or later", info.Version.Number)}
		}
		if isES {
			return &ProductError{fmt.Sprintf("ES_FLAVOR=opensearch but the server is Elasticsearch %s: set ES_FLAVOR=elasticsearch", info.Version.Number)}
		}
	default:
		if isES && major >= 8 {
			return nil
		}
		if isES {
			return &ProductError{fmt.Sprintf("Elasticsearch %s is not supported: need Elasticsearch 8", info.Version.Number)}
		}
		if isOS {
			return &ProductError{fmt.Sprintf("the server is OpenSearch %s, not Elasticsearch: set ES_FLAVOR=opensearch", info.Version.Number)}
		}
	}
	return &ProductError{fmt.Sprintf("the server is neither Elasticsearch 8 (no X-Elastic-Product: Elasticsearch header) nor OpenSearch 2 (version.distribution=%q, version %q): refusing to index into an unknown product", info.Version.Distribution, info.Version.Number)}
}

// rawPerform bypasses the Elasticsearch client's own product check so that
// Verify can explain the failure itself.
func (c *Client) rawPerform(req *http.Request) (*http.Response, error) {
	if cl, ok := c.Transport.(*elasticsearch.Client); ok {
		return cl.BaseClient.Transport.Perform(req)
	}
	return c.Perform(req)
}

// Do sends a JSON request and decodes a JSON answer into out (if non-nil).
// It returns the status; statuses >= 300 are errors of type *StatusError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return 0, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.Perform(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return res.StatusCode, fmt.Errorf("reading %s %s: %w", method, path, err)
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, &StatusError{Status: res.StatusCode, Method: method, Path: path, Body: truncate(b, 500)}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return res.StatusCode, fmt.Errorf("decoding %s %s: %w", method, path, err)
		}
	}
	return res.StatusCode, nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status       int
	Method, Path string
	Body         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// SigV4RoundTripper signs requests for Amazon OpenSearch Service (service
// "es") or OpenSearch Serverless ("aoss").
type SigV4RoundTripper struct {
	Base        http.RoundTripper
	Signer      *v4.Signer
	Credentials aws.CredentialsProvider
	Region      string
	Service     string
	Now         func() time.Time
}

// RoundTrip buffers the body (the signature covers its hash), signs and sends.
func (s *SigV4RoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("sigv4: reading body: %w", err)
		}
		body = b
	}
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	r.Header.Set("X-Amz-Content-Sha256", hash) // required by aoss, harmless for es
	r.Header.Del("Authorization")              // basic auth must not be mixed with sigv4
	creds, err := s.Credentials.Retrieve(r.Context())
	if err != nil {
		return nil, fmt.Errorf("sigv4: retrieving AWS credentials: %w", err)
	}
	if err := s.Signer.SignHTTP(r.Context(), creds, r, hash, s.Service, s.Region, s.Now()); err != nil {
		return nil, fmt.Errorf("sigv4: signing: %w", err)
	}
	return s.Base.RoundTrip(r)
}
