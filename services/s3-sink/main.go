// Command s3-sink is Sluice's s3-sink service; see README.md for configuration.
package main

import (
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/service"
)

func main() {
	avro.LimitBlocks() // untrusted Avro must not make goavro allocate gigabytes
	service.Main(run, service.Subcommand{Usage: "bucket apply [-dry-run]", Help: "apply the bucket's lifecycle and backup policy (S3_SINK_LIFECYCLE_*) and exit"})
}
