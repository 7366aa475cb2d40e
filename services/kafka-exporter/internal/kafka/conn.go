package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/apiversions"
	"github.com/segmentio/kafka-go/protocol/saslauthenticate"
	"github.com/segmentio/kafka-go/protocol/saslhandshake"
	"github.com/segmentio/kafka-go/sasl"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
)

// Options tune the client; zero values take defaults.
type Options struct {
	// ConnsPerBroker bounds the connections (and so the requests in flight)
	// to one broker. Default 4.
	ConnsPerBroker int
	// RequestTimeout bounds one request/response exchange. Default 10s.
	RequestTimeout time.Duration
}

// Client sends admin requests to the broker of our choosing. It is safe for
// concurrent use.
type Client struct {
	bootstrap []string
	clientID  string
	dial      time.Duration
	tls       *tls.Config
	mech      sasl.Mechanism
	opts      Options

	mu    sync.Mutex
	pools map[string]*pool
}

type pool struct {
	sem  chan struct{}
	mu   sync.Mutex
	idle []*protocol.Conn
}

// New builds a Client from the shared KAFKA_* configuration.
func New(cfg skafka.Config, o Options) (*Client, error) {
	if o.ConnsPerBroker <= 0 {
		o.ConnsPerBroker = 4
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	mech, err := cfg.Mechanism()
	if err != nil {
		return nil, err
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = 10 * time.Second
	}
	return &Client{
		bootstrap: append([]string(nil), cfg.Brokers...),
		clientID:  cfg.ClientID,
		dial:      dial,
		tls:       tc,
		mech:      mech,
		opts:      o,
		pools:     map[string]*pool{},
	}, nil
}

// Bootstrap returns the configured bootstrap addresses.
func (c *Client) Bootstrap() []string { return append([]string(nil), c.bootstrap...) }

// Close closes every idle connection. In-flight requests finish on their
// own connections, which are closed when returned.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pools {
		p.mu.Lock()
		for _, pc := range p.idle {
			_ = pc.Close()
		}
		p.idle = nil
		p.mu.Unlock()
	}
}

func (c *Client) pool(addr string) *pool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pools[addr]
	if p == nil {
		p = &pool{sem: make(chan struct{}, c.opts.ConnsPerBroker)}
		c.pools[addr] = p
	}
	return p
}

// RoundTrip sends msg to the broker at addr and returns its response. At
// most ConnsPerBroker requests are in flight per broker; callers beyond
// that wait (or give up with ctx). A request that fails on its connection
// (a pooled connection the broker closed, a reset while connecting) is
// retried once on a new connection: every request the exporter sends is a
// read, so a retry is safe.
func (c *Client) RoundTrip(ctx context.Context, addr string, msg protocol.Message) (protocol.Message, error) {
	res, err := c.roundTrip(ctx, addr, msg)
	if err != nil && ctx.Err() == nil {
		res, err = c.roundTrip(ctx, addr, msg)
	}
	return res, err
}

func (c *Client) roundTrip(ctx context.Context, addr string, msg protocol.Message) (protocol.Message, error) {
	p := c.pool(addr)
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.sem }()

	p.mu.Lock()
	var pc *protocol.Conn
	if n := len(p.idle); n > 0 {
		pc, p.idle = p.idle[n-1], p.idle[:n-1]
	}
	p.mu.Unlock()
	if pc == nil {
		var err error
		if pc, err = c.connect(ctx, addr); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(c.opts.RequestTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = pc.SetDeadline(deadline)
	// A cancelled ctx interrupts the exchange by moving the deadline.
	stop := context.AfterFunc(ctx, func() { _ = pc.SetDeadline(time.Unix(1, 0)) })
	res, err := pc.RoundTrip(msg)
	stop()
	if err != nil {
		_ = pc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s to %s: %w", apiName(msg), addr, ctx.Err())
		}
		return nil, fmt.Errorf("%s to %s: %w", apiName(msg), addr, err)
	}
	_ = pc.SetDeadline(time.Time{})
	p.mu.Lock()
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
	return res, nil
}

func apiName(msg protocol.Message) string { return msg.ApiKey().String() }

// connect dials addr, wraps TLS, negotiates API versions and authenticates.
func (c *Client) connect(ctx context.Context, addr string) (*protocol.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.dial)
	defer cancel()
	d := net.Dialer{}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing broker %s: %w", addr, err)
	}
	host, portStr, _ := net.SplitHostPort(addr)
	if c.tls != nil {
		tc := c.tls.Clone()
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("TLS handshake with broker %s: %w", addr, err)
		}
		nc = tlsConn
	}
	pc := protocol.NewConn(nc, c.clientID)
	if dl, ok := ctx.Deadline(); ok {
		_ = pc.SetDeadline(dl)
	}
	fail := func(format string, err error) (*protocol.Conn, error) {
		_ = pc.Close()
		return nil, fmt.Errorf(format, addr, err)
	}
	r, err := pc.RoundTrip(new(apiversions.Request))
	if err != nil {
		return fail("api versions from broker %s: %w", err)
	}
	res := r.(*apiversions.Response)
	if res.ErrorCode != 0 {
		return fail("api versions from broker %s: %w", kafkago.Error(res.ErrorCode))
	}
	versions := make(map[protocol.ApiKey]int16, len(res.ApiKeys))
	for _, k := range res.ApiKeys {
		key := protocol.ApiKey(k.ApiKey)
		versions[key] = key.SelectVersion(k.MinVersion, k.MaxVersion)
	}
	pc.SetVersions(versions)
	if c.mech != nil {
		port, _ := strconv.Atoi(portStr)
		sctx := sasl.WithMetadata(ctx, &sasl.Metadata{Host: host, Port: port})
		if err := c.authenticate(sctx, pc); err != nil {
			return fail("SASL with broker %s: %w", err)
		}
	}
	_ = pc.SetDeadline(time.Time{})
	return pc, nil
}

func (c *Client) authenticate(ctx context.Context, pc *protocol.Conn) error {
	m, err := pc.RoundTrip(&saslhandshake.Request{Mechanism: c.mech.Name()})
	if err != nil {
		return err
	}
	if code := m.(*saslhandshake.Response).ErrorCode; code != 0 {
		return kafkago.Error(code)
	}
	sess, state, err := c.mech.Start(ctx)
	if err != nil {
		return err
	}
	for done := false; !done; {
		m, err := pc.RoundTrip(&saslauthenticate.Request{AuthBytes: state})
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return kafkago.SASLAuthenticationFailed
			}
			return err
		}
		res := m.(*saslauthenticate.Response)
		if res.ErrorCode != 0 {
			return fmt.Errorf("%w: %s", kafkago.Error(res.ErrorCode), res.ErrorMessage)
		}
		if done, state, err = sess.Next(ctx, res.AuthBytes); err != nil {
			return err
		}
	}
	return nil
}
