// Command search-sink is Sluice's search-sink service; see README.md for configuration.
package main

import (
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/service"
)

func main() {
	avro.LimitBlocks() // untrusted Avro must not make goavro allocate gigabytes
	service.Main(run)
}
