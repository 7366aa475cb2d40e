// Package httpapi serves the gateway's HTTP APIs: the native
// /v1/topics/{topic}/records (JSON batches and NDJSON streams), and
// Confluent REST Proxy v2 and v3 compatible produce endpoints.
package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/services/ingest-gateway/internal/auth"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// Options are the HTTP limits.
type Options struct {
	MaxRequestBytes int64
	MaxRecordBytes  int
	MaxRecords      int
	StreamChunk     int
	RetryAfter      time.Duration
	ClusterID       string
	BodyTimeout     time.Duration // deadline for reading a non-streamed body
}

// Server holds the handlers' dependencies.
type Server struct {
	eng  *gateway.Engine
	keys *auth.Keys // nil: no authentication
	opt  Options
	log  *slog.Logger

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New builds the server and registers its metrics.
func New(eng *gateway.Engine, keys *auth.Keys, opt Options, log *slog.Logger, reg prometheus.Registerer) *Server {
	s := &Server{
		eng: eng, keys: keys, opt: opt, log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_gateway_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
	}
	reg.MustRegister(s.requests, s.duration)
	return s
}

// Handler returns the router; admin mounts /metrics, /healthz and /readyz.
func (s *Server) Handler(admin func(interface{ Handle(string, http.Handler) })) http.Handler {
	r := chi.NewRouter()
	r.Use(s.instrument)
	if admin != nil {
		admin(r)
	}
	r.Post("/v1/topics/{topic}/records", s.native)
	r.Post("/topics/{topic}", s.v2)
	r.Post("/topics/{topic}/partitions/{partition}", s.v2)
	r.Post("/v3/clusters/{cluster}/topics/{topic}/records", s.v3)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Code: 404, Message: "HTTP 404 Not Found"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Code: 405, Message: "HTTP 405 Method Not Allowed"})
	})
	return r
}

// recorder captures the status; Unwrap keeps Flush and full duplex working.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		route := "other"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		s.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		s.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type errorBody struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error_code":50001,"message":"encoding response failed"}`)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// fail writes a request-level error with the native code.
func (s *Server) fail(w http.ResponseWriter, e *gateway.Error) {
	s.eng.Metrics().Rejected.WithLabelValues(gateway.RejectReason(e.Kind)).Inc()
	if e.Kind.Retryable() {
		w.Header().Set("Retry-After", gateway.RetryAfterSeconds(s.opt.RetryAfter))
	}
	writeJSON(w, e.Kind.Status(), errorBody{Code: e.Kind.Code(), Message: e.Message})
}

// authorize checks the API key for topic; the key is nil when
// authentication is off.
func (s *Server) authorize(r *http.Request, topic string) (*auth.Key, *gateway.Error) {
	if s.keys == nil {
		return nil, s.eng.TopicError(topic)
	}
	hs := r.Header.Values("Authorization")
	if len(hs) > 1 {
		return nil, gateway.Errorf(gateway.KindUnauthorized, "%d Authorization headers: send exactly one", len(hs))
	}
	key, err := s.keys.Authenticate(r.Header.Get("Authorization"))
	if err != nil {
		return nil, gateway.Errorf(gateway.KindUnauthorized, "%v", err)
	}
	if terr := s.eng.TopicError(topic); terr != nil {
		return nil, terr
	}
	if !key.AllowsTopic(topic) {
		return nil, gateway.Errorf(gateway.KindForbidden, "API key %s may not produce to topic %s", key.ID, topic)
	}
	return key, nil
}

// abandonBody is called by a full-duplex stream handler that stopped
// reading its request body before the end (a revoked key, an exhausted
// budget, a JSON syntax error). It discards what is left, up to
// maxDrainBytes within a second, so the connection can be reused; a body
// that goes on is cut off with a past read deadline, so the server closes
// the connection rather than reading the rest as a new request. (net/http
// drains a full-duplex body only after the handler returned, where hitting
// its end restarts the connection's background read and the next request
// on the connection panics with "invalid concurrent Body.Read call".)
func abandonBody(rc *http.ResponseController, body io.Reader) {
	_ = rc.SetReadDeadline(time.Now().Add(time.Second))
	n, err := io.CopyN(io.Discard, body, maxDrainBytes)
	if err == io.EOF && n < maxDrainBytes {
		return
	}
	_ = rc.SetReadDeadline(time.Now().Add(-time.Second))
}

const maxDrainBytes = 256 << 10

// streamAuth re-checks a long-lived stream's key before each record: the
// keys file is reloaded every GATEWAY_API_KEYS_RELOAD, and a key removed
// from it (or no longer allowed the topic) must stop being accepted. Its
// zero value (authentication off) accepts everything.
type streamAuth struct {
	sess  *auth.Session
	topic string
}

func (s *Server) streamAuth(r *http.Request, topic string) streamAuth {
	if s.keys == nil {
		return streamAuth{}
	}
	// The request was authenticated already; a failure here means the
	// key was revoked in between, which check reports.
	sess, err := s.keys.Session(r.Header.Get("Authorization"))
	if err != nil {
		sess = nil
	}
	return streamAuth{sess: sess, topic: topic}
}

// check returns the error that ends the stream, or nil; key is the
// current key for rate limiting.
func (a *streamAuth) check(s *Server) (*auth.Key, *gateway.Error) {
	if s.keys == nil {
		return nil, nil
	}
	if a.sess == nil {
		return nil, gateway.Errorf(gateway.KindUnauthorized, "%v", auth.ErrRevoked)
	}
	key, err := a.sess.Key()
	if err != nil {
		return nil, gateway.Errorf(gateway.KindUnauthorized, "%v", err)
	}
	if !key.AllowsTopic(a.topic) {
		return nil, gateway.Errorf(gateway.KindForbidden, "API key %s may no longer produce to topic %s", key.ID, a.topic)
	}
	return key, nil
}

