package applier

import (
	"fmt"
	"syscall"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/chroot-applier/containerd-chroot-applier/internal/child"
)

// ChildError is a failure the confined child reported. It unwraps to an
// errdefs kind: errdefs.ErrInvalidArgument for invalid layer content,
// errdefs.ErrResourceExhausted (and syscall.ENOSPC) for a full target,
// errdefs.ErrNotFound for a missing path named by the request, and
// errdefs.ErrNotImplemented for a mount whose file system type the kernel
// does not have. A read-only target unwraps to errdefs.ErrFailedPrecondition
// and syscall.EROFS.
type ChildError struct {
	// Layer is the digest of the layer being applied.
	Layer digest.Digest
	// Stage is the child's step at the failure: "options", "confine" or
	// "extract".
	Stage string
	// Entry is the tar entry being applied, if the failure has one.
	Entry string
	// Message is the child's error text.
	Message string
	// Kind is the child's classification of the failure.
	Kind string
}

// Error returns the layer, the entry and the child's message.
func (e *ChildError) Error() string {
	if e.Entry != "" {
		return fmt.Sprintf("failed to apply layer %s: %s", e.Layer, e.Message)
	}
	return fmt.Sprintf("failed to apply layer %s (%s): %s", e.Layer, e.Stage, e.Message)
}

// Unwrap returns the errdefs kind of the failure.
func (e *ChildError) Unwrap() []error {
	switch e.Kind {
	case child.KindInvalid:
		return []error{errdefs.ErrInvalidArgument}
	case child.KindNoSpace:
		return []error{errdefs.ErrResourceExhausted, syscall.ENOSPC}
	case child.KindNotFound:
		return []error{errdefs.ErrNotFound}
	case child.KindUnsupported:
		return []error{errdefs.ErrNotImplemented}
	case child.KindReadOnly:
		return []error{errdefs.ErrFailedPrecondition, syscall.EROFS}
	}
	return nil
}
