package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/sluicehq/sluice/pkg/service"
)

// Config is the shared REGISTRY_* client configuration.
type Config struct {
	URL          string        `env:"REGISTRY_URL" default:"http://127.0.0.1:8081" help:"schema registry REST base URL (Sluice or Confluent)"`
	Username     string        `env:"REGISTRY_USERNAME" help:"basic-auth user or API key"`
	Password     string        `env:"REGISTRY_PASSWORD" secret:"true" help:"basic-auth password or API secret"`
	BearerToken  string        `env:"REGISTRY_BEARER_TOKEN" secret:"true" help:"bearer token (instead of basic auth)"`
	Timeout      time.Duration `env:"REGISTRY_TIMEOUT" default:"5s" help:"per-request timeout"`
	LatestTTL    time.Duration `env:"REGISTRY_LATEST_TTL" default:"30s" help:"how long a subject's latest version is served before it is refreshed in the background"`
	MaxCachedIDs int           `env:"REGISTRY_MAX_CACHED_IDS" default:"100000" help:"bound on the id->schema cache (and on the id->subject versions cache)"`
	NegativeTTL  time.Duration `env:"REGISTRY_NEGATIVE_TTL" default:"5s" help:"how long an answer that a schema id is not a version of a subject is cached (positive answers are cached for good: ids are immutable)"`
	GRPCAddr     string        `env:"REGISTRY_GRPC_ADDR" help:"host:port of Sluice's registry gRPC API (sluice.registry.v1); lookups and registration go there first and fall back to REST; empty: REST only"`
}

// Validate checks the URL and bounds.
func (c *Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return service.Invalid("REGISTRY_URL", "want an http(s) URL, got %q", c.URL)
	}
	if c.BearerToken != "" && c.Username != "" {
		return service.Invalid("REGISTRY_BEARER_TOKEN", "set either a bearer token or REGISTRY_USERNAME, not both")
	}
	if c.Timeout <= 0 {
		return service.Invalid("REGISTRY_TIMEOUT", "must be positive")
	}
	if c.LatestTTL < 0 {
		return service.Invalid("REGISTRY_LATEST_TTL", "must not be negative")
	}
	if c.MaxCachedIDs <= 0 {
		return service.Invalid("REGISTRY_MAX_CACHED_IDS", "must be positive")
	}
	if c.NegativeTTL < 0 {
		return service.Invalid("REGISTRY_NEGATIVE_TTL", "must not be negative")
	}
	if err := validGRPCAddr(c.GRPCAddr); err != nil {
		return service.Invalid("REGISTRY_GRPC_ADDR", "%v", err)
	}
	return nil
}

// Reference names a type defined under another subject.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// Schema is a registered schema. Subject and Version are empty when it was
// fetched by id alone.
type Schema struct {
	ID         int         `json:"id"`
	Subject    string      `json:"subject,omitempty"`
	Version    int         `json:"version,omitempty"`
	Type       string      `json:"schemaType,omitempty"` // "" or AVRO, JSON, PROTOBUF
	Schema     string      `json:"schema"`
	References []Reference `json:"references,omitempty"`
}

// SchemaType returns the type, defaulting to AVRO as Confluent does.
func (s *Schema) SchemaType() string {
	if s.Type == "" {
		return "AVRO"
	}
	return s.Type
}

// Error is an error answered by the registry, in Confluent's shape.
type Error struct {
	Status  int    // HTTP status
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("schema registry: %d %s (error_code %d)", e.Status, e.Message, e.Code)
}

// Confluent error codes callers branch on.
const (
	CodeSubjectNotFound = 40401
	CodeVersionNotFound = 40402
	CodeSchemaNotFound  = 40403
	CodeIncompatible    = 409
	CodeInvalidSchema   = 42201
)

// IsNotFound reports whether err is a registry 404 (subject, version or schema).
func IsNotFound(err error) bool {
	var re *Error
	return errors.As(err, &re) && re.Status == http.StatusNotFound
}

