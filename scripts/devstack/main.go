// Command devstack runs the whole Sluice pipeline on one machine with
// embedded backends: Kafka (kfake, persisted under -data), S3 (versitygw over
// a directory) and an Elasticsearch 8 dev double, then the five services as
// child processes. Ctrl-C stops the services in reverse order, then the
// backends, and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}
