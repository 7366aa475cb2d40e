package sink

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus"

	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/pkg/testkit/s3test"
	"github.com/sluicehq/sluice/pkg/testkit/sinktest"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/s3-sink/internal/config"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
)

// s3Destination is a versitygw bucket the S3 writer writes to.
type s3Destination struct {
	env sinktest.Env
	s3  *s3test.Server
	cfg config.Sink
}

func (d *s3Destination) Writer(tb testing.TB) psink.Writer {
	cl := d.env.Kafka.Clients()
	sk, err := New(Options{Config: d.cfg, Bucket: "conf", S3: d.s3.Client(), Brokers: d.env.Kafka.Brokers(), Dialer: cl.Dialer,
		Admin: testAdmin{cl}, Codecs: d.env.Codecs, Partitioner: partition.Default{}, Metrics: NewMetrics(prometheus.NewRegistry(), 100),
		Log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		tb.Fatal(err)
	}
	return sk
}

var objectName = regexp.MustCompile(`([^/]+)\+(\d+)\+\d+\.avro$`)

// Landed reads every object back: its key names topic and partition; the
// records carry their bodies (an object's offsets may have gaps where
// records were dead-lettered).
func (d *s3Destination) Landed(ctx context.Context, tb testing.TB) []sinktest.Landed {
	var out []sinktest.Landed
	p := s3.NewListObjectsV2Paginator(d.s3.Client(), &s3.ListObjectsV2Input{Bucket: aws.String("conf")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			tb.Fatalf("listing objects: %v", err)
		}
		for _, o := range page.Contents {
			m := objectName.FindStringSubmatch(aws.ToString(o.Key))
			if m == nil {
				tb.Fatalf("object %s: not a sink key", aws.ToString(o.Key))
			}
			part, _ := strconv.Atoi(m[2])
			res, err := d.s3.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("conf"), Key: o.Key})
			if err != nil {
				tb.Fatalf("reading %s: %v", aws.ToString(o.Key), err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			r, err := goavro.NewOCFReader(bytes.NewReader(body))
			if err != nil {
				tb.Fatalf("%s: %v", aws.ToString(o.Key), err)
			}
			for r.Scan() {
				v, err := r.Read()
				if err != nil {
					tb.Fatalf("%s: %v", aws.ToString(o.Key), err)
				}
				body, _ := v.(map[string]any)["body"].(string)
				out = append(out, sinktest.Landed{Topic: m[1], Partition: part, Offset: -1, Body: body})
			}
		}
	}
	return out
}

// TestConformance runs the sink runtime's conformance suite against the
// S3 writer on versitygw: exactly-once objects.
func TestConformance(t *testing.T) {
	env := map[string]string{"S3_BUCKET": "conf", "S3_SINK_TOPICS": "x", "S3_SINK_PREFIX": "conf",
		"S3_SINK_FLUSH_RECORDS": "7", "S3_SINK_CODEC": "null",
		// Files that do not fill complete after a while (adopted by replays).
		"S3_SINK_ROTATE_MAX_OPEN": "300ms"}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	sinktest.Run(t, sinktest.Suite{
		New: func(tb testing.TB, env sinktest.Env) sinktest.Destination {
			srv := s3test.Start(tb)
			srv.CreateBucket("conf")
			return &s3Destination{env: env, s3: srv, cfg: cfg.Sink}
		},
		Semantics:   psink.ExactlyOnce,
		Poison:      wire.Encode(sinktest.SchemaID, []byte{0xff, 0xff, 0xff}),
		PoisonStage: StageDeadLetter,
	})
}
