package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// Options are the lifecycle settings every service shares.
type Options struct {
	LogLevel        string        `env:"LOG_LEVEL" default:"info" help:"debug, info, warn or error"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" default:"30s" help:"upper bound on draining, flushing and committing after SIGTERM"`
	ShutdownDelay   time.Duration `env:"SHUTDOWN_DELAY" default:"0s" help:"how long /readyz answers 503 before draining starts, so load balancers stop routing first"`
}

// Validate checks the shared lifecycle settings.
func (o *Options) Validate() error {
	if _, err := ParseLevel(o.LogLevel); err != nil {
		return Invalid("LOG_LEVEL", "%v", err)
	}
	if o.ShutdownTimeout <= 0 {
		return Invalid("SHUTDOWN_TIMEOUT", "must be positive, got %s", o.ShutdownTimeout)
	}
	if o.ShutdownDelay < 0 || o.ShutdownDelay >= o.ShutdownTimeout {
		return Invalid("SHUTDOWN_DELAY", "must be >= 0 and below SHUTDOWN_TIMEOUT (%s), got %s", o.ShutdownTimeout, o.ShutdownDelay)
	}
	return nil
}

// ParseLevel maps a level name to slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
	}
	return l, nil
}

// NewLogger returns a JSON slog logger writing to w, tagged with the service name.
func NewLogger(w io.Writer, service, level string) *slog.Logger {
	l, err := ParseLevel(level)
	if err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("service", service)
}

// CheckFunc reports whether one dependency answers; nil means healthy.
type CheckFunc func(ctx context.Context) error

type namedFunc struct {
	name string
	fn   func(ctx context.Context) error
}

// App runs a service's components and shuts them down in order.
type App struct {
	name    string
	opts    Options
	log     *slog.Logger
	metrics *prometheus.Registry

	mu       sync.Mutex
	checks   []namedFunc
	runs     []namedFunc
	stops    []namedFunc
	closers  []namedFunc
	stopping atomic.Bool
}

// New builds an App with its own Prometheus registry (Go and process
// collectors and sluice_build_info included) and the given logger.
func New(name string, opts Options, log *slog.Logger) *App {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), NewBuildInfo())
	return &App{name: name, opts: opts, log: log, metrics: reg}
}

// Name is the service name.
func (a *App) Name() string { return a.name }

// Logger is the service logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Metrics is the service's registry; register collectors here, never globally.
func (a *App) Metrics() *prometheus.Registry { return a.metrics }

// Stopping reports whether shutdown has begun.
func (a *App) Stopping() bool { return a.stopping.Load() }

// ReadyCheck adds a dependency check that /readyz runs.
func (a *App) ReadyCheck(name string, fn CheckFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = append(a.checks, namedFunc{name, fn})
}

// Go adds a component. fn runs until its context is cancelled, which
// happens after every OnStop hook has run. A component that returns early
// (error or not) starts shutdown of the whole process.
func (a *App) Go(name string, fn func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.runs = append(a.runs, namedFunc{name, fn})
}

// OnStop adds a shutdown hook; hooks run in the order added, after
// readiness turns 503 and before components' contexts are cancelled. Use it
// to stop accepting work and drain.
func (a *App) OnStop(name string, fn func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stops = append(a.stops, namedFunc{name, fn})
}

// OnClose adds a hook run after every component returned, in reverse order
// added: close clients and files here.
func (a *App) OnClose(name string, fn func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closers = append(a.closers, namedFunc{name, fn})
}

