package integration

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chroot-applier/containerd-chroot-applier/integration/harness"
)

// referenceNS returns the namespace in which the reference containerd pulls
// the image named name. Every image gets its own namespace because images
// that share a diffID share a snapshot, and containerd then skips fetching
// the second image's layer.
func referenceNS(name string) string { return "reference-" + name }

// commandTimeout bounds one ctr or crictl run.
const commandTimeout = 5 * time.Minute

// env is the set of daemons shared by all tests of the package: starting
// containerd three times per test would dominate the run time.
type env struct {
	tools    harness.Tools
	products harness.Products
	registry string
	// reference uses only the walking differ; proxy sends layers to daemon;
	// compiled has the chroot plugin built in.
	reference, proxy, compiled *harness.Containerd
	daemon                     *harness.Daemon
	// start is when the environment was set up. Snapshot times at or after
	// it are pull-time times and compare equal.
	start time.Time
	// work is a directory for archives and sentinels.
	work string

	mu         sync.Mutex
	referenced map[string]bool
}

var (
	shared      *env
	sharedErr   error
	sharedSkip  string
	sharedOnce  sync.Once
	sharedClean harness.Cleanups
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The shared daemons log where they run only with -v, as tests do.
	if !testing.Verbose() {
		sharedClean.Log = io.Discard
	}
	code := m.Run()
	sharedClean.Run()
	os.Exit(code)
}

// setup returns the shared environment, starting it on first use. It skips
// the test when not running as root or when the kernel has no overlayfs.
func setup(t *testing.T) *env {
	t.Helper()
	sharedOnce.Do(func() {
		if skip := unsupported(); skip != "" {
			sharedSkip = skip
			return
		}
		shared, sharedErr = startEnv(context.Background(), &sharedClean)
	})
	if sharedSkip != "" {
		t.Skip(sharedSkip)
	}
	if sharedErr != nil {
		t.Fatalf("failed to set up the integration environment: %v", sharedErr)
	}
	return shared
}

// unsupported returns why the tests cannot run here, or "".
func unsupported() string {
	if os.Geteuid() != 0 {
		return "integration tests need root to run containerd and mount overlayfs"
	}
	filesystems, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(filesystems), "\toverlay\n") {
		return "integration tests need overlayfs, " +
			"which this kernel does not list in /proc/filesystems"
	}
	return ""
}

func startEnv(ctx context.Context, tb *harness.Cleanups) (*env, error) {
	e := &env{start: time.Now(), referenced: map[string]bool{}}
	var err error
	if e.tools, err = harness.EnsureTools(ctx); err != nil {
		return nil, err
	}
	if e.work, err = os.MkdirTemp("", "cca-work-"); err != nil {
		return nil, err
	}
	tb.Cleanup(func() { os.RemoveAll(e.work) })
	if e.products, err = harness.BuildProducts(ctx, filepath.Join(e.work, "bin")); err != nil {
		return nil, err
	}
	if e.registry, err = harness.StartRegistry(tb); err != nil {
		return nil, err
	}

	start := func(mode harness.Mode, binary string) (*harness.Containerd, error) {
		return harness.StartContainerd(ctx, tb, harness.Config{
			Mode: mode, Binary: binary, Tools: e.tools, RegistryHost: e.registry,
		})
	}
	if e.reference, err = start(harness.Reference, e.tools.Containerd); err != nil {
		return nil, err
	}
	if e.proxy, err = start(harness.Proxy, e.tools.Containerd); err != nil {
		return nil, err
	}
	if e.daemon, err = harness.StartDaemon(ctx, tb, e.products.Daemon, e.proxy); err != nil {
		return nil, err
	}
	if e.compiled, err = start(harness.CompiledIn, e.products.Containerd); err != nil {
		return nil, err
	}
	return e, nil
}

// pullReference pulls img into the reference containerd once.
func (e *env) pullReference(t *testing.T, img pushed) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.referenced[img.ref] {
		return
	}
	_, err := e.reference.Ctr(ctxTimeout(t), referenceNS(img.name),
		"image", "pull", "--plain-http", img.ref)
	if err != nil {
		t.Fatalf("reference pull failed: %v", err)
	}
	e.referenced[img.ref] = true
}

// compareWithReference fails t for every difference between the snapshots
// of img in c's namespace ns and in the reference containerd.
func (e *env) compareWithReference(t *testing.T, c *harness.Containerd, ns string, img pushed) {
	t.Helper()
	e.pullReference(t, img)
	diffs, err := harness.CompareSnapshots(ctxTimeout(t), c, ns,
		e.reference, referenceNS(img.name), img.ref, e.start)
	if err != nil {
		t.Fatalf("failed to compare snapshots of %s: %v", img.ref, err)
	}
	t.Logf("snapshots of %s compared with the walking differ's: %d differences",
		img.ref, len(diffs))
	const maxShown = 40
	for i, d := range diffs {
		if i == maxShown {
			t.Errorf("... and %d more differences", len(diffs)-maxShown)
			break
		}
		t.Errorf("snapshot of %s differs from the walking differ's: %s", img.ref, d)
	}
}

// sentinelDir returns a new directory outside every containerd root, with
// one file in it, for hostile layers to aim at.
func (e *env) sentinelDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(e.work, "sentinel-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("host file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	t.Cleanup(cancel)
	return ctx
}
