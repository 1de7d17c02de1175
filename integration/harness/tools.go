package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Versions of the tools the tests run against. They are built with go install
// from the Go module proxy the first time they are needed.
const (
	ContainerdVersion = "v2.4.2"
	CrictlVersion     = "v1.37.0"
)

// DefaultCacheDir is the directory that keeps built tools between runs,
// unless $CHROOT_APPLIER_CACHE names another one.
const DefaultCacheDir = "/var/cache/containerd-chroot-applier"

// Tools are the paths of the stock binaries the tests drive.
type Tools struct {
	// Containerd is stock containerd, used as the reference daemon and as
	// the daemon our proxy plugin is configured in.
	Containerd string
	// Ctr is containerd's ctr client.
	Ctr string
	// Crictl is the CRI client from cri-tools.
	Crictl string
}

// CacheDir returns $CHROOT_APPLIER_CACHE, or DefaultCacheDir when it is unset.
func CacheDir() string {
	if dir := os.Getenv("CHROOT_APPLIER_CACHE"); dir != "" {
		return dir
	}
	return DefaultCacheDir
}

type tool struct {
	name    string
	pkg     string
	version string
	// check is a string `NAME --version` prints for the expected build, or
	// "" when the tool does not report its version.
	check string
}

var tools = []tool{
	{"containerd", "github.com/containerd/containerd/v2/cmd/containerd",
		ContainerdVersion, "2.4.2"},
	{"ctr", "github.com/containerd/containerd/v2/cmd/ctr", ContainerdVersion, "2.4.2"},
	{"crictl", "sigs.k8s.io/cri-tools/cmd/crictl", CrictlVersion, ""},
}

// EnsureTools returns the cached containerd, ctr and crictl, building those
// that are missing or of another version with go install into the cache's
// bin directory. A file lock in that directory keeps concurrent test
// processes from building at the same time.
func EnsureTools(ctx context.Context) (Tools, error) {
	bin := filepath.Join(CacheDir(), "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return Tools{}, fmt.Errorf("failed to create tool cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(bin, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Tools{}, fmt.Errorf("failed to open tool cache lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return Tools{}, fmt.Errorf("failed to lock tool cache %s: %w", bin, err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	for _, t := range tools {
		if toolReady(ctx, filepath.Join(bin, t.name), t.check) {
			continue
		}
		cmd := exec.CommandContext(ctx, "go", "install", t.pkg+"@"+t.version)
		cmd.Env = append(os.Environ(), "GOBIN="+bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return Tools{}, fmt.Errorf("failed to build %s@%s: %w\n%s", t.pkg, t.version, err, out)
		}
	}
	return Tools{
		Containerd: filepath.Join(bin, "containerd"),
		Ctr:        filepath.Join(bin, "ctr"),
		Crictl:     filepath.Join(bin, "crictl"),
	}, nil
}

func toolReady(ctx context.Context, path, check string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	if check == "" {
		return true
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	return err == nil && bytes.Contains(out, []byte(check))
}

// Products are the binaries built from the working tree for one run.
type Products struct {
	// Daemon is containerd-chroot-applier, built static.
	Daemon string
	// Containerd is containerd with the chroot diff plugin compiled in.
	Containerd string
}

// BuildProducts builds the applier daemon and the containerd with the plugin
// compiled in from the module that contains the working directory, into dir.
// Both are built with CGO_ENABLED=0, as a release would be.
func BuildProducts(ctx context.Context, dir string) (Products, error) {
	p := Products{
		Daemon:     filepath.Join(dir, "containerd-chroot-applier"),
		Containerd: filepath.Join(dir, "containerd-chroot"),
	}
	if err := build(ctx, p.Daemon, "./cmd/containerd-chroot-applier"); err != nil {
		return Products{}, err
	}
	if err := build(ctx, p.Containerd, "./integration/cmd/containerd-chroot"); err != nil {
		return Products{}, err
	}
	return p, nil
}

// BuildDaemon builds only the applier daemon into dir and returns its path.
func BuildDaemon(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "containerd-chroot-applier")
	return out, build(ctx, out, "./cmd/containerd-chroot-applier")
}

// build runs go build for pkg, relative to the module root, with cgo off.
func build(ctx context.Context, out, pkg string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("failed to find the module root: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to build %s: %w\n%s", pkg, err, output)
	}
	return nil
}
