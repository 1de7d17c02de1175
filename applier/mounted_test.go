package applier_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

// TestMountedTarget applies onto a mount list that is neither a single
// overlay nor a single writable bind, so the child mounts it in its own
// namespace; nothing may stay mounted on the host.
func TestMountedTarget(t *testing.T) {
	requireRoot(t)
	store := lt.NewStore(t)
	layer := lt.Layer(t, store, "gzip", lt.Dir("d"), lt.File("d/f", "mounted"))
	below, top := filepath.Join(t.TempDir(), "below"), filepath.Join(t.TempDir(), "top")
	for _, d := range []string{below, top} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// containerd mounts a list in order onto one target, so the second bind
	// covers the first and receives the layer.
	mounts := []mount.Mount{
		{Type: "bind", Source: below, Options: []string{"rbind", "rw"}},
		{Type: "bind", Source: top, Options: []string{"rbind", "rw"}},
	}
	res, err := applier.New(store).ApplyLayer(context.Background(), layer, mounts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Target != "mounted" {
		t.Errorf("Target = %q, want mounted", res.Target)
	}
	if got, err := os.ReadFile(filepath.Join(top, "d/f")); err != nil || string(got) != "mounted" {
		t.Errorf("d/f in the covering mount = %q, %v; want %q", got, err, "mounted")
	}
	if entries, _ := os.ReadDir(below); len(entries) != 0 {
		t.Errorf("covered directory has %d entries, want none", len(entries))
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{below, top} {
		if strings.Contains(string(mountinfo), d) {
			t.Errorf("%s is still mounted on the host", d)
		}
	}
}
