// Package api serves the Confluent-compatible REST API of the registry.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/services/schema-registry/internal/registry"
	"github.com/sluicehq/sluice/services/schema-registry/internal/store"
)

// ContentType is what every answer is sent as.
const ContentType = "application/vnd.schemaregistry.v1+json"

// Options configure the API.
type Options struct {
	MaxRequestBytes int64 // 413 above this
	Auth            *Auth // nil: no authentication
	RequestTimeout  time.Duration
}

// Server is the REST handler.
type Server struct {
	reg     *registry.Registry
	opts    Options
	log     *slog.Logger
	latency *prometheus.HistogramVec
	router  chi.Router
}

// New builds the REST API. admin (metrics, health) is mounted as is.
func New(reg *registry.Registry, opts Options, log *slog.Logger, metrics prometheus.Registerer, admin http.Handler) *Server {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 2 << 20
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	s := &Server{reg: reg, opts: opts, log: log}
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_schema_registry_http_request_duration_seconds",
		Help:    "REST request latency by route, method and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method", "code"})
	if metrics != nil {
		metrics.MustRegister(s.latency)
	}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &registry.Error{Status: http.StatusNotFound, Code: registry.CodeRouteNotFound, Message: "HTTP 404 Not Found"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &registry.Error{Status: http.StatusMethodNotAllowed, Code: registry.CodeMethodNotAllowed, Message: "HTTP 405 Method Not Allowed"})
	})
	if admin != nil {
		r.Handle("/metrics", admin)
		r.Handle("/healthz", admin)
		r.Handle("/readyz", admin)
	}
	r.Group(func(r chi.Router) {
		r.Use(s.observe)
		if opts.Auth != nil {
			r.Use(opts.Auth.middleware)
		}
		r.Get("/", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, map[string]any{}) })
		r.Get("/subjects", s.listSubjects)
		r.Post("/subjects/{subject}", s.lookup)
		r.Delete("/subjects/{subject}", s.deleteSubject)
		r.Get("/subjects/{subject}/versions", s.listVersions)
		r.Post("/subjects/{subject}/versions", s.register)
		r.Get("/subjects/{subject}/versions/{version}", s.getVersion)
		r.Delete("/subjects/{subject}/versions/{version}", s.deleteVersion)
		r.Get("/subjects/{subject}/versions/{version}/schema", s.getVersionSchema)
		r.Get("/subjects/{subject}/versions/{version}/referencedby", s.referencedBy)
		r.Get("/schemas", s.listSchemas)
		r.Get("/schemas/types", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, []string{"AVRO"}) })
		r.Get("/schemas/ids/{id}", s.schemaByID)
		r.Get("/schemas/ids/{id}/schema", s.schemaTextByID)
		r.Get("/schemas/ids/{id}/subjects", s.subjectsByID)
		r.Get("/schemas/ids/{id}/versions", s.versionsByID)
		r.Post("/compatibility/subjects/{subject}/versions", s.compatAll)
		r.Post("/compatibility/subjects/{subject}/versions/{version}", s.compatVersion)
		r.Get("/config", s.getConfig)
		r.Put("/config", s.putConfig)
		r.Delete("/config", s.deleteConfig)
		r.Get("/config/{subject}", s.getConfig)
		r.Put("/config/{subject}", s.putConfig)
		r.Delete("/config/{subject}", s.deleteConfig)
		r.Get("/mode", s.getMode)
		r.Put("/mode", s.putMode)
		r.Delete("/mode", s.deleteMode)
		r.Get("/mode/{subject}", s.getMode)
		r.Put("/mode/{subject}", s.putMode)
		r.Delete("/mode/{subject}", s.deleteMode)
	})
	s.router = r
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first status written.
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		if r.Method != http.MethodGet {
			// Reads are served from memory; only writes wait on Kafka.
			ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
			if r.Body != nil {
				r.Body = http.MaxBytesReader(rec, r.Body, s.opts.MaxRequestBytes)
			}
		}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		s.latency.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
		if rec.status >= 500 {
			s.log.Warn("request failed", "route", route, "method", r.Method, "status", rec.status, "duration", time.Since(start))
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var re *registry.Error
	if !errors.As(err, &re) {
		re = registry.ErrStore(err)
	}
	writeJSON(w, re.Status, map[string]any{"error_code": re.Code, "message": re.Message})
}

