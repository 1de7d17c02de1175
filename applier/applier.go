package applier

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	targetmount "github.com/chroot-applier/containerd-chroot-applier/mount"
)

// Applier applies layers from a content provider in a confined child. It
// implements containerd's diff.Applier and diff.Comparer; Compare always
// returns errdefs.ErrNotImplemented so that the diff service moves on to the
// next differ. An Applier is safe for concurrent use, but concurrent applies
// to the same target leave an undefined tree.
type Applier struct {
	provider     content.Provider
	mountManager mount.Manager
}

var (
	_ diff.Applier  = (*Applier)(nil)
	_ diff.Comparer = (*Applier)(nil)
)

// Option configures an Applier.
type Option func(*Applier)

// New returns an Applier that reads layer blobs from provider. A cancelled
// context stops an apply only once the provider's pending ReadAt returns, so
// a provider whose reads ignore the context delays cancellation until then.
func New(provider content.Provider, opts ...Option) *Applier {
	a := &Applier{provider: provider}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Result describes one applied layer.
type Result struct {
	// Diff is the descriptor of the uncompressed tar: media type tar,
	// digest the diffID, size the uncompressed byte count.
	Diff ocispec.Descriptor
	// Entries is the number of tar entries the child read.
	Entries int64
	// Root is the child's confinement method: "pivot_root" or "chroot".
	Root string
	// Target is the kind of extraction target: "overlay", "bind" or
	// "mounted".
	Target string
	// Duration is the wall time of the whole apply.
	Duration time.Duration
}

// Apply applies the layer desc onto mounts and returns the descriptor of its
// uncompressed tar, which containerd checks against the image's diffIDs.
func (a *Applier) Apply(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount,
	opts ...diff.ApplyOpt) (ocispec.Descriptor, error) {
	res, err := a.ApplyLayer(ctx, desc, mounts, opts...)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return res.Diff, nil
}

// Compare returns errdefs.ErrNotImplemented: this applier creates no diffs.
func (a *Applier) Compare(context.Context, []mount.Mount, []mount.Mount,
	...diff.Opt) (ocispec.Descriptor, error) {
	return ocispec.Descriptor{}, fmt.Errorf("chroot applier does not compare: %w",
		errdefs.ErrNotImplemented)
}

// ApplyLayer is Apply with the details of the run. Errors name the layer
// digest and, where one is at fault, the tar entry. They wrap
// errdefs.ErrNotImplemented for a media type that cannot be decoded,
// errdefs.ErrInvalidArgument for invalid layer content or a digest mismatch,
// errdefs.ErrNotFound for a missing blob or target directory, and
// errdefs.ErrFailedPrecondition for a read-only target.
func (a *Applier) ApplyLayer(ctx context.Context, desc ocispec.Descriptor, mounts []mount.Mount,
	opts ...diff.ApplyOpt) (Result, error) {
	start := time.Now()
	var config diff.ApplyConfig
	for _, o := range opts {
		if err := o(ctx, desc, &config); err != nil {
			return Result{}, fmt.Errorf("failed to apply config option for layer %s: %w",
				desc.Digest, err)
		}
	}
	if err := desc.Digest.Validate(); err != nil {
		return Result{}, fmt.Errorf("invalid layer digest %q: %v: %w",
			desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	// Size 0 stays allowed: containerd's content store (plugins/content/local
	// in 2.4) treats a size of 0 as unknown when it writes a blob and ignores
	// the size when it reads one, so such a blob is checked by digest only.
	if desc.Size < 0 {
		return Result{}, fmt.Errorf("layer %s: invalid descriptor size %d: %w",
			desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	mounts, deactivate, err := a.activateMounts(ctx, desc, mounts)
	if err != nil {
		return Result{}, err
	}
	defer deactivate()
	target, err := targetmount.Plan(mounts)
	if err != nil {
		return Result{}, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}

	res, err := a.run(ctx, desc, target, config)
	if err != nil {
		return Result{}, err
	}
	res.Target = target.Kind.String()
	res.Duration = time.Since(start)
	log.G(ctx).WithFields(log.Fields{
		"digest":       desc.Digest,
		"media":        desc.MediaType,
		"size":         desc.Size,
		"uncompressed": res.Diff.Size,
		"entries":      res.Entries,
		"target":       res.Target,
		"d":            res.Duration,
	}).Debug("layer applied")
	return res, nil
}
