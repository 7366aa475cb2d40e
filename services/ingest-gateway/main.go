// Command ingest-gateway is Sluice's ingest-gateway service; see README.md for configuration.
package main

import (
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/service"
)

func main() {
	avro.LimitBlocks() // untrusted Avro must not make goavro allocate gigabytes
	service.Main(run)
}