// Run starts every component and blocks until ctx is cancelled (SIGTERM) or
// a component returns; then it shuts down in order: readiness 503, the
// configured delay, OnStop hooks, cancel components and wait, OnClose hooks.
// It returns the first component error, if any.
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	runs := append([]namedFunc(nil), a.runs...)
	a.mu.Unlock()

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	type result struct {
		name string
		err  error
	}
	done := make(chan result, len(runs))
	for _, r := range runs {
		go func() {
			err := r.fn(runCtx)
			done <- result{r.name, err}
		}()
	}
	a.log.Info("service started", "components", len(runs))

	var firstErr error
	remaining := len(runs)
	select {
	case <-ctx.Done():
		a.log.Info("shutdown requested")
	case r := <-done:
		remaining--
		if r.err != nil {
			firstErr = fmt.Errorf("%s: %w", r.name, r.err)
			a.log.Error("component failed, shutting down", "component", r.name, "err", r.err)
		} else {
			a.log.Info("component exited, shutting down", "component", r.name)
		}
	}

	a.stopping.Store(true)
	deadline := time.Now().Add(a.opts.ShutdownTimeout)
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if a.opts.ShutdownDelay > 0 {
		select {
		case <-time.After(a.opts.ShutdownDelay):
		case <-sctx.Done():
		}
	}
	a.mu.Lock()
	stops := append([]namedFunc(nil), a.stops...)
	closers := append([]namedFunc(nil), a.closers...)
	a.mu.Unlock()
	for _, s := range stops {
		if err := s.fn(sctx); err != nil {
			a.log.Error("stop hook failed", "hook", s.name, "err", err)
			firstErr = errors.Join(firstErr, fmt.Errorf("stopping %s: %w", s.name, err))
		}
	}
	cancelRun()
	for remaining > 0 {
		select {
		case r := <-done:
			remaining--
			if r.err != nil && !errors.Is(r.err, context.Canceled) {
				a.log.Error("component returned error during shutdown", "component", r.name, "err", r.err)
				firstErr = errors.Join(firstErr, fmt.Errorf("%s: %w", r.name, r.err))
			}
		case <-sctx.Done():
			a.log.Error("shutdown timed out waiting for components", "remaining", remaining)
			firstErr = errors.Join(firstErr, fmt.Errorf("shutdown timed out after %s with %d components still running", a.opts.ShutdownTimeout, remaining))
			remaining = 0
		}
	}
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i].fn(sctx); err != nil {
			a.log.Error("close hook failed", "hook", closers[i].name, "err", err)
		}
	}
	a.log.Info("service stopped", "err", firstErr)
	return firstErr
}

// AdminRoutes returns the handler for /metrics, /healthz and /readyz, for
// services that mount it on their own router.
func (a *App) AdminRoutes() http.Handler {
	mux := http.NewServeMux()
	a.MountAdmin(mux)
	return mux
}

// MountAdmin registers /metrics, /healthz and /readyz on mux.
func (a *App) MountAdmin(mux interface {
	Handle(string, http.Handler)
}) {
	mux.Handle("/metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{Registry: a.metrics}))
	mux.Handle("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	}))
	mux.Handle("/readyz", http.HandlerFunc(a.serveReady))
}

func (a *App) serveReady(w http.ResponseWriter, r *http.Request) {
	if a.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "shutting down"})
		return
	}
	a.mu.Lock()
	checks := append([]namedFunc(nil), a.checks...)
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	results := make([]string, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.fn(ctx); err != nil {
				results[i] = err.Error()
			}
		}()
	}
	wg.Wait()
	status, out := http.StatusOK, map[string]string{}
	for i, c := range checks {
		if results[i] != "" {
			status = http.StatusServiceUnavailable
			out[c.name] = results[i]
		} else {
			out[c.name] = "ok"
		}
	}
	word := "ok"
	if status != http.StatusOK {
		word = "not ready"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": out})
}

// ServeHTTP runs srv on ln as a component; on shutdown it stops accepting
// and waits for in-flight requests (http.Server.Shutdown).
func (a *App) ServeHTTP(name string, srv *http.Server, ln net.Listener) {
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = 10 * time.Second
	}
	a.Go(name, func(context.Context) error {
		a.log.Info("listening", "listener", name, "addr", ln.Addr().String())
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving %s on %s: %w", name, ln.Addr(), err)
		}
		return nil
	})
	a.OnStop(name, func(ctx context.Context) error {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
			return fmt.Errorf("draining %s: %w", name, err)
		}
		return nil
	})
}

// ServeGRPC runs gs on ln as a component; on shutdown it drains with
// GracefulStop, falling back to Stop when the shutdown deadline passes.
func (a *App) ServeGRPC(name string, gs *grpc.Server, ln net.Listener) {
	a.Go(name, func(context.Context) error {
		a.log.Info("listening", "listener", name, "addr", ln.Addr().String())
		if err := gs.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serving %s on %s: %w", name, ln.Addr(), err)
		}
		return nil
	})
	a.OnStop(name, func(ctx context.Context) error {
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			gs.Stop()
			return fmt.Errorf("draining %s: %w", name, ctx.Err())
		}
	})
}

// Listen opens a TCP listener, naming the address in the error so a taken
// port is obvious.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (is the port taken?): %w", addr, err)
	}
	return ln, nil
}

// AdminServer is an http.Server serving only the admin routes, for services
// without an API listener of their own.
func AdminServer(a *App) *http.Server {
	return &http.Server{Handler: a.AdminRoutes(), ReadHeaderTimeout: 10 * time.Second}
}
