// Command loadgen sends generated records to an ingest-gateway over HTTP or
// gRPC and prints a live progress line and a final summary.
//
//	loadgen -url http://127.0.0.1:8080 -topic loadtest -batch 500 -concurrency 4 -duration 30s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/scripts/loadgen/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string) error {
	var cfg load.Config
	var registryURL string
	var asJSON bool
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&cfg.Protocol, "protocol", "http", "http or grpc")
	fs.StringVar(&cfg.HTTPURL, "url", "http://127.0.0.1:8080", "gateway HTTP base URL")
	fs.StringVar(&cfg.GRPCAddr, "grpc", "127.0.0.1:9090", "gateway gRPC address")
	fs.StringVar(&cfg.Topic, "topic", "loadtest", "topic to send to")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("LOADGEN_API_KEY"), "gateway API key (bearer)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "records per second in total (0 = as fast as possible)")
	fs.IntVar(&cfg.Batch, "batch", 100, "records per request")
	fs.IntVar(&cfg.RecordSize, "record-size", 200, "approximate record size in bytes")
	fs.IntVar(&cfg.Concurrency, "concurrency", 4, "requests in flight")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to run (0 = until -count)")
	fs.Int64Var(&cfg.Count, "count", 0, "stop after this many records (0 = until -duration)")
	fs.StringVar(&cfg.IDPrefix, "id-prefix", fmt.Sprintf("lg-%d-", time.Now().Unix()), "prefix of generated record ids")
	fs.StringVar(&registryURL, "registry", "http://127.0.0.1:8081", "schema registry URL; the load schema is registered under <topic>-value (empty: skip)")
	fs.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if registryURL != "" {
		rc := registry.New(registry.Config{URL: registryURL, Timeout: 10 * time.Second})
		if _, err := rc.Register(ctx, cfg.Topic+"-value", "AVRO", load.Schema, nil); err != nil {
			return fmt.Errorf("registering the load schema: %w", err)
		}
	}
	cfg.Progress = os.Stderr
	s, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(s)
	}
	fmt.Println(s)
	if s.FirstError != "" {
		fmt.Println("first error:", s.FirstError)
	}
	return nil
}
