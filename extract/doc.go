// Package extract applies an OCI layer tar stream to a directory tree.
//
// It is the half of the applier that runs inside the confined child: the
// caller has already made the target the process's root (pivot_root or
// chroot), so every path the layer names, every symlink it plants and every
// ".." it contains is resolved by the kernel inside the target. The checks in
// this package are a second line of defence, never the only one, and Apply
// must not be called on an unconfined root with an untrusted layer.
//
// The reference for the resulting tree is containerd's walking differ
// (core/diff/apply and pkg/archive in containerd 2.x). The doc comment of
// Apply lists the cases where this package deliberately differs from it.
package extract
