// Package checks holds the offline checks of Sluice's packaging: the service
// Dockerfiles, the Helm chart, the compose stack and its Prometheus config.
// Nothing here runs a container or a cluster; every check is a Go test that
// parses an artifact with the real tool or library and fails on a defect.
package checks
