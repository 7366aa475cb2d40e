package kafkatest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/wire"
)

// kcatPath finds kcat (librdkafka), the independent client the README
// names; CI installs it (scripts/tools.sh) and must not skip.
func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("kcat missing in CI (scripts/tools.sh installs it): %v", err)
		}
		t.Skip("kcat not installed; run make tools")
	}
	return p
}

// TestKcatInterop: what pkg/kafka writes (Confluent-framed, acks=all) is
// read back byte for byte by librdkafka's kcat, and what kcat produces is
// read by pkg/kafka's reader, all over kfake.
func TestKcatInterop(t *testing.T) {
	t.Parallel()
	kcat := kcatPath(t)
	c := kafkatest.Start(t, kfake.SeedTopics(1, "interop"))
	cl := c.Clients()
	ctx := kafkatest.Context(t, 60*time.Second)
	w := cl.NewWriter(skafka.WriterOptions{Topic: "interop"})
	t.Cleanup(func() { _ = w.Close() })
	framed := wire.Encode(42, []byte("avro-bytes"))
	if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte("k1"), Value: framed}); err != nil {
		t.Fatal(err)
	}
	broker := c.Brokers()[0]
	// Only stdout is the consumed data; librdkafka logs to stderr.
	var stderr bytes.Buffer
	cons := exec.CommandContext(ctx, kcat, "-b", broker, "-C", "-t", "interop", "-o", "beginning", "-e", "-q", "-f", "%k|%s")
	cons.Stderr = &stderr
	out, err := cons.Output()
	if err != nil {
		t.Fatalf("kcat consume: %v\n%s%s", err, out, stderr.Bytes())
	}
	if want := append([]byte("k1|"), framed...); !bytes.Equal(out, want) {
		t.Fatalf("kcat read %q, want %q", out, want)
	}

	prod := exec.CommandContext(ctx, kcat, "-b", broker, "-P", "-t", "interop", "-K", ":", "-X", "acks=all")
	prod.Stdin = strings.NewReader("k2:from-kcat\n")
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: c.Brokers(), Topic: "interop", Dialer: cl.Dialer, MaxWait: 100 * time.Millisecond})
	t.Cleanup(func() { _ = r.Close() })
	r.SetOffset(1)
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	m, err := r.ReadMessage(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Key) != "k2" || string(m.Value) != "from-kcat" {
		t.Fatalf("kafka-go read %q=%q, want k2=from-kcat", m.Key, m.Value)
	}
}
