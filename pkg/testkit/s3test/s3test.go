// Package s3test runs an in-process S3 server (versitygw's gateway over its
// posix backend) on 127.0.0.1 with real SigV4 checks, for tests and the dev
// stack.
//
// versitygw's posix backend resolves every bucket and object path relative to
// the process working directory, which it sets to its root directory
// (posix.New calls os.Chdir). So only one Server runs per process at a time:
// Run and Start wait for the previous one to close, and while a Server runs
// the working directory is its data directory. Close restores the previous
// working directory. Tests that read relative paths (testdata/) must resolve
// them to absolute paths before Start, and should not run in parallel with
// another test of the same binary that uses s3test.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/s3api"
	"github.com/versity/versitygw/s3api/middlewares"
)

// Defaults used by Start unless an Option overrides them.
const (
	DefaultAccessKey = "sluice-test-access"
	DefaultSecretKey = "sluice-test-secret-0123456789"
	DefaultRegion    = "us-east-1"
)

// startTimeout bounds how long Start waits for the server slot and the
// listener, so a leaked server fails the test instead of hanging it.
const startTimeout = 2 * time.Minute

// slot is held by the one running Server; see the package comment for why.
var slot = make(chan struct{}, 1)

// Server is a running S3 gateway. Its methods are safe for concurrent use.
type Server struct {
	srv      *s3api.S3ApiServer
	be       *posix.Posix
	endpoint string
	access   string
	secret   string
	region   string
	dir      string
	prevWD   string
	serving  *serving
	tb       testing.TB // nil for servers from Run
	// transport is shared by every client from Client and AWSConfig, so
	// Close can drop their idle connections: the gateway's shutdown waits
	// for every connection it has not served a request on yet, and Go's
	// transport pools a connection whose dial finished after its request
	// was cancelled (a test that cancels a writer mid-request).
	transport *http.Transport

	closeOnce sync.Once
	closing   atomic.Bool
	closeErr  error
}

// Run starts a gateway listening on addr (host:port; port 0 picks a free
// one) that stores buckets as directories under dir, accepting only requests
// signed with accessKey/secretKey. ctx bounds startup only (waiting for a
// previous Server to close, binding the port); stop the server with Close.
func Run(ctx context.Context, addr, dir, accessKey, secretKey, region string) (*Server, error) {
	if accessKey == "" || secretKey == "" {
		return nil, errors.New("s3test: access key and secret key are required")
	}
	if region == "" {
		region = DefaultRegion
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("s3test: parsing listen address %q: %w", addr, err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("s3test: resolving data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("s3test: creating data dir %s: %w", dir, err)
	}
	if err := (meta.XattrMeta{}).Test(dir); err != nil {
		return nil, fmt.Errorf("s3test: data dir %s must support user xattrs (object metadata lives there): %w", dir, err)
	}

	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("s3test: waiting for the previous server in this process to close: %w", ctx.Err())
	}
	s, err := start(ctx, host, port, dir, accessKey, secretKey, region)
	if err != nil {
		<-slot
		return nil, err
	}
	return s, nil
}

// start runs with the slot held.
func start(ctx context.Context, host, port, dir, access, secret, region string) (*Server, error) {
	prevWD, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("s3test: reading working directory: %w", err)
	}
	be, err := posix.New(dir, meta.XattrMeta{}, posix.PosixOpts{})
	if err != nil {
		_ = os.Chdir(prevWD)
		return nil, fmt.Errorf("s3test: opening posix backend at %s: %w", dir, err)
	}
	s := &Server{be: be, access: access, secret: secret, region: region, dir: dir, prevWD: prevWD,
		transport: http.DefaultTransport.(*http.Transport).Clone()}

	// versitygw only listens on address strings and does not report the port
	// it bound, so port 0 is resolved here; another process may grab the
	// port in between, hence the retries.
	attempts := 1
	if port == "0" {
		attempts = 5
	}
	for i := 0; ; i++ {
		p := port
		if port == "0" {
			if p, err = freePort(host); err != nil {
				break
			}
		}
		if err = s.serve(ctx, net.JoinHostPort(host, p)); err == nil {
			return s, nil
		}
		if i+1 >= attempts || ctx.Err() != nil {
			break
		}
	}
	be.Shutdown()
	_ = os.Chdir(prevWD)
	return nil, err
}

// rootOnlyIAM is versitygw's single-account IAM, except that an unknown
// access key is auth.ErrNoSuchUser, which the SigV4 middleware answers with
// S3's 403 InvalidAccessKeyId; the single-account service's own error would
// surface as 404 XAdminUserNotFound.
type rootOnlyIAM struct{ auth.IAMService }

func (r rootOnlyIAM) GetUserAccount(access string) (auth.Account, error) {
	acct, err := r.IAMService.GetUserAccount(access)
	if err != nil {
		return auth.Account{}, auth.ErrNoSuchUser
	}
	return acct, nil
}

// serving is the result of one ServeMultiPort call.
type serving struct {
	done chan struct{} // closed when ServeMultiPort returns
	err  error         // written before done is closed
}

