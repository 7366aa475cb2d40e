// Package version holds the release a binary was built from, stamped at
// link time:
//
//	go build -ldflags "-X github.com/sluicehq/sluice/pkg/version.Version=v0.1.0 -X github.com/sluicehq/sluice/pkg/version.Revision=$(git rev-parse HEAD)"
//
// `make build`, `make release-snapshot` and the Dockerfiles set both.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release (a git tag such as v0.1.0, or a `git describe`
// string); "dev" when the linker did not set it.
var Version = "dev"

// Revision is the git commit; when the linker did not set it, the VCS
// revision Go recorded in the binary (go build in a git checkout), else
// "unknown".
var Revision = ""

// Info is what a binary reports about its own build.
type Info struct {
	Version   string
	Revision  string
	GoVersion string
}

// Get returns the build's version, revision and Go version.
func Get() Info {
	rev := Revision
	if rev == "" {
		rev = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					rev = s.Value
				}
			}
		}
	}
	return Info{Version: Version, Revision: rev, GoVersion: runtime.Version()}
}

// String is the one line `<binary> -version` prints.
func (i Info) String() string {
	return fmt.Sprintf("version %s, revision %s, %s %s/%s", i.Version, i.Revision, i.GoVersion, runtime.GOOS, runtime.GOARCH)
}
