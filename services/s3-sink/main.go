// Command s3-sink is Sluice's s3-sink service; see README.md for configuration.
package main

import "github.com/sluicehq/sluice/pkg/service"

func main() { service.Main(run) }
