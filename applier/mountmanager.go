package applier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WithMountManager makes the Applier activate a list of more than one mount
// through containerd's mount manager before it plans the target, as
// containerd's walking differ does, so that mount types only the manager
// understands reach the child as system mounts. A single mount is passed on
// unchanged, as in the walking differ, and so are the mounts when the manager
// returns errdefs.ErrNotImplemented.
//
// The manager's mounts, unlike the child's, are made in the caller's mount
// namespace, and they are deactivated when the apply returns.
func WithMountManager(mm mount.Manager) Option {
	return func(a *Applier) { a.mountManager = mm }
}

// activateMounts activates mounts through the mount manager, when there is
// one, and returns the mounts to apply to and the function that deactivates
// them.
func (a *Applier) activateMounts(ctx context.Context, desc ocispec.Descriptor,
	mounts []mount.Mount) ([]mount.Mount, func(), error) {
	if a.mountManager == nil || len(mounts) <= 1 {
		return mounts, func() {}, nil
	}

	var suffix [4]byte
	rand.Read(suffix[:])
	name := fmt.Sprintf("chroot-apply-%s-%s", desc.Digest.Encoded(), hex.EncodeToString(suffix[:]))
	info, err := a.mountManager.Activate(ctx, name, mounts)
	if errdefs.IsNotImplemented(err) {
		return mounts, func() {}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("failed to activate mounts for layer %s: %w", desc.Digest, err)
	}

	deactivate := func() {
		if err := a.mountManager.Deactivate(context.WithoutCancel(ctx), name); err != nil {
			log.G(ctx).WithError(err).WithFields(log.Fields{"digest": desc.Digest, "name": name}).
				Warn("failed to deactivate mounts")
		}
	}
	return info.System, deactivate, nil
}
