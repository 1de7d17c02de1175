package applier_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff/apply"
	"github.com/containerd/containerd/v2/core/mount"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	"github.com/chroot-applier/containerd-chroot-applier/internal/manifest"
)

// targetKind is the shape of snapshot a layer is applied to.
type targetKind string

const (
	bindTarget    targetKind = "bind"
	overlayTarget targetKind = "overlay"
)

var targetKinds = []targetKind{bindTarget, overlayTarget}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("applying layers needs root, " +
			"because the child unshares a mount namespace and creates devices")
	}
}

// stack is a series of snapshots one differ applies layers to: one
// directory for a bind target, one upperdir per layer for an overlay target.
type stack struct {
	kind targetKind
	base string
	dirs []string
}

func newStack(t testing.TB, kind targetKind) *stack {
	t.Helper()
	return &stack{kind: kind, base: t.TempDir()}
}

// next returns the mounts for the next layer and the directory it lands in.
func (s *stack) next() ([]mount.Mount, string, error) {
	if s.kind == bindTarget {
		if len(s.dirs) == 0 {
			dir := filepath.Join(s.base, "root")
			if err := os.Mkdir(dir, 0o755); err != nil {
				return nil, "", err
			}
			s.dirs = append(s.dirs, dir)
		}
		return []mount.Mount{{Type: "bind", Source: s.dirs[0], Options: []string{"rbind", "rw"}}},
			s.dirs[0], nil
	}
	i := len(s.dirs)
	upper := filepath.Join(s.base, fmt.Sprintf("upper%d", i))
	work := filepath.Join(s.base, fmt.Sprintf("work%d", i))
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, "", err
		}
	}
	opts := []string{"workdir=" + work, "upperdir=" + upper}
	if i > 0 {
		lowers := make([]string, 0, i)
		for j := i - 1; j >= 0; j-- {
			lowers = append(lowers, s.dirs[j])
		}
		opts = append(opts, "lowerdir="+strings.Join(lowers, ":"))
	}
	s.dirs = append(s.dirs, upper)
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}, upper, nil
}

// differ applies one layer onto mounts.
type differ func(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount) error

func oursDiffer(store content.Store) differ {
	a := applier.New(store)
	return func(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount) error {
		_, err := a.Apply(ctx, desc, mounts)
		return err
	}
}

func walkingDiffer(store content.Store) differ {
	a := apply.NewFileSystemApplier(store)
	return func(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount) error {
		_, err := a.Apply(ctx, desc, mounts)
		return err
	}
}

// applyAll applies layers in order onto a new stack of kind and returns it.
func applyAll(t testing.TB, d differ, kind targetKind,
	layers []ocispec.Descriptor) (*stack, error) {
	t.Helper()
	s := newStack(t, kind)
	for _, desc := range layers {
		mounts, _, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		if err := d(context.Background(), desc, mounts); err != nil {
			return s, err
		}
	}
	return s, nil
}

// buildManifest returns the manifest of dir or fails the test.
func buildManifest(t testing.TB, dir string) manifest.Manifest {
	t.Helper()
	m, err := manifest.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// compareWithWalking applies layers with both appliers onto each target
// kind and fails the test where the trees differ.
func compareWithWalking(t *testing.T, store content.Store, kinds []targetKind,
	layers ...ocispec.Descriptor) {
	t.Helper()
	for _, kind := range kinds {
		start := time.Now()
		ours, err := applyAll(t, oursDiffer(store), kind, layers)
		if err != nil {
			t.Fatalf("%s: our applier failed: %v", kind, err)
		}
		theirs, err := applyAll(t, walkingDiffer(store), kind, layers)
		if err != nil {
			t.Fatalf("%s: walking differ failed: %v", kind, err)
		}
		for i := range ours.dirs {
			diffs := manifest.Diff(buildManifest(t, theirs.dirs[i]), buildManifest(t, ours.dirs[i]),
				manifest.VolatileAfter(start))
			for _, d := range diffs {
				t.Errorf("%s snapshot %d: walking differ vs ours: %s", kind, i, d)
			}
		}
	}
}