// param returns a path parameter, unescaped (subjects may hold %2F).
func param(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

func boolQuery(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, registry.ErrBadRequest("query parameter %q must be true or false, got %q", name, v)
	}
	return b, nil
}

var bodyTypes = map[string]bool{
	"application/vnd.schemaregistry.v1+json": true,
	"application/vnd.schemaregistry+json":    true,
	"application/json":                       true,
	"application/octet-stream":               true,
}

// decode reads a JSON body into v, with errors that name the problem.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !bodyTypes[mt] {
			return &registry.Error{Status: http.StatusUnsupportedMediaType, Code: registry.CodeUnsupportedMediaType, Message: fmt.Sprintf("Content-Type %q is not supported; use application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json or application/json", ct)}
		}
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &registry.Error{Status: http.StatusRequestEntityTooLarge, Code: registry.CodeRequestEntityTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
		}
		if errors.Is(err, io.EOF) {
			return &registry.Error{Status: http.StatusUnprocessableEntity, Code: registry.CodeInvalidRequestEncoding, Message: "request body is empty; a JSON object is required"}
		}
		return &registry.Error{Status: http.StatusUnprocessableEntity, Code: registry.CodeInvalidRequestEncoding, Message: "request body is not valid JSON for this endpoint: " + err.Error()}
	}
	return nil
}

type schemaRequest struct {
	Schema     string               `json:"schema"`
	SchemaType string               `json:"schemaType,omitempty"`
	References []registry.Reference `json:"references,omitempty"`
	ID         json.Number          `json:"id,omitempty"` // any number, so an id out of range is named in the answer
	Version    int64                `json:"version,omitempty"`
}

// schemaID reads the "id" field: the id and the text as written. A number
// that is not an int64 (a fraction, or too large) becomes an id out of
// range with the sign it had.
func schemaID(n json.Number) (int64, string) {
	if n == "" {
		return 0, ""
	}
	if id, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return id, string(n)
	}
	if strings.HasPrefix(string(n), "-") {
		return math.MinInt64, string(n)
	}
	return math.MaxInt64, string(n)
}

func (s *Server) schemaInput(r *http.Request) (registry.SchemaInput, error) {
	var req schemaRequest
	if err := decode(r, &req); err != nil {
		return registry.SchemaInput{}, err
	}
	if req.Schema == "" {
		return registry.SchemaInput{}, registry.ErrInvalidSchema("field \"schema\" is required and must be a non-empty string")
	}
	norm, err := boolQuery(r, "normalize")
	if err != nil {
		return registry.SchemaInput{}, err
	}
	id, rawID := schemaID(req.ID)
	return registry.SchemaInput{Schema: req.Schema, SchemaType: req.SchemaType, References: req.References, Normalize: norm, ID: id, RawID: rawID, Version: req.Version}, nil
}

// subjectVersionJSON is Confluent's shape of one subject version.
type subjectVersionJSON struct {
	Subject    string               `json:"subject"`
	Version    int                  `json:"version"`
	ID         int                  `json:"id"`
	SchemaType string               `json:"schemaType,omitempty"`
	References []registry.Reference `json:"references,omitempty"`
	Schema     string               `json:"schema"`
	Deleted    bool                 `json:"deleted,omitempty"`
}

func toJSON(v registry.Registered) subjectVersionJSON {
	t := v.SchemaType
	if t == "AVRO" {
		t = ""
	}
	return subjectVersionJSON{Subject: v.Subject, Version: v.Version, ID: v.ID, SchemaType: t, References: v.References, Schema: v.Schema, Deleted: v.Deleted}
}

