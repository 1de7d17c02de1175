package applier_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

func TestSimpleLayer(t *testing.T) {
	requireRoot(t)
	store := lt.NewStore(t)
	layer := lt.Layer(t, store, "gzip",
		lt.Dir("etc"),
		lt.File("etc/hosts", "127.0.0.1 localhost\n"),
		lt.Symlink("etc/link", "hosts"),
	)
	compareWithWalking(t, store, targetKinds, layer)
}

func TestChildConfinesWithPivotRoot(t *testing.T) {
	requireRoot(t)
	store := lt.NewStore(t)
	layer := lt.Layer(t, store, "", lt.File("f", "x"))
	s := newStack(t, bindTarget)
	mounts, dir, err := s.next()
	if err != nil {
		t.Fatal(err)
	}
	res, err := applier.New(store).ApplyLayer(context.Background(), layer, mounts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Root != "pivot_root" {
		t.Errorf("Root = %q, want pivot_root", res.Root)
	}
	if res.Target != "bind" {
		t.Errorf("Target = %q, want bind", res.Target)
	}
	if res.Entries != 1 {
		t.Errorf("Entries = %d, want 1", res.Entries)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(got) != "x" {
		t.Errorf("f = %q, %v; want %q", got, err, "x")
	}
}
