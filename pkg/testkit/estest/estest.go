// Package estest is an in-memory Elasticsearch 8 wire double: the HTTP API
// subset the search sink uses (bulk, indices, templates, ILM, data streams,
// refresh, count/search, get), answering with ES 8.x status codes and bodies,
// recording every request and able to inject per-item and whole-request
// failures.
//
// Deliberate simplifications, so tests do not lean on them: writes are
// searchable at once (refresh is accepted but not needed), queries support
// only match_all and term (exact value, no analysis), sort and filter_path
// are ignored, and there is one shard per index.
package estest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one HTTP request the server received.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte // after gzip decoding
}

// Error is an Elasticsearch error: the HTTP (or bulk item) status and the
// type and reason of the error object.
type Error struct {
	Status int
	Type   string
	Reason string
}

// MapperParsing is the 400 a bulk item gets when its document does not fit
// the mapping.
func MapperParsing(reason string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "mapper_parsing_exception", Reason: reason}
}

// Rejected is the 429 a bulk item gets when the write thread pool is full.
func Rejected() *Error {
	return &Error{Status: http.StatusTooManyRequests, Type: "es_rejected_execution_exception",
		Reason: "rejected execution of primary operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, primary_operation_bytes=1024, max_coordinating_and_primary_bytes=1024]"}
}

// ItemFailureFunc decides whether one bulk action fails: it returns nil to let
// it through, or the error to answer for that item (the document is then not
// written). action is index, create, update or delete; doc is the source line
// (nil for delete).
type ItemFailureFunc func(action, index, id string, doc json.RawMessage) *Error

// Option configures a Server.
type Option interface{ apply(*Server) }

type optionFunc func(*Server)

func (f optionFunc) apply(s *Server) { f(s) }

// WithoutProductHeader omits X-Elastic-Product, so clients' product check
// fails as it does against something that is not Elasticsearch.
func WithoutProductHeader() Option { return optionFunc(func(s *Server) { s.noProduct = true }) }

// WithItemFailures installs f for every bulk action (see SetItemFailures).
func WithItemFailures(f ItemFailureFunc) Option {
	return optionFunc(func(s *Server) { s.itemFailure = f })
}

// WithClusterName sets cluster_name in GET / (default "estest").
func WithClusterName(name string) Option { return optionFunc(func(s *Server) { s.clusterName = name }) }

// Server is the double. All methods are safe for concurrent use.
type Server struct {
	noProduct   bool
	clusterName string

	mu          sync.Mutex
	itemFailure ItemFailureFunc
	failures    []*failure
	requests    []Request
	bulkCalls   int
	indices     map[string]*index // by name; data streams by their own name
	templates   map[string]json.RawMessage
	policies    map[string]policy
	url         string
}

type failure struct {
	path string
	left int
	err  Error
}

type policy struct {
	body     json.RawMessage
	version  int
	modified time.Time
}

// New returns a Server with no indices; serve it with Handler.
func New(opts ...Option) *Server {
	s := &Server{
		clusterName: "estest",
		indices:     map[string]*index{},
		templates:   map[string]json.RawMessage{},
		policies:    map[string]policy{},
	}
	for _, o := range opts {
		o.apply(s)
	}
	return s
}

// Start serves a new Server on 127.0.0.1 with a random port until the test
// ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := New(opts...)
	ts := httptest.NewServer(s)
	tb.Cleanup(ts.Close)
	s.mu.Lock()
	s.url = ts.URL
	s.mu.Unlock()
	return s
}

// URL is the base URL of a Server from Start ("" for one from New).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Handler returns the HTTP handler, for serving a Server from New.
func (s *Server) Handler() http.Handler { return s }

// SetItemFailures replaces the per-item failure hook; nil removes it.
func (s *Server) SetItemFailures(f ItemFailureFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.itemFailure = f
}

// FailNext makes the next n requests to path (exactly, e.g. "/_bulk" or
// "/orders/_bulk"; "" for any path) answer err with an ES error body instead
// of being handled. They are still recorded.
func (s *Server) FailNext(path string, n int, err Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &failure{path: path, left: n, err: err})
}

// Requests returns a copy of every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// BulkCalls counts the _bulk requests received, including failed ones.
func (s *Server) BulkCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bulkCalls
}

// Indices returns the names of the indices and data streams that exist,
// sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.indices))
	for name := range s.indices {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Docs returns a copy of the documents in an index or data stream by id, or
// nil if it does not exist.
func (s *Server) Docs(name string) map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.indices[name]
	if ix == nil {
		return nil
	}
	out := make(map[string]json.RawMessage, len(ix.docs))
	for id, d := range ix.docs {
		out[id] = bytes.Clone(d.source)
	}
	return out
}