// Code returns the registry error code in err, or 0.
func Code(err error) int {
	var re *Error
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

type latestEntry struct {
	s       *Schema
	fetched time.Time
}

// Client talks to the registry. Safe for concurrent use.
type Client struct {
	cfg  Config
	base string
	http *http.Client
	now  func() time.Time

	sf       singleflight.Group
	mu       sync.RWMutex
	byID     map[int]*Schema
	latest   map[string]latestEntry
	versions map[string]*Schema // subject/version -> schema, immutable
	uses     map[int]*idUses    // id -> subjects it was seen under

	rpc     *grpcTransport // nil: REST only
	rpcConn io.Closer
}

// Option customises a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client (TLS, proxies, tests).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithClock replaces time.Now, for tests of the latest cache.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// New builds a client; cfg should already be validated.
func New(cfg Config, opts ...Option) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxCachedIDs <= 0 {
		cfg.MaxCachedIDs = 100000
	}
	c := &Client{
		cfg:      cfg,
		base:     strings.TrimRight(cfg.URL, "/"),
		http:     &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}},
		now:      time.Now,
		byID:     map[int]*Schema{},
		latest:   map[string]latestEntry{},
		versions: map[string]*Schema{},
		uses:     map[int]*idUses{},
	}
	if cfg.GRPCAddr != "" {
		c.dialGRPC()
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// SchemaByID returns the schema with a global id. Results are cached for
// the life of the process: ids never change meaning.
func (c *Client) SchemaByID(ctx context.Context, id int) (*Schema, error) {
	c.mu.RLock()
	s, ok := c.byID[id]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	v, err, _ := c.sf.Do("id/"+strconv.Itoa(id), func() (any, error) {
		var out Schema
		if err := c.getByID(ctx, id, &out); err != nil {
			return nil, fmt.Errorf("fetching schema id %d: %w", id, err)
		}
		out.ID = id
		c.putID(&out)
		return &out, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Schema), nil
}

func (c *Client) putID(s *Schema) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[s.ID]; ok {
		return
	}
	if len(c.byID) >= c.cfg.MaxCachedIDs {
		for k := range c.byID { // evict an arbitrary entry: refetching is cheap and correct
			delete(c.byID, k)
			break
		}
	}
	c.byID[s.ID] = &Schema{ID: s.ID, Type: s.Type, Schema: s.Schema, References: s.References}
}

// Latest returns the newest version of subject. A cached answer younger
// than REGISTRY_LATEST_TTL is returned at once; an older one is returned
// too while a background refresh runs, so a slow registry never stalls
// the caller once a subject is known.
func (c *Client) Latest(ctx context.Context, subject string) (*Schema, error) {
	c.mu.RLock()
	e, ok := c.latest[subject]
	c.mu.RUnlock()
	if ok {
		if c.now().Sub(e.fetched) >= c.cfg.LatestTTL {
			go func() { //nolint:contextcheck // refresh outlives the request on purpose
				rctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
				defer cancel()
				_, _ = c.fetchLatest(rctx, subject)
			}()
		}
		return e.s, nil
	}
	return c.fetchLatest(ctx, subject)
}

// RefreshLatest fetches the newest version now, bypassing the cache.
func (c *Client) RefreshLatest(ctx context.Context, subject string) (*Schema, error) {
	return c.fetchLatest(ctx, subject)
}

func (c *Client) fetchLatest(ctx context.Context, subject string) (*Schema, error) {
	v, err, _ := c.sf.Do("latest/"+subject, func() (any, error) {
		var out Schema
		if err := c.getLatest(ctx, subject, &out); err != nil {
			return nil, fmt.Errorf("fetching latest schema of %s: %w", subject, err)
		}
		c.putID(&out)
		c.mu.Lock()
		c.latest[subject] = latestEntry{s: &out, fetched: c.now()}
		c.mu.Unlock()
		return &out, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Schema), nil
}

// ByVersion returns one version of a subject (cached: versions are immutable
// until a hard delete, after which the id still resolves).
func (c *Client) ByVersion(ctx context.Context, subject string, version int) (*Schema, error) {
	key := subject + "/" + strconv.Itoa(version)
	c.mu.RLock()
	s, ok := c.versions[key]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	v, err, _ := c.sf.Do("version/"+key, func() (any, error) {
		var out Schema
		if err := c.getVersion(ctx, subject, version, &out); err != nil {
			return nil, fmt.Errorf("fetching %s version %d: %w", subject, version, err)
		}
		c.putID(&out)
		c.mu.Lock()
		c.versions[key] = &out
		c.mu.Unlock()
		return &out, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Schema), nil
}

// SubjectVersion is one version of a subject (an entry of GET
// /schemas/ids/{id}/versions).
type SubjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// VersionsByID returns the live subject versions registered with schema id
// (Confluent's GET /schemas/ids/{id}/versions), uncached. An unknown id is
// a 404 *Error (IsNotFound).
func (c *Client) VersionsByID(ctx context.Context, id int) ([]SubjectVersion, error) {
	out, err := c.getVersionsByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("fetching subject versions of schema id %d: %w", id, err)
	}
	return out, nil
}

// idUses is what is known of the subjects a schema id is registered under:
// every subject ever seen (positive answers stay true) and when the
// registry was last asked (negative answers expire after NegativeTTL).
type idUses struct {
	subjects map[string]struct{}
	checked  time.Time
}

// IDInSubject reports whether schema id is registered as a version of
// subject. A yes is cached for the life of the process (ids never change
// meaning); a no is cached for REGISTRY_NEGATIVE_TTL, so a subject that
// gains the id later is seen soon. Concurrent lookups of one id share one
// registry call. An unknown id is a 404 *Error.
func (c *Client) IDInSubject(ctx context.Context, id int, subject string) (bool, error) {
	c.mu.RLock()
	u, ok := c.uses[id]
	var in, fresh bool
	if ok {
		_, in = u.subjects[subject]
		fresh = c.now().Sub(u.checked) < c.cfg.NegativeTTL
	}
	c.mu.RUnlock()
	if in || (ok && fresh) {
		return in, nil
	}
	v, err, _ := c.sf.Do("uses/"+strconv.Itoa(id), func() (any, error) {
		vs, err := c.VersionsByID(ctx, id)
		if err != nil {
			return nil, err
		}
		c.putUses(id, vs)
		return vs, nil
	})
	if err != nil {
		return false, err
	}
	for _, sv := range v.([]SubjectVersion) {
		if sv.Subject == subject {
			return true, nil
		}
	}
	return false, nil
}

func (c *Client) putUses(id int, vs []SubjectVersion) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.uses[id]
	if u == nil {
		if len(c.uses) >= c.cfg.MaxCachedIDs {
			for k := range c.uses { // evict an arbitrary entry: refetching is cheap and correct
				delete(c.uses, k)
				break
			}
		}
		u = &idUses{subjects: make(map[string]struct{}, len(vs))}
		c.uses[id] = u
	}
	for _, v := range vs {
		u.subjects[v.Subject] = struct{}{}
	}
	u.checked = c.now()
}

// Register registers schema under subject (idempotent on the registry side)
// and returns its global id.
func (c *Client) Register(ctx context.Context, subject, schemaType, schema string, refs []Reference) (int, error) {
	body := schemaBody(schemaType, schema, refs)
	var out struct {
		ID int `json:"id"`
	}
	if err := c.register(ctx, subject, schemaType, schema, refs, body, &out.ID); err != nil {
		return 0, fmt.Errorf("registering schema under %s: %w", subject, err)
	}
	c.putID(&Schema{ID: out.ID, Type: schemaType, Schema: schema, References: refs})
	return out.ID, nil
}

// schemaBody is the request body Confluent's API takes for a schema.
func schemaBody(schemaType, schema string, refs []Reference) map[string]any {
	body := map[string]any{"schema": schema}
	if schemaType != "" && schemaType != "AVRO" {
		body["schemaType"] = schemaType
	}
	if len(refs) > 0 {
		body["references"] = refs
	}
	return body
}

// Lookup returns the id of schema if it is registered under subject
// (Confluent's POST /subjects/{subject}, which a read-only credential may
// call), and an IsNotFound error (40401 or 40403) if it is not.
func (c *Client) Lookup(ctx context.Context, subject, schemaType, schema string, refs []Reference) (int, error) {
	body := schemaBody(schemaType, schema, refs)
	var out struct {
		ID int `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "/subjects/"+url.PathEscape(subject), body, &out); err != nil {
		return 0, fmt.Errorf("looking up schema under %s: %w", subject, err)
	}
	c.putID(&Schema{ID: out.ID, Type: schemaType, Schema: schema, References: refs})
	return out.ID, nil
}

// Ping checks that the registry answers (GET /subjects?subjectPrefix=...).
func (c *Client) Ping(ctx context.Context) error {
	var out []string
	if err := c.do(ctx, http.MethodGet, "/schemas/types", nil, &out); err != nil {
		return fmt.Errorf("schema registry unreachable: %w", err)
	}
	return nil
}

const contentType = "application/vnd.schemaregistry.v1+json"

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", contentType+", application/json")
	if in != nil {
		req.Header.Set("Content-Type", contentType)
	}
	switch {
	case c.cfg.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.BearerToken)
	case c.cfg.Username != "":
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("reading response: %w", err)
	}
	if resp.StatusCode >= 300 {
		re := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, re) != nil || re.Message == "" {
			re.Message = strings.TrimSpace(string(b))
			if re.Message == "" {
				re.Message = http.StatusText(resp.StatusCode)
			}
		}
		return re
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decoding %s %s response: %w", method, path, err)
		}
	}
	return nil
}
