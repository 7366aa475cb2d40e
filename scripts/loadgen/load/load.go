package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
)

// Schema is the Avro schema of generated records; Register it under
// <topic>-value before sending.
const Schema = `{"type":"record","name":"LoadRecord","namespace":"sluice.loadgen","fields":[` +
	`{"name":"id","type":"string"},{"name":"seq","type":"long"},{"name":"worker","type":"int"},` +
	`{"name":"amount","type":"double"},{"name":"payload","type":"string"},` +
	`{"name":"sent_at","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

// Config says what load to generate.
type Config struct {
	Protocol    string        // "http" or "grpc"
	HTTPURL     string        // gateway base URL, e.g. http://127.0.0.1:8080
	GRPCAddr    string        // gateway gRPC host:port
	Topic       string        // target topic
	APIKey      string        // optional bearer key
	Rate        float64       // records per second across workers; 0 = as fast as possible
	Batch       int           // records per request
	RecordSize  int           // approximate encoded value size in bytes
	Concurrency int           // parallel requests
	Duration    time.Duration // stop after this long (0 = only Count)
	Count       int64         // stop after this many records (0 = only Duration)
	IDPrefix    string        // prefix of record ids (so runs can be told apart)
	Progress    io.Writer     // live progress line every second; nil = none
	// InFlight, if set, counts requests sent and not yet answered (chaos
	// tests kill the gateway while it is above zero).
	InFlight *atomic.Int64
	// OnAck, if set, is called for every record the gateway acknowledged
	// (id, partition, offset), from several goroutines.
	OnAck func(id string, partition int32, offset int64)
}

// Summary is the outcome of a run.
type Summary struct {
	Protocol      string        `json:"protocol"`
	Records       int64         `json:"records"`
	Acked         int64         `json:"acked"`
	Failed        int64         `json:"failed"`
	Requests      int64         `json:"requests"`
	RequestErrors int64         `json:"request_errors"`
	Bytes         int64         `json:"bytes"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	RecordsPerSec float64       `json:"records_per_sec"`
	MBPerSec      float64       `json:"mb_per_sec"`
	P50           time.Duration `json:"p50_ns"`
	P99           time.Duration `json:"p99_ns"`
	FirstError    string        `json:"first_error,omitempty"`
}

func (s Summary) String() string {
	return fmt.Sprintf("%s: %d records (%d acked, %d failed) in %s: %.0f records/s, %.2f MB/s, request p50 %s p99 %s, %d request errors",
		s.Protocol, s.Records, s.Acked, s.Failed, s.Elapsed.Round(time.Millisecond), s.RecordsPerSec, s.MBPerSec,
		s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.RequestErrors)
}

// Validate checks the config before any traffic is sent.
func (c *Config) Validate() error {
	switch c.Protocol {
	case "http":
		if c.HTTPURL == "" {
			return errors.New("-url is required for protocol http")
		}
	case "grpc":
		if c.GRPCAddr == "" {
			return errors.New("-grpc is required for protocol grpc")
		}
	default:
		return fmt.Errorf("-protocol must be http or grpc, got %q", c.Protocol)
	}
	if c.Topic == "" {
		return errors.New("-topic is required")
	}
	if c.Batch <= 0 || c.Concurrency <= 0 || c.RecordSize <= 0 {
		return errors.New("-batch, -concurrency and -record-size must be positive")
	}
	if c.Duration <= 0 && c.Count <= 0 {
		return errors.New("set -duration or -count")
	}
	if c.Rate < 0 {
		return errors.New("-rate must not be negative")
	}
	return nil
}

type sender interface {
	send(ctx context.Context, recs []record) ([]ack, error)
	close()
}

type record struct {
	ID    string
	Value map[string]any
	Size  int
}

type ack struct {
	ok        bool
	partition int32
	offset    int64
	err       string
}

