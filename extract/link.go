package extract

import (
	"archive/tar"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// createLink creates a hardlink entry. The target is resolved inside the
// root with its parents' symlinks followed and its last component not, so a
// link to a symlink links the symlink. The entry's owner, xattrs and times
// then apply to the linked inode, and its mode too unless that inode is a
// symlink. With OverlayWhiteouts, a target found only in a lowerdir is
// copied up first, and a target that is a whiteout counts as not found.
func (a *applier) createLink(hdr *tar.Header, name string) error {
	target := cleanName(hdr.Linkname)
	if a.isWhiteout(target) {
		return linkTargetNotFound(hdr)
	}
	err := unix.Linkat(unix.AT_FDCWD, a.path(target), unix.AT_FDCWD, a.path(name), 0)
	if err != nil && !retryable(err) {
		return a.linkError(hdr, name, target, err)
	}
	resolved := false
	if err != nil {
		if name, err = a.linkSlow(hdr, name, target); err != nil {
			return err
		}
		resolved = true
	}
	a.recordCreated(name, resolved, false)

	p := a.path(name)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("failed to inspect %s: %w", name, err)
	}
	if err := lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("failed to chown %s to %d:%d: %w", name, hdr.Uid, hdr.Gid, err)
	}
	regular := st.Mode&unix.S_IFMT == unix.S_IFREG
	err = a.applyXattrs(hdr, name, regular, func(key string, value []byte) error {
		return unix.Lsetxattr(p, key, value, 0)
	})
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, p, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("failed to chmod %s: %w", name, err)
		}
	}
	times := entryTimes(hdr)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, times[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("failed to set times of %s: %w", name, err)
	}
	return nil
}

// linkSlow creates the parents of name, clears the way, resolves the target
// itself and links again, copying the target up from a lowerdir when it is
// missing. It returns the resolved name.
func (a *applier) linkSlow(hdr *tar.Header, name, target string) (string, error) {
	resolved, _, err := a.prepare(hdr, name)
	if err != nil {
		return "", err
	}
	targetParent, targetBase := splitName(target)
	resolvedParent, err := a.resolve(targetParent)
	if err != nil {
		return "", err
	}
	resolvedTarget := joinName(resolvedParent, targetBase)
	if a.isWhiteout(resolvedTarget) {
		return "", linkTargetNotFound(hdr)
	}

	link := func() error {
		return unix.Linkat(unix.AT_FDCWD, a.path(resolvedTarget),
			unix.AT_FDCWD, a.path(resolved), 0)
	}
	err = link()
	canCopyUp := a.opts.Whiteouts == OverlayWhiteouts && len(a.opts.Lowers) > 0
	if errors.Is(err, unix.ENOENT) && canCopyUp {
		// On the merged mount, symlinks that only the lowerdirs have lead
		// the link to the file, so the copy goes where they lead.
		mergedParent, mergeErr := a.resolveMerged(targetParent)
		if mergeErr != nil {
			return "", mergeErr
		}
		resolvedTarget = joinName(mergedParent, targetBase)
		copied, copyErr := a.copyUp(resolvedTarget)
		if copyErr != nil {
			return "", copyErr
		}
		if copied {
			a.warn(hdr.Name, "hardlink target exists only in a lowerdir: copied up")
			err = link()
		}
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return "", linkTargetNotFound(hdr)
	}
	if err != nil {
		return "", a.linkError(hdr, resolved, resolvedTarget, err)
	}
	return resolved, nil
}

// linkError describes a failed link(2) of name to target. link(2) returns
// EPERM for a directory target, which the root, "/" and ".." all are, so
// that case is the layer's fault rather than the file system's.
func (a *applier) linkError(hdr *tar.Header, name, target string, err error) error {
	var st unix.Stat_t
	if errors.Is(err, unix.EPERM) && unix.Lstat(a.path(target), &st) == nil &&
		st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hardlink to a directory: %s to %q: %w", name, hdr.Linkname,
			ErrInvalidLayer)
	}
	return fmt.Errorf("failed to link %s to %s: %w", name, hdr.Linkname, err)
}

func linkTargetNotFound(hdr *tar.Header) error {
	return fmt.Errorf("hardlink target %q not found: %w", hdr.Linkname, ErrInvalidLayer)
}

// isWhiteout reports whether name is an overlay whiteout in the upperdir: a
// 0:0 character device, which the merged mount shows as missing, so that a
// hardlink to it fails as link(2) on the merged mount would.
func (a *applier) isWhiteout(name string) bool {
	if a.opts.Whiteouts != OverlayWhiteouts {
		return false
	}
	var st unix.Stat_t
	err := unix.Lstat(a.path(name), &st)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}
