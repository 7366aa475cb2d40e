// Command schema-registry is Sluice's schema-registry service; see README.md for configuration.
package main

import "github.com/sluicehq/sluice/pkg/service"

func main() { service.Main(run) }