// Run generates load until Duration or Count is reached or ctx ends.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	var snd sender
	var err error
	if cfg.Protocol == "grpc" {
		snd, err = newGRPCSender(cfg)
	} else {
		snd = newHTTPSender(cfg)
	}
	if err != nil {
		return Summary{}, err
	}
	defer snd.close()

	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var (
		issued, acked, failed, reqs, reqErrs, bytesSent atomic.Int64
		lat                                             = &latencies{}
		firstErr                                        atomic.Value
	)
	var tick <-chan time.Time
	if cfg.Rate > 0 {
		interval := time.Duration(float64(time.Second) * float64(cfg.Batch) / cfg.Rate)
		t := time.NewTicker(max(interval, time.Microsecond))
		defer t.Stop()
		tick = t.C
	}
	padding := strings.Repeat("x", max(cfg.RecordSize-60, 1))
	start := time.Now()
	stopProgress := progress(cfg.Progress, start, &acked, &failed, &reqErrs, lat)
	defer stopProgress()

	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var backoff time.Duration
			for ctx.Err() == nil {
				n := int64(cfg.Batch)
				first := issued.Add(n) - n
				if cfg.Count > 0 {
					if first >= cfg.Count {
						return
					}
					n = min(n, cfg.Count-first)
				}
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						issued.Add(-n)
						return
					}
				}
				recs := make([]record, n)
				for i := range recs {
					seq := first + int64(i)
					id := fmt.Sprintf("%s%d", cfg.IDPrefix, seq)
					recs[i] = record{ID: id, Size: cfg.RecordSize, Value: map[string]any{
						"id": id, "seq": seq, "worker": w, "amount": float64(rand.IntN(100000)) / 100,
						"payload": padding, "sent_at": time.Now().UnixMilli(),
					}}
				}
				t0 := time.Now()
				if cfg.InFlight != nil {
					cfg.InFlight.Add(1)
				}
				acks, err := snd.send(ctx, recs)
				if cfg.InFlight != nil {
					cfg.InFlight.Add(-1)
				}
				lat.add(time.Since(t0))
				reqs.Add(1)
				if err != nil {
					if ctx.Err() != nil && cfg.Duration > 0 {
						issued.Add(-n) // cut off by the deadline, not a gateway failure
						return
					}
					reqErrs.Add(1)
					failed.Add(n)
					firstErr.CompareAndSwap(nil, err.Error())
					// Back off like a real client, so an outage does not burn
					// through the run's record budget in a tight loop.
					backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
					select {
					case <-time.After(backoff):
					case <-ctx.Done():
					}
					continue
				}
				backoff = 0
				for i, a := range acks {
					if a.ok {
						acked.Add(1)
						bytesSent.Add(int64(recs[i].Size))
						if cfg.OnAck != nil {
							cfg.OnAck(recs[i].ID, a.partition, a.offset)
						}
					} else {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, a.err)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	s := Summary{
		Protocol: cfg.Protocol, Acked: acked.Load(), Failed: failed.Load(), Requests: reqs.Load(),
		RequestErrors: reqErrs.Load(), Bytes: bytesSent.Load(), Elapsed: elapsed,
	}
	s.Records = s.Acked + s.Failed
	s.RecordsPerSec = float64(s.Acked) / elapsed.Seconds()
	s.MBPerSec = float64(s.Bytes) / 1e6 / elapsed.Seconds()
	s.P50, s.P99 = lat.quantile(0.50), lat.quantile(0.99)
	if v, ok := firstErr.Load().(string); ok {
		s.FirstError = v
	}
	return s, nil
}

// latencies keeps every request latency; runs are bounded so this is small.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

func progress(w io.Writer, start time.Time, acked, failed, reqErrs *atomic.Int64, lat *latencies) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-done:
				fmt.Fprintln(w)
				return
			case <-t.C:
				a := acked.Load()
				fmt.Fprintf(w, "\r%6.0fs  %8d acked  %7d rec/s  p50 %-9s p99 %-9s  %d failed  %d request errors   ",
					time.Since(start).Seconds(), a, a-last, lat.quantile(0.5).Round(time.Microsecond),
					lat.quantile(0.99).Round(time.Microsecond), failed.Load(), reqErrs.Load())
				last = a
			}
		}
	}()
	return func() { close(done) }
}

