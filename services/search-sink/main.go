// Command search-sink is Sluice's search-sink service; see README.md for configuration.
package main

import (
	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/pkg/service"
)

func main() {
	// goavro's block limits are process globals defaulting to MaxInt32: a few
	// hostile bytes make it pre-allocate a map of that size. A Kafka record
	// (1 MiB by default) cannot legitimately hold more items or bytes per
	// block than this.
	goavro.MaxBlockCount, goavro.MaxBlockSize = 1<<20, 64<<20
	service.Main(run)
}
