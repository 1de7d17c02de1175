package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/opencontainers/image-spec/identity"

	"github.com/chroot-applier/containerd-chroot-applier/internal/manifest"
)

// LayerSnapshot is the committed overlayfs snapshot of one layer of an image.
type LayerSnapshot struct {
	// ChainID is the snapshot's key: the chain ID of the layers up to this one.
	ChainID string
	// Dir is the snapshot's directory, the overlay upperdir the layer was
	// applied to.
	Dir string
}

// LayerSnapshots returns the snapshot of every layer of image ref in
// namespace ns, lowest first. It finds each directory from the mounts of a
// short-lived view of the snapshot, which the overlayfs snapshotter returns
// as a read-only bind of the parent's directory (one layer) or as the first
// lowerdir (more layers).
func (c *Containerd) LayerSnapshots(ctx context.Context, ns, ref string) ([]LayerSnapshot, error) {
	client, err := containerd.New(c.Socket, containerd.WithDefaultNamespace(ns))
	if err != nil {
		return nil, fmt.Errorf("failed to connect to %s: %w", c.Socket, err)
	}
	defer client.Close()
	img, err := client.GetImage(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("failed to find image %s: %w", ref, err)
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read the diffIDs of %s: %w", ref, err)
	}

	// A lease keeps the garbage collector from removing the views while
	// they are read.
	ctx, done, err := client.WithLease(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to create a lease: %w", err)
	}
	defer done(context.WithoutCancel(ctx))

	sn := client.SnapshotService("overlayfs")
	var snapshots []LayerSnapshot
	for i, chainID := range identity.ChainIDs(diffIDs) {
		key := fmt.Sprintf("harness-view-%d-%d", time.Now().UnixNano(), i)
		mounts, err := sn.View(ctx, key, chainID.String())
		if err != nil {
			return nil, fmt.Errorf("failed to view snapshot %s of %s: %w", chainID, ref, err)
		}
		dir, err := topLowerDir(mounts)
		if rerr := sn.Remove(ctx, key); rerr != nil && err == nil {
			err = fmt.Errorf("failed to remove view %s: %w", key, rerr)
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot %s of %s: %w", chainID, ref, err)
		}
		snapshots = append(snapshots, LayerSnapshot{ChainID: chainID.String(), Dir: dir})
	}
	return snapshots, nil
}

// topLowerDir returns the directory of the parent of a view from the view's
// mounts.
func topLowerDir(mounts []mount.Mount) (string, error) {
	if len(mounts) != 1 {
		return "", fmt.Errorf("expected one mount, got %d: %v", len(mounts), mounts)
	}
	m := mounts[0]
	if m.Type == "bind" {
		return m.Source, nil
	}
	for _, o := range m.Options {
		if lower, ok := strings.CutPrefix(o, "lowerdir="); ok {
			return strings.Split(lower, ":")[0], nil
		}
	}
	return "", fmt.Errorf("no lowerdir in %s mount %v", m.Type, m.Options)
}

// CompareSnapshots compares, layer by layer, the snapshots of image ref in
// namespace gotNS of got with those in namespace wantNS of want, by the full
// manifest of each directory: types, modes, owners, times, xattrs, device
// numbers and file content. Modification times at or after since compare equal, because
// whiteout devices and implied parent directories are created at pull time.
// It returns one line per difference, prefixed with the layer's chain ID.
func CompareSnapshots(ctx context.Context, got *Containerd, gotNS string,
	want *Containerd, wantNS, ref string, since time.Time) ([]string, error) {
	gotLayers, err := got.LayerSnapshots(ctx, gotNS, ref)
	if err != nil {
		return nil, fmt.Errorf("%s containerd: %w", got.Mode, err)
	}
	wantLayers, err := want.LayerSnapshots(ctx, wantNS, ref)
	if err != nil {
		return nil, fmt.Errorf("%s containerd: %w", want.Mode, err)
	}
	if len(gotLayers) != len(wantLayers) {
		return nil, fmt.Errorf("%s containerd has %d layer snapshots, %s has %d",
			got.Mode, len(gotLayers), want.Mode, len(wantLayers))
	}
	var diffs []string
	for i := range gotLayers {
		g, err := manifest.Build(gotLayers[i].Dir)
		if err != nil {
			return nil, err
		}
		w, err := manifest.Build(wantLayers[i].Dir)
		if err != nil {
			return nil, err
		}
		for _, d := range manifest.Diff(g, w, manifest.VolatileAfter(since)) {
			diffs = append(diffs, fmt.Sprintf("layer %d (%s): %s", i, gotLayers[i].ChainID, d))
		}
	}
	return diffs, nil
}
