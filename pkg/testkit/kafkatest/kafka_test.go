package kafkatest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

func TestEnsureTopicIdempotent(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t)
	cl := c.Clients()
	ctx := kafkatest.Context(t, 20*time.Second)
	spec := skafka.TopicSpec{Name: "_schemas", Partitions: 1, Configs: map[string]string{"cleanup.policy": "compact"}}
	first, err := cl.EnsureTopic(ctx, spec)
	if err != nil {
		t.Fatalf("first ensure: %v", err)
	}
	if !first.Created || first.Partitions != 1 {
		t.Fatalf("first ensure = %+v, want created with 1 partition", first)
	}
	for i := 0; i < 3; i++ {
		again, err := cl.EnsureTopic(ctx, skafka.TopicSpec{Name: "_schemas", Partitions: 6})
		if err != nil {
			t.Fatalf("ensure #%d: %v", i, err)
		}
		if again.Created || again.Partitions != 1 {
			t.Fatalf("ensure #%d = %+v, want existing topic left at 1 partition", i, again)
		}
	}
	cfgs, err := cl.TopicConfigs(ctx, "_schemas")
	if err != nil {
		t.Fatalf("topic configs: %v", err)
	}
	if cfgs["cleanup.policy"] != "compact" {
		t.Fatalf("cleanup.policy = %q, want compact", cfgs["cleanup.policy"])
	}
	if _, err := cl.DescribeTopic(ctx, "nope"); !errors.Is(err, skafka.ErrTopicNotFound) {
		t.Fatalf("describe missing topic: %v, want ErrTopicNotFound", err)
	}
}

// TestWriterRequiresAllAcks observes the produce requests the broker gets.
func TestWriterRequiresAllAcks(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(3, "orders"))
	acks := make(chan int16, 16)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case acks <- req.(*kmsg.ProduceRequest).Acks:
		default:
		}
		return nil, nil, false
	})
	cl := c.Clients()
	w := cl.NewWriter(skafka.WriterOptions{Topic: "orders"})
	t.Cleanup(func() { _ = w.Close() })
	if w.RequiredAcks != kafkago.RequireAll {
		t.Fatalf("RequiredAcks = %v, want RequireAll", w.RequiredAcks)
	}
	ctx := kafkatest.Context(t, 20*time.Second)
	if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatalf("write: %v", err)
	}
	select {
	case a := <-acks:
		if a != -1 {
			t.Fatalf("produce acks = %d, want -1 (all)", a)
		}
	case <-ctx.Done():
		t.Fatal("no produce request observed")
	}
}