// ServeHTTP records the request, applies injected failures and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.noProduct {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	ct := "application/json"
	if strings.Contains(r.Header.Get("Accept"), "vnd.elasticsearch+json") {
		ct = "application/vnd.elasticsearch+json;compatible-with=8"
	}
	w.Header().Set("Content-Type", ct)

	body, err := readBody(r)
	if err != nil {
		writeError(w, Error{http.StatusBadRequest, "parse_exception", err.Error()})
		return
	}
	segs := splitPath(r.URL.Path)
	isBulk := len(segs) > 0 && segs[len(segs)-1] == "_bulk"

	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	if isBulk {
		s.bulkCalls++
	}
	injected := s.takeFailure(r.URL.Path)
	s.mu.Unlock()
	if injected != nil {
		writeError(w, *injected)
		return
	}

	if len(body) > 0 {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "" && !acceptedBody[mt] {
			writeJSON(w, http.StatusNotAcceptable, obj{"error": fmt.Sprintf("Content-Type header [%s] is not supported", r.Header.Get("Content-Type")), "status": 406})
			return
		}
	}
	status, resp := s.route(r.Method, segs, r.URL.Query(), body)
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, resp)
}

var acceptedBody = map[string]bool{
	"application/json":                       true,
	"application/x-ndjson":                   true,
	"application/vnd.elasticsearch+json":     true,
	"application/vnd.elasticsearch+x-ndjson": true,
}

func (s *Server) takeFailure(path string) *Error {
	for _, f := range s.failures {
		if f.left > 0 && (f.path == "" || f.path == path) {
			f.left--
			e := f.err
			return &e
		}
	}
	return nil
}

func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("reading gzip body: %w", err)
		}
		defer gz.Close()
		rd = gz
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	return b, nil
}

func splitPath(p string) []string {
	var out []string
	for _, seg := range strings.Split(p, "/") {
		if seg != "" {
			out = append(out, seg)
		}
	}
	return out
}

// obj is a JSON object under construction.
type obj = map[string]any

// route maps a request to its handler; it returns the status and the JSON
// body.
func (s *Server) route(method string, segs []string, q url.Values, body []byte) (int, any) {
	m := func(allowed ...string) bool {
		for _, a := range allowed {
			if method == a {
				return true
			}
		}
		return false
	}
	const get, put, post, head, del = http.MethodGet, http.MethodPut, http.MethodPost, http.MethodHead, http.MethodDelete
	switch {
	case len(segs) == 0:
		if m(get, head) {
			return http.StatusOK, s.info()
		}
	case len(segs) == 1 && segs[0] == "_bulk" && m(post, put):
		return s.bulk("", body)
	case len(segs) == 2 && segs[1] == "_bulk" && m(post, put):
		return s.bulk(segs[0], body)
	case len(segs) <= 2 && segs[0] == "_index_template" && (len(segs) == 2 || m(get)):
		return s.indexTemplate(method, segs[1:], body)
	case len(segs) <= 3 && len(segs) >= 2 && segs[0] == "_ilm" && segs[1] == "policy":
		return s.ilmPolicy(method, segs[2:], body)
	case len(segs) <= 2 && segs[0] == "_data_stream":
		return s.dataStream(method, segs[1:])
	case len(segs) == 1 && segs[0] == "_refresh" && m(get, post):
		return s.refresh("_all")
	case len(segs) == 2 && segs[1] == "_refresh" && m(get, post):
		return s.refresh(segs[0])
	case len(segs) == 1 && (segs[0] == "_search" || segs[0] == "_count") && m(get, post):
		return s.search("_all", segs[0], q, body)
	case len(segs) == 2 && (segs[1] == "_search" || segs[1] == "_count") && m(get, post):
		return s.search(segs[0], segs[1], q, body)
	case len(segs) == 3 && segs[1] == "_doc" && m(get, head):
		return s.getDoc(segs[0], segs[2])
	case len(segs) == 1 && !strings.HasPrefix(segs[0], "_") && m(get, head, put, del):
		return s.indexAdmin(method, segs[0], body)
	}
	return http.StatusBadRequest, obj{"error": fmt.Sprintf("no handler found for uri [/%s] and method [%s]", strings.Join(segs, "/"), method)}
}

func (s *Server) info() obj {
	return obj{
		"name":         "estest-node",
		"cluster_name": s.clusterName,
		"cluster_uuid": "estest-cluster-uuid-000000",
		"version": obj{
			"number":                              "8.15.0",
			"build_flavor":                        "default",
			"build_type":                          "docker",
			"build_hash":                          "1a77947f34deddb41af25e6f0ddb8e830159c179",
			"build_date":                          "2024-08-05T10:05:34.233336849Z",
			"build_snapshot":                      false,
			"lucene_version":                      "9.11.1",
			"minimum_wire_compatibility_version":  "7.17.0",
			"minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "You Know, for Search",
	}
}

// errBody is the body ES sends with a failed request.
func errBody(e Error, extra obj) obj {
	cause := obj{"type": e.Type, "reason": e.Reason}
	for k, v := range extra {
		cause[k] = v
	}
	top := obj{"root_cause": []any{cause}}
	for k, v := range cause {
		top[k] = v
	}
	return obj{"error": top, "status": e.Status}
}

func writeError(w http.ResponseWriter, e Error) { writeJSON(w, e.Status, errBody(e, nil)) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"estest: encoding response","status":500}`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
