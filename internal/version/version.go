// Package version holds the version and commit of the build, so that the
// daemon's logs and the version command name exactly what is running.
//
// Both are set at link time, for example:
//
//	pkg=github.com/chroot-applier/containerd-chroot-applier/internal/version
//	go build -ldflags "-X $pkg.Version=v1.0.0 -X $pkg.Commit=$(git rev-parse HEAD)" \
//	  ./cmd/containerd-chroot-applier
package version

// Version is the release version, or "dev" for a build without one.
var Version = "dev"

// Commit is the git commit the binary was built from, or "unknown".
var Commit = "unknown"
