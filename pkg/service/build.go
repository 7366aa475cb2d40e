package service

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/version"
)

// BuildInfoName is the gauge every service exports (value 1) with the build's
// version, revision and Go version as labels.
const BuildInfoName = "sluice_build_info"

// NewBuildInfo returns the sluice_build_info gauge for this binary.
func NewBuildInfo() prometheus.Collector {
	v := version.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        BuildInfoName,
		Help:        "Always 1; labels name the release, git revision and Go version this binary was built from.",
		ConstLabels: prometheus.Labels{"version": v.Version, "revision": v.Revision, "go_version": v.GoVersion},
	})
	g.Set(1)
	return g
}
