// Command ingest-gateway is Sluice's ingest-gateway service; see README.md for configuration.
package main

import "github.com/sluicehq/sluice/pkg/service"

func main() { service.Main(run) }
