// Command search-sink is Sluice's search-sink service; see README.md for configuration.
package main

import "github.com/sluicehq/sluice/pkg/service"

func main() { service.Main(run) }