// allow applies the key's rate limit to a batch of n records.
func allow(key *auth.Key, n int) *gateway.Error {
	if key == nil || key.Allow(n) {
		return nil
	}
	return gateway.Errorf(gateway.KindRateLimited, "API key %s is over its limit of %g records/s; retry later", key.ID, key.RateLimit())
}

// wait applies the key's rate limit to one streamed record.
func wait(ctx context.Context, key *auth.Key) {
	if key != nil {
		_ = key.Wait(ctx, 1)
	}
}

// readBody reads a whole (non-streamed) body under the request limit. Its
// bytes are reserved from the in-flight budget before they are read: the
// Content-Length up front, or, for a chunked body of unknown length, each
// growth of the buffer before the buffer grows, so a body the budget
// cannot hold is refused (429) while it is still arriving.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *gateway.Hold, *gateway.Error) {
	if s.opt.BodyTimeout > 0 {
		// A client trickling its body must not hold budget forever.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.opt.BodyTimeout))
	}
	if r.ContentLength > s.opt.MaxRequestBytes {
		return nil, nil, gateway.Errorf(gateway.KindRequestTooLarge, "request body of %d bytes is over the limit of %d", r.ContentLength, s.opt.MaxRequestBytes)
	}
	var hold *gateway.Hold
	var buf []byte
	if r.ContentLength >= 0 {
		h, err := s.eng.Reserve(r.ContentLength + 1)
		if err != nil {
			return nil, nil, err
		}
		hold, buf = h, getBuf(r.ContentLength+1)
	} else {
		hold = s.eng.NewHold()
		if err := hold.Grow(chunkedStep); err != nil {
			return nil, nil, err
		}
		buf = make([]byte, 0, chunkedStep)
	}
	buf, rerr, gerr := readAllBudget(buf, io.LimitReader(r.Body, s.opt.MaxRequestBytes+1), hold, s.opt.MaxRequestBytes+1)
	n := int64(len(buf))
	switch {
	case gerr != nil:
		putBuf(buf)
		hold.Release()
		return nil, nil, gerr
	case rerr != nil:
		putBuf(buf)
		hold.Release()
		return nil, nil, gateway.Errorf(gateway.KindBadRequest, "reading request body: %v", rerr)
	case n > s.opt.MaxRequestBytes:
		putBuf(buf)
		hold.Release()
		return nil, nil, gateway.Errorf(gateway.KindRequestTooLarge, "request body is over the limit of %d bytes", s.opt.MaxRequestBytes)
	}
	return buf, hold, nil
}

// chunkedStep is the first buffer (and budget) of a body of unknown length.
const chunkedStep = 32 << 10

// readAllBudget appends r's content to buf, growing it only when full:
// sized from Content-Length (plus the byte that detects EOF), a body is
// read without copying. Each growth (doubling, capped at limit) is first
// reserved on hold; gerr is the refusal when the budget cannot take it.
func readAllBudget(buf []byte, r io.Reader, hold *gateway.Hold, limit int64) (_ []byte, rerr error, gerr *gateway.Error) {
	for {
		if len(buf) == cap(buf) {
			grow := min(max(int64(cap(buf)), chunkedStep), limit-int64(cap(buf)))
			if grow <= 0 {
				grow = 1 // one byte past the limit tells an oversize body
			}
			if gerr := hold.Grow(grow); gerr != nil {
				return buf, nil, gerr
			}
			nb := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(nb, buf)
			putBuf(buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil, nil
		}
		if err != nil {
			return buf, err, nil
		}
	}
}

// mediaType returns the lower-cased media type without parameters.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// streamWriter writes result lines, flushing after each chunk of results.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	status  int
	buf     []byte
}

func (sw *streamWriter) start() {
	if !sw.started {
		sw.started = true
		sw.w.WriteHeader(sw.status)
	}
}

func (sw *streamWriter) flush() error {
	sw.start()
	if len(sw.buf) == 0 {
		return nil
	}
	if _, err := sw.w.Write(sw.buf); err != nil {
		return err
	}
	sw.buf = sw.buf[:0]
	return sw.rc.Flush()
}

// lineReader yields lines of at most max bytes; longer lines are reported
// as too long and skipped, so one bad line does not end the stream. Each
// piece of a line is reserved (reserve, if set) before it is copied into
// the line, so a stream's memory counts against the budget before it
// grows.
type lineReader struct {
	r       *bufio.Reader
	max     int
	reserve func(n int) *gateway.Error
}

var errLineTooLong = errors.New("line too long")

// budgetError is a lineReader refusal: the budget stayed exhausted.
type budgetError struct{ e *gateway.Error }

func (b budgetError) Error() string { return b.e.Message }

func (l *lineReader) next() ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > l.max {
				tooLong, line = true, nil
			} else {
				if l.reserve != nil && len(chunk) > 0 {
					if gerr := l.reserve(len(chunk)); gerr != nil {
						return nil, budgetError{gerr}
					}
				}
				line = append(line, chunk...)
			}
		}
		if err == nil || (errors.Is(err, io.EOF) && (len(line) > 0 || tooLong)) {
			if tooLong {
				return nil, errLineTooLong
			}
			return bytes.TrimSpace(line), nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return nil, err
	}
}
