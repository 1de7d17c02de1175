package child

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/chroot-applier/containerd-chroot-applier/mount"
)

// keptCapabilities are the capabilities extraction needs: owning, moding and
// timing files of any owner, creating device nodes, and writing
// security.capability (CAP_SETFCAP) and trusted.* or security.* xattrs
// (CAP_SYS_ADMIN). Everything else, CAP_SYS_CHROOT and CAP_SYS_PTRACE
// included, is dropped from every set and from the bounding set.
var keptCapabilities = []uintptr{
	unix.CAP_CHOWN,
	unix.CAP_DAC_OVERRIDE,
	unix.CAP_DAC_READ_SEARCH,
	unix.CAP_FOWNER,
	unix.CAP_FSETID,
	unix.CAP_MKNOD,
	unix.CAP_SETFCAP,
	unix.CAP_SYS_ADMIN,
}

// confine makes root the root of the child and drops what extraction does
// not need. It returns "pivot_root", or "chroot" when pivot_root failed (as
// it does when the current root is a ramfs).
//
// Guarantees, once it returns nil: the child is in a mount namespace of its
// own (checked against the parent's, not assumed); no path lookup of the
// child can leave root, since the old root is detached (pivot_root) or the
// child can no longer chroot again (chroot, with CAP_SYS_CHROOT dropped);
// no_new_privs is set; the umask is 0. Not guaranteed: descriptors the child
// opened before confine (the lowerdirs) still refer to the host, so they
// must only be used through scoped lookups.
func confine(root string, _ mount.Kind) (string, error) {
	if err := checkPrivateNamespace(); err != nil {
		return "", err
	}
	// Go's exec already remounted / private when it unshared the
	// namespace; this makes the rule explicit and independent of it.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", fmt.Errorf("failed to make mounts private: %w", err)
	}

	if err := unix.Chdir(root); err != nil {
		return "", fmt.Errorf("failed to enter target %s: %w", root, err)
	}
	method := "pivot_root"
	if pivotErr := unix.PivotRoot(".", "."); pivotErr == nil {
		// pivot_root(".", ".") stacks the old root on the new one; detaching
		// it leaves nothing of the host reachable by path.
		if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
			return "", fmt.Errorf("failed to detach old root: %w", err)
		}
	} else {
		method = "chroot"
		if err := unix.Chroot("."); err != nil {
			return "", fmt.Errorf("failed to confine to target %s (pivot_root: %v): chroot: %w",
				root, pivotErr, err)
		}
	}
	if err := unix.Chdir("/"); err != nil {
		return "", fmt.Errorf("failed to enter new root: %w", err)
	}

	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return "", fmt.Errorf("failed to set no_new_privs: %w", err)
	}
	if err := dropCapabilities(); err != nil {
		return "", err
	}
	unix.Umask(0)
	return method, nil
}

// checkPrivateNamespace fails unless the child's mount namespace differs from
// its parent's, so that no mount the child makes can ever land on the host.
func checkPrivateNamespace() error {
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Errorf("failed to read own mount namespace: %w", err)
	}
	parent, err := os.Readlink("/proc/" + strconv.Itoa(os.Getppid()) + "/ns/mnt")
	if err != nil {
		return fmt.Errorf("failed to read parent's mount namespace: %w", err)
	}
	if own == parent {
		return errors.New("child shares its parent's mount namespace; refusing to mount")
	}
	return nil
}

// dropCapabilities reduces the bounding, permitted, effective and
// inheritable sets to keptCapabilities and clears the ambient set. It applies
// to every thread of the child when the runtime allows it (binaries built
// without cgo) and to the calling, locked thread otherwise; the child does
// all its work on that thread.
func dropCapabilities() error {
	keep := map[uintptr]bool{}
	var mask [2]uint32
	for _, c := range keptCapabilities {
		keep[c] = true
		mask[c/32] |= 1 << (c % 32)
	}

	for c := uintptr(0); c <= unix.CAP_LAST_CAP; c++ {
		if keep[c] {
			continue
		}
		if err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); err != nil &&
			!errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("failed to drop capability %d from the bounding set: %w", c, err)
		}
	}
	err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0)
	if err != nil {
		return fmt.Errorf("failed to clear ambient capabilities: %w", err)
	}

	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: mask[0], Permitted: mask[0]},
		{Effective: mask[1], Permitted: mask[1]},
	}
	// The pointer conversions stay in the call so that hdr and data stay
	// alive and in place for the system call.
	err = allThreads(unix.SYS_CAPSET,
		uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	if err != nil {
		return fmt.Errorf("failed to set capabilities: %w", err)
	}
	return nil
}

// allThreads runs a system call on every thread, or on the calling thread
// alone when the runtime cannot (cgo is linked in).
func allThreads(trap, a1, a2, a3 uintptr) error {
	_, _, errno := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	if errno == syscall.ENOTSUP {
		_, _, errno = syscall.RawSyscall(trap, a1, a2, a3)
	}
	if errno != 0 {
		return errno
	}
	return nil
}
