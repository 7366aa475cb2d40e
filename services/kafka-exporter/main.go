// Command kafka-exporter is Sluice's kafka-exporter service; see README.md for configuration.
package main

import "github.com/sluicehq/sluice/pkg/service"

func main() { service.Main(run) }