// serve starts the gateway on hostport and waits until it answers HTTP.
// Readiness is an answered request rather than fiber's OnListen hook because
// fasthttp only learns its listener inside Serve, and a Shutdown that comes
// before that is silently lost.
func (s *Server) serve(ctx context.Context, hostport string) error {
	srv, err := s3api.New(s.be,
		middlewares.RootUserConfig{Access: s.access, Secret: s.secret},
		s.region,
		rootOnlyIAM{auth.NewIAMServiceSingle(auth.Account{Access: s.access, Secret: s.secret, Role: auth.RoleAdmin})},
		nil, nil, nil, nil, // no audit logs, admin logs, event notifications or metrics
		s3api.WithQuiet(),
		s3api.WithConcurrencyLimiter(10000, 5000),
		s3api.WithMpMaxParts(10000),
	)
	if err != nil {
		return fmt.Errorf("s3test: creating gateway: %w", err)
	}
	sv := &serving{done: make(chan struct{})}
	go func() {
		sv.err = srv.ServeMultiPort([]string{hostport})
		close(sv.done)
	}()
	endpoint := "http://" + hostport
	probe := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if res, err := probe.Get(endpoint + "/"); err == nil {
			res.Body.Close()
			s.srv, s.serving, s.endpoint = srv, sv, endpoint
			return nil
		}
		select {
		case <-tick.C:
		case <-sv.done:
			return fmt.Errorf("s3test: serving on %s: %w", hostport, sv.err)
		case <-ctx.Done():
			stop(srv, sv)
			return fmt.Errorf("s3test: waiting for gateway on %s: %w", hostport, ctx.Err())
		}
	}
}

// stop shuts the gateway down, repeating the request in case Serve had not
// yet registered its listener when the previous one arrived.
func stop(srv *s3api.S3ApiServer, sv *serving) error {
	for {
		err := srv.ShutDown()
		select {
		case <-sv.done:
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("s3test: finding a free port on %s: %w", host, err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// Close stops the gateway, releases the data directory and restores the
// working directory. Data stays in the directory. Safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		// Drop the clients' idle connections while the gateway shuts
		// down (a request ending meanwhile leaves one more).
		stopped := make(chan struct{})
		go func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				s.transport.CloseIdleConnections()
				select {
				case <-stopped:
					return
				case <-t.C:
				}
			}
		}()
		err := stop(s.srv, s.serving)
		close(stopped)
		if err != nil {
			s.closeErr = fmt.Errorf("s3test: shutting down gateway: %w", err)
		}
		s.be.Shutdown()
		if err := os.Chdir(s.prevWD); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("s3test: restoring working directory %s: %w", s.prevWD, err)
		}
		<-slot
	})
	return s.closeErr
}

// Wait blocks until the gateway stops serving, after Close or on a listener
// failure, and returns the listener error (nil after Close).
func (s *Server) Wait() error {
	<-s.serving.done
	if s.closing.Load() {
		return nil
	}
	return s.serving.err
}

// Endpoint is the base URL, http://127.0.0.1:port.
func (s *Server) Endpoint() string { return s.endpoint }

// AccessKey is the only access key the server accepts.
func (s *Server) AccessKey() string { return s.access }

// SecretKey is the secret for AccessKey.
func (s *Server) SecretKey() string { return s.secret }

// Region is the region requests must be signed for.
func (s *Server) Region() string { return s.region }

// Dir is the data directory: one subdirectory per bucket.
func (s *Server) Dir() string { return s.dir }

// AWSConfig returns an aws-sdk-go-v2 config with static credentials, the
// region and BaseEndpoint pointing at the server. S3 clients built from it
// still need UsePathStyle (see Client).
func (s *Server) AWSConfig() aws.Config {
	return aws.Config{
		Region:       s.region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.access, s.secret, ""),
		BaseEndpoint: aws.String(s.endpoint),
		HTTPClient:   &http.Client{Transport: s.transport},
	}
}

// Client returns a path-style S3 client for the server.
func (s *Server) Client() *s3.Client {
	return s3.NewFromConfig(s.AWSConfig(), func(o *s3.Options) {
		o.UsePathStyle = true
		o.BaseEndpoint = aws.String(s.endpoint)
	})
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(ctx context.Context, name string) error {
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("s3test: creating bucket %s: %w", name, err)
	}
	return nil
}

// CreateBucket creates a bucket or fails the test. Only for servers from
// Start; use MakeBucket otherwise.
func (s *Server) CreateBucket(name string) {
	if s.tb == nil {
		panic("s3test: CreateBucket needs a Server from Start; use MakeBucket")
	}
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(s.tb.Context(), 30*time.Second)
	defer cancel()
	if err := s.MakeBucket(ctx, name); err != nil {
		s.tb.Fatal(err)
	}
}

// Option changes how Start runs the server.
type Option interface{ apply(*config) }

type config struct {
	dir, access, secret, region string
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithDir stores data in dir instead of a fresh t.TempDir(), so a later Start
// with the same dir sees the same buckets and objects.
func WithDir(dir string) Option { return optionFunc(func(c *config) { c.dir = dir }) }

// WithRegion sets the region (default DefaultRegion).
func WithRegion(region string) Option { return optionFunc(func(c *config) { c.region = region }) }

// WithCredentials sets the accepted access key and secret (defaults
// DefaultAccessKey, DefaultSecretKey).
func WithCredentials(accessKey, secretKey string) Option {
	return optionFunc(func(c *config) { c.access, c.secret = accessKey, secretKey })
}

// Start runs a server on 127.0.0.1 with a random port and closes it in
// tb.Cleanup. It waits (bounded) for any other s3test server in the process
// to close first.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	c := config{access: DefaultAccessKey, secret: DefaultSecretKey, region: DefaultRegion}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.dir == "" {
		c.dir = tb.TempDir()
	}
	ctx, cancel := context.WithTimeout(tb.Context(), startTimeout)
	defer cancel()
	s, err := Run(ctx, "127.0.0.1:0", c.dir, c.access, c.secret, c.region)
	if err != nil {
		tb.Fatal(err)
	}
	s.tb = tb
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("closing s3test server: %v", err)
		}
	})
	return s
}