func (s *Server) listSubjects(w http.ResponseWriter, r *http.Request) {
	deleted, err := boolQuery(r, "deleted")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.reg.State().Subjects(deleted, r.URL.Query().Get("subjectPrefix")))
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) {
	subject := param(r, "subject")
	deleted, err := boolQuery(r, "deleted")
	if err != nil {
		writeError(w, err)
		return
	}
	vs := s.reg.State().Versions(subject, deleted)
	if len(vs) == 0 {
		writeError(w, registry.ErrSubjectNotFound(subject))
		return
	}
	out := make([]int, len(vs))
	for i, v := range vs {
		out[i] = v.Version
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	in, err := s.schemaInput(r)
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.reg.Register(r.Context(), param(r, "subject"), in)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"id": v.ID})
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	in, err := s.schemaInput(r)
	if err != nil {
		writeError(w, err)
		return
	}
	deleted, err := boolQuery(r, "deleted")
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.reg.Lookup(r.Context(), param(r, "subject"), in, deleted)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(v))
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	deleted, err := boolQuery(r, "deleted")
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.reg.GetVersion(param(r, "subject"), param(r, "version"), deleted)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(v))
}

func (s *Server) getVersionSchema(w http.ResponseWriter, r *http.Request) {
	deleted, err := boolQuery(r, "deleted")
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.reg.GetVersion(param(r, "subject"), param(r, "version"), deleted)
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, v.Schema)
}

func writeRaw(w http.ResponseWriter, schema string) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, schema)
}

func (s *Server) referencedBy(w http.ResponseWriter, r *http.Request) {
	v, err := s.reg.GetVersion(param(r, "subject"), param(r, "version"), true)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.reg.State().ReferencedBy(v.Subject, v.Version))
}

func (s *Server) deleteVersion(w http.ResponseWriter, r *http.Request) {
	permanent, err := boolQuery(r, "permanent")
	if err != nil {
		writeError(w, err)
		return
	}
	n, err := s.reg.DeleteVersion(r.Context(), param(r, "subject"), param(r, "version"), permanent)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *Server) deleteSubject(w http.ResponseWriter, r *http.Request) {
	permanent, err := boolQuery(r, "permanent")
	if err != nil {
		writeError(w, err)
		return
	}
	vs, err := s.reg.DeleteSubject(r.Context(), param(r, "subject"), permanent)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, vs)
}

func (s *Server) idParam(r *http.Request) (int, error) {
	raw := param(r, "id")
	id, err := strconv.Atoi(raw)
	if err != nil || id < 0 {
		return 0, registry.ErrSchemaNotFound(strconv.Quote(raw))
	}
	return id, nil
}

func (s *Server) schemaByID(w http.ResponseWriter, r *http.Request) {
	id, err := s.idParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	sc, ok := s.reg.State().SchemaByID(id)
	if !ok {
		writeError(w, registry.ErrSchemaNotFound(strconv.Itoa(id)))
		return
	}
	// "subject" names a schema context in Confluent (clients such as the
	// Java deserializer send it); there is one context here, and ids are
	// global, so it does not filter.
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(sc.ByIDJSON)
}

func (s *Server) schemaTextByID(w http.ResponseWriter, r *http.Request) {
	id, err := s.idParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	sc, ok := s.reg.State().SchemaByID(id)
	if !ok {
		writeError(w, registry.ErrSchemaNotFound(strconv.Itoa(id)))
		return
	}
	writeRaw(w, sc.Schema)
}

func (s *Server) usesOf(w http.ResponseWriter, r *http.Request) ([]store.Version, bool) {
	id, err := s.idParam(r)
	if err != nil {
		writeError(w, err)
		return nil, false
	}
	deleted, err := boolQuery(r, "deleted")
	if err != nil {
		writeError(w, err)
		return nil, false
	}
	if _, ok := s.reg.State().SchemaByID(id); !ok {
		writeError(w, registry.ErrSchemaNotFound(strconv.Itoa(id)))
		return nil, false
	}
	return s.reg.State().UsesOf(id, deleted), true
}