func TestReaderExplicitCommit(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "events"))
	cl := c.Clients()
	ctx := kafkatest.Context(t, 30*time.Second)
	w := cl.NewWriter(skafka.WriterOptions{Topic: "events"})
	t.Cleanup(func() { _ = w.Close() })
	for i := 0; i < 3; i++ {
		if err := w.WriteMessages(ctx, kafkago.Message{Value: []byte{byte('a' + i)}}); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	r, err := cl.NewReader(skafka.ReaderOptions{GroupID: "g", Topics: []string{"events"}})
	if err != nil {
		t.Fatalf("reader: %v", err)
	}
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if err := r.CommitMessages(ctx, m); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if _, err := r.FetchMessage(ctx); err != nil { // fetched but never committed
		t.Fatalf("fetch 2: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	offs, err := cl.Admin.ConsumerOffsets(ctx, kafkago.TopicAndGroup{Topic: "events", GroupId: "g"})
	if err != nil {
		t.Fatalf("consumer offsets: %v", err)
	}
	if offs[0] != 1 {
		t.Fatalf("committed offset = %d, want 1 (only the explicitly committed record)", offs[0])
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t)
	cl := c.Clients()
	ctx := kafkatest.Context(t, 10*time.Second)
	if err := cl.Ping(ctx, 2*time.Second); err != nil {
		t.Fatalf("ping: %v", err)
	}
	c.Close()
	if err := cl.Ping(ctx, 2*time.Second); err == nil {
		t.Fatal("ping succeeded against a closed cluster")
	}
}

func TestSASL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mech string
	}{{"PLAIN"}, {"SCRAM-SHA-256"}, {"SCRAM-SHA-512"}}
	for _, tc := range cases {
		t.Run(tc.mech, func(t *testing.T) {
			t.Parallel()
			c := kafkatest.Start(t, kfake.EnableSASL(), kfake.Superuser(tc.mech, "alice", "s3cret"), kfake.SeedTopics(1, "t"))
			ctx := kafkatest.Context(t, 20*time.Second)
			good := c.Config()
			good.SASLMechanism, good.SASLUsername, good.SASLPassword = tc.mech, "alice", "s3cret"
			if err := good.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			cl, err := skafka.New(good)
			if err != nil {
				t.Fatalf("new: %v", err)
			}
			t.Cleanup(cl.Close)
			if err := cl.Ping(ctx, 5*time.Second); err != nil {
				t.Fatalf("ping with good credentials: %v", err)
			}
			w := cl.NewWriter(skafka.WriterOptions{Topic: "t"})
			t.Cleanup(func() { _ = w.Close() })
			if err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("x")}); err != nil {
				t.Fatalf("write over SASL: %v", err)
			}
			bad := good
			bad.SASLPassword = "wrong"
			bcl, err := skafka.New(bad)
			if err != nil {
				t.Fatalf("new: %v", err)
			}
			t.Cleanup(bcl.Close)
			if err := bcl.Ping(ctx, 3*time.Second); err == nil {
				t.Fatal("ping with a wrong password succeeded")
			}
		})
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	pki := kafkatest.NewPKI(t)
	c := kafkatest.Start(t, kfake.TLS(pki.ServerTLS()), kfake.SeedTopics(1, "t"))
	ctx := kafkatest.Context(t, 20*time.Second)
	cfg := c.Config()
	cfg.TLSEnabled, cfg.TLSCAFile = true, pki.CAFile
	if err := cfg.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	cl, err := skafka.New(cfg)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	t.Cleanup(cl.Close)
	if err := cl.Ping(ctx, 5*time.Second); err != nil {
		t.Fatalf("ping over TLS: %v", err)
	}
	w := cl.NewWriter(skafka.WriterOptions{Topic: "t"})
	t.Cleanup(func() { _ = w.Close() })
	if err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("x")}); err != nil {
		t.Fatalf("write over TLS: %v", err)
	}
	// Without the CA the broker certificate must be refused.
	plain := c.Config()
	plain.TLSEnabled = true
	pcl, err := skafka.New(plain)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	t.Cleanup(pcl.Close)
	err = pcl.Ping(ctx, 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("ping without CA: %v, want a certificate error", err)
	}
}

func TestConfigValidateNamesVariable(t *testing.T) {
	t.Parallel()
	pki := kafkatest.NewPKI(t)
	cases := []struct {
		name string
		mod  func(*skafka.Config)
		want string
	}{
		{"no brokers", func(c *skafka.Config) { c.Brokers = nil }, "KAFKA_BROKERS"},
		{"broker without port", func(c *skafka.Config) { c.Brokers = []string{"kafka"} }, "KAFKA_BROKERS"},
		{"unknown mechanism", func(c *skafka.Config) { c.SASLMechanism = "GSSAPI" }, "KAFKA_SASL_MECHANISM"},
		{"sasl without user", func(c *skafka.Config) { c.SASLMechanism = "PLAIN" }, "KAFKA_SASL_USERNAME"},
		{"sasl without password", func(c *skafka.Config) { c.SASLMechanism, c.SASLUsername = "SCRAM-SHA-512", "u" }, "KAFKA_SASL_PASSWORD"},
		{"ca without tls", func(c *skafka.Config) { c.TLSCAFile = pki.CAFile }, "KAFKA_TLS_CA_FILE"},
		{"missing ca file", func(c *skafka.Config) { c.TLSEnabled, c.TLSCAFile = true, "/nonexistent/ca.pem" }, "KAFKA_TLS_CA_FILE"},
		{"cert without key", func(c *skafka.Config) { c.TLSEnabled, c.TLSCertFile = true, pki.CAFile }, "KAFKA_TLS_KEY_FILE"},
		{"negative metadata ttl", func(c *skafka.Config) { c.MetadataTTL = -time.Second }, "KAFKA_METADATA_TTL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := skafka.Config{Brokers: []string{"127.0.0.1:9092"}, DialTimeout: time.Second}
			tc.mod(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want error naming %s", err, tc.want)
			}
		})
	}
}

// TestFaultInjectionSurfaces proves the writer reports broker errors rather
// than swallowing them (the gateway relies on this for its 503s).
func TestFaultInjectionSurfaces(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "t"))
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: kerr.NotEnoughReplicas, Count: -1})
	cl := c.Clients()
	w := cl.NewWriter(skafka.WriterOptions{Topic: "t", MaxAttempts: 2})
	t.Cleanup(func() { _ = w.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("x")}); err == nil {
		t.Fatal("write succeeded while the broker answered NOT_ENOUGH_REPLICAS")
	}
}
