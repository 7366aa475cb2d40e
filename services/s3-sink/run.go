package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/service"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/services/s3-sink/internal/bucket"
	"github.com/sluicehq/sluice/services/s3-sink/internal/config"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
	"github.com/sluicehq/sluice/services/s3-sink/internal/sink"
)

// run wires the service explicitly and blocks until shutdown. "bucket
// apply [--dry-run]" applies the bucket's backup policy and exits.
func run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "bucket" {
		return runBucket(ctx, args[1:])
	}
	cfg, err := config.Load(args, os.LookupEnv)
	if err != nil {
		return err
	}
	log := service.NewLogger(os.Stderr, "s3-sink", cfg.Service.LogLevel)
	app := service.New("s3-sink", cfg.Service, log)
	kc, err := kafka.New(cfg.Kafka)
	if err != nil {
		return fmt.Errorf("building kafka clients: %w", err)
	}
	app.OnClose("kafka", func(context.Context) error { kc.Close(); return nil })
	app.ReadyCheck("kafka", func(ctx context.Context) error { return kc.Ping(ctx, 2*time.Second) })

	s3c, err := newS3(ctx, cfg.S3)
	if err != nil {
		return err
	}
	app.ReadyCheck("s3", func(ctx context.Context) error {
		if _, err := s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &cfg.S3.Bucket}); err != nil {
			return fmt.Errorf("head bucket %s: %w", cfg.S3.Bucket, err)
		}
		return nil
	})
	reg := registry.New(cfg.Registry)
	app.ReadyCheck("registry", reg.Ping)

	if cfg.Lifecycle.ApplyAtStart {
		if _, err := bucket.Apply(ctx, s3c, cfg.S3.Bucket, cfg.Lifecycle, false, slogWriter{log}); err != nil {
			return fmt.Errorf("applying bucket policy at start: %w", err)
		}
	}

	part, err := newPartitioner(cfg.Sink)
	if err != nil {
		return err
	}
	// The writer's own batch limit must not refuse a dead letter Fit let
	// through (S3_SINK_DLQ_MAX_BYTES plus record framing).
	dlq := kc.NewWriter(kafka.WriterOptions{BatchTimeout: time.Millisecond, BatchBytes: int64(max(1<<20, cfg.Sink.DLQMaxBytes+64<<10))})
	app.OnClose("dlq-writer", func(context.Context) error { return dlq.Close() })

	sk, err := sink.New(sink.Options{
		Config:      cfg.Sink,
		Bucket:      cfg.S3.Bucket,
		S3:          s3c,
		Brokers:     kc.Brokers(),
		Dialer:      kc.Dialer,
		Admin:       psink.NewKafkaAdmin(kc, cfg.Sink.TopicRefresh), // lists topics with fresh metadata, creates <topic>.dlq
		Codecs:      avro.NewCodecs(reg, avro.WithLimits(cfg.Avro)),
		Subjects:    reg,
		DLQ:         dlq,
		Partitioner: part,
		Metrics:     sink.NewMetrics(app.Metrics(), cfg.Sink.TopicLabelLimit),
		Log:         log,
	})
	if err != nil {
		return err
	}
	app.Go("sink", sk.Run)
	app.OnStop("sink", sk.Stop)

	ln, err := service.Listen(ctx, cfg.AdminAddr)
	if err != nil {
		return err
	}
	app.ServeHTTP("admin", service.AdminServer(app), ln)
	return app.Run(ctx)
}

func newPartitioner(c config.Sink) (partition.Partitioner, error) {
	switch c.Partitioner {
	case "field":
		return partition.NewField(c.PartitionField, c.MaxSegmentBytes)
	case "time":
		field := ""
		if c.TimestampSource == "field" {
			field = c.TimestampField
		}
		p, err := partition.NewTime(c.PathFormat, c.TimeZone, field)
		if err != nil {
			return nil, service.Invalid("S3_SINK_PATH_FORMAT", "%v", err)
		}
		return p, nil
	default:
		return partition.Default{}, nil
	}
}

// newS3 builds the S3 client from S3_*; without static keys it uses the AWS
// default credential chain.
func newS3(ctx context.Context, c config.S3) (*s3.Client, error) {
	var base aws.Config
	if c.AccessKeyID != "" {
		base = aws.Config{Region: c.Region, Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")}
	} else {
		var err error
		base, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(c.Region))
		if err != nil {
			return nil, fmt.Errorf("loading AWS credentials: %w", err)
		}
	}
	return s3.NewFromConfig(base, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.ForcePathStyle
		// Checksums only where S3 requires them: every object is also
		// covered by TLS/SigV4, and CRC32 of every part costs CPU.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}

// bucketConfig is what "s3-sink bucket apply" reads: no Kafka, no topics.
type bucketConfig struct {
	Service   service.Options
	S3        config.S3
	Prefix    string `env:"S3_SINK_PREFIX" default:"topics" help:"key prefix of every object"`
	Lifecycle config.Lifecycle
}

func runBucket(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "apply" {
		return service.Invalid("args", "usage: s3-sink bucket apply [--dry-run]")
	}
	args = args[1:]
	dry := false
	var rest []string
	for _, a := range args {
		if a == "--dry-run" || a == "-dry-run" {
			dry = true
			continue
		}
		rest = append(rest, a)
	}
	var c bucketConfig
	if err := service.LoadConfig(&c, rest, os.LookupEnv); err != nil {
		return err
	}
	if c.Lifecycle.Prefix == "" {
		c.Lifecycle.Prefix = c.Prefix
	}
	s3c, err := newS3(ctx, c.S3)
	if err != nil {
		return err
	}
	changed, err := bucket.Apply(ctx, s3c, c.S3.Bucket, c.Lifecycle, dry, os.Stdout)
	if err != nil {
		return err
	}
	switch {
	case dry && changed:
		fmt.Fprintln(os.Stdout, "dry run: nothing was changed")
	case !changed:
		fmt.Fprintln(os.Stdout, "bucket policy is up to date")
	}
	return nil
}

// slogWriter logs each written line at info (apply-at-start diffs).
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Info("bucket policy", "diff", string(p))
	return len(p), nil
}