type httpSender struct {
	cfg    Config
	client *http.Client
}

func newHTTPSender(cfg Config) *httpSender {
	return &httpSender{cfg: cfg, client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: cfg.Concurrency * 2, IdleConnTimeout: 90 * time.Second,
	}}}
}

func (h *httpSender) send(ctx context.Context, recs []record) ([]ack, error) {
	type rec struct {
		Key   string         `json:"key"`
		Value map[string]any `json:"value"`
	}
	body := struct {
		Records []rec `json:"records"`
	}{Records: make([]rec, len(recs))}
	for i, r := range recs {
		body.Records[i] = rec{Key: r.ID, Value: r.Value}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(h.cfg.HTTPURL, "/")+"/v1/topics/"+h.cfg.Topic+"/records", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+h.cfg.APIKey)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Results []struct {
			Partition    *int32 `json:"partition"`
			Offset       *int64 `json:"offset"`
			ErrorCode    int    `json:"error_code"`
			Message      string `json:"message"`
			DeadLettered bool   `json:"dead_lettered"`
		} `json:"results"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(rb, &out); err != nil || (resp.StatusCode >= 300 && len(out.Results) == 0) {
		return nil, fmt.Errorf("gateway answered %d: %s", resp.StatusCode, bytes.TrimSpace(rb))
	}
	if len(out.Results) != len(recs) {
		return nil, fmt.Errorf("gateway answered %d results for %d records", len(out.Results), len(recs))
	}
	acks := make([]ack, len(recs))
	for i, r := range out.Results {
		if r.ErrorCode == 0 && !r.DeadLettered && r.Offset != nil && r.Partition != nil {
			acks[i] = ack{ok: true, partition: *r.Partition, offset: *r.Offset}
		} else {
			acks[i] = ack{err: fmt.Sprintf("%d %s (dead-lettered: %v)", r.ErrorCode, r.Message, r.DeadLettered)}
		}
	}
	return acks, nil
}

func (h *httpSender) close() { h.client.CloseIdleConnections() }

type grpcSender struct {
	cfg  Config
	conn *grpc.ClientConn
	cl   ingestv1.IngestServiceClient
}

func newGRPCSender(cfg Config) (*grpcSender, error) {
	conn, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dialing gateway gRPC %s: %w", cfg.GRPCAddr, err)
	}
	return &grpcSender{cfg: cfg, conn: conn, cl: ingestv1.NewIngestServiceClient(conn)}, nil
}

func (g *grpcSender) send(ctx context.Context, recs []record) ([]ack, error) {
	req := &ingestv1.ProduceRequest{Topic: g.cfg.Topic, Format: ingestv1.ValueFormat_VALUE_FORMAT_JSON, Records: make([]*ingestv1.Record, len(recs))}
	for i, r := range recs {
		v, err := json.Marshal(r.Value)
		if err != nil {
			return nil, err
		}
		req.Records[i] = &ingestv1.Record{Key: []byte(r.ID), Value: v}
	}
	if g.cfg.APIKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.cfg.APIKey)
	}
	resp, err := g.cl.Produce(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(resp.GetResults()) != len(recs) {
		return nil, fmt.Errorf("gateway answered %d results for %d records", len(resp.GetResults()), len(recs))
	}
	acks := make([]ack, len(recs))
	for i, r := range resp.GetResults() {
		if r.GetError() == nil && !r.GetDeadLettered() {
			acks[i] = ack{ok: true, partition: r.GetPartition(), offset: r.GetOffset()}
		} else {
			acks[i] = ack{err: fmt.Sprintf("%d %s", r.GetError().GetCode(), r.GetError().GetMessage())}
		}
	}
	return acks, nil
}

func (g *grpcSender) close() { _ = g.conn.Close() }