func (s *Server) subjectsByID(w http.ResponseWriter, r *http.Request) {
	uses, ok := s.usesOf(w, r)
	if !ok {
		return
	}
	out := []string{}
	for _, u := range uses {
		if len(out) == 0 || out[len(out)-1] != u.Subject {
			out = append(out, u.Subject)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) versionsByID(w http.ResponseWriter, r *http.Request) {
	uses, ok := s.usesOf(w, r)
	if !ok {
		return
	}
	type sv struct {
		Subject string `json:"subject"`
		Version int    `json:"version"`
	}
	out := make([]sv, len(uses))
	for i, u := range uses {
		out[i] = sv{u.Subject, u.Version}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listSchemas(w http.ResponseWriter, r *http.Request) {
	deleted, err := boolQuery(r, "deleted")
	if err != nil {
		writeError(w, err)
		return
	}
	latestOnly, err := boolQuery(r, "latestOnly")
	if err != nil {
		writeError(w, err)
		return
	}
	prefix := r.URL.Query().Get("subjectPrefix")
	out := []subjectVersionJSON{}
	all := s.reg.State().AllVersions(deleted)
	for i, v := range all {
		if !strings.HasPrefix(v.Subject, prefix) {
			continue
		}
		if latestOnly && i+1 < len(all) && all[i+1].Subject == v.Subject {
			continue
		}
		out = append(out, toJSON(registry.Registered{Subject: v.Subject, Version: v.Version, ID: v.ID, SchemaType: v.Schema.Type, Schema: v.Schema.Schema, References: v.Schema.References, Deleted: v.Deleted}))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) compat(w http.ResponseWriter, r *http.Request, version string) {
	in, err := s.schemaInput(r)
	if err != nil {
		writeError(w, err)
		return
	}
	verbose, err := boolQuery(r, "verbose")
	if err != nil {
		writeError(w, err)
		return
	}
	ok, msgs, err := s.reg.CheckCompatibility(r.Context(), param(r, "subject"), version, in)
	if err != nil {
		writeError(w, err)
		return
	}
	out := map[string]any{"is_compatible": ok}
	if verbose {
		if msgs == nil {
			msgs = []string{}
		}
		out["messages"] = msgs
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) compatAll(w http.ResponseWriter, r *http.Request) { s.compat(w, r, "") }

func (s *Server) compatVersion(w http.ResponseWriter, r *http.Request) {
	s.compat(w, r, param(r, "version"))
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	dtg, err := boolQuery(r, "defaultToGlobal")
	if err != nil {
		writeError(w, err)
		return
	}
	lvl, err := s.reg.GetConfig(param(r, "subject"), dtg)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"compatibilityLevel": lvl})
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Compatibility *string `json:"compatibility"`
	}
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Compatibility == nil {
		writeError(w, &registry.Error{Status: http.StatusUnprocessableEntity, Code: registry.CodeInvalidCompatibility, Message: "field \"compatibility\" is required"})
		return
	}
	lvl, err := s.reg.SetConfig(r.Context(), param(r, "subject"), *req.Compatibility)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"compatibility": lvl})
}

func (s *Server) deleteConfig(w http.ResponseWriter, r *http.Request) {
	prev, err := s.reg.DeleteConfig(r.Context(), param(r, "subject"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"compatibilityLevel": prev})
}

func (s *Server) getMode(w http.ResponseWriter, r *http.Request) {
	dtg, err := boolQuery(r, "defaultToGlobal")
	if err != nil {
		writeError(w, err)
		return
	}
	m, err := s.reg.GetMode(param(r, "subject"), dtg)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"mode": m})
}

func (s *Server) putMode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Mode *string `json:"mode"`
	}
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Mode == nil {
		writeError(w, &registry.Error{Status: http.StatusUnprocessableEntity, Code: registry.CodeInvalidMode, Message: "field \"mode\" is required"})
		return
	}
	force, err := boolQuery(r, "force")
	if err != nil {
		writeError(w, err)
		return
	}
	m, err := s.reg.SetMode(r.Context(), param(r, "subject"), *req.Mode, force)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"mode": m})
}

func (s *Server) deleteMode(w http.ResponseWriter, r *http.Request) {
	prev, err := s.reg.DeleteMode(r.Context(), param(r, "subject"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"mode": prev})
}
