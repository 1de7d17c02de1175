// Package child is the confined child process of package applier.
//
// The parent re-executes its own binary under the name Name with
// github.com/moby/sys/reexec. The child reads Options on descriptor
// OptionsFD and the layer's tar on its stdin, confines itself to the target
// and extracts, then writes one Result as JSON on its stdout.
//
// The child confines itself in four steps. It starts in a mount namespace of
// its own, because the parent sets CLONE_NEWNS, and checks that it differs
// from its parent's. It makes the target its root with pivot_root, or with
// chroot where pivot_root fails. It sets no_new_privs. Then it keeps only the
// capabilities extraction needs, in every set and in the bounding set.
// Names in the layer are then resolved by the kernel inside the target. The
// child's only handles on anything outside it are the lowerdir descriptors
// it opens before confinement, which package extract reads through with
// lookups scoped to each lowerdir.
//
// The package registers and dispatches the child in its init function. Its
// imports are few, so the child starts before the packages of the rest of a
// large binary, such as containerd's, are initialized.
package child
