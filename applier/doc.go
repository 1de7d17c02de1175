// Package applier is a containerd diff applier that extracts each layer in a
// child process confined to the target snapshot.
//
// The parent side (Applier.Apply) reads the layer blob from a content
// provider, verifies its digest while it reads, decompresses it by media type
// and streams the tar into a child re-executed from the running binary with
// github.com/moby/sys/reexec. The child starts in a private mount namespace,
// makes the snapshot its root with pivot_root (chroot where pivot_root cannot
// work), sets no_new_privs, keeps only the capabilities extraction needs and
// extracts with package extract. A layer's symlinks, hardlinks and ".." names
// are therefore resolved by the kernel inside the snapshot, and cannot reach
// the host.
//
// The parent reads, hashes and decompresses the blob in one goroutine while
// another hashes the tar for the diffID and hands it to the child, so that
// the two hashes run on different cores and overlap with the child's writes.
// The tar reaches the child's stdin pipe by vmsplice(2), without a copy.
//
// The child is package internal/child. It is registered and dispatched from
// that package's init function, so any binary that imports this package can
// act as the child, including a containerd binary whose main never calls
// reexec.Init. Because the child runs before main, a binary must not start
// work in an init function that runs after internal/child's.
package applier
