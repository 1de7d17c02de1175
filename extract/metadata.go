package extract

import (
	"archive/tar"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The metadata of an entry is applied in the walking differ's order: owner,
// xattrs, mode, times. Changing the owner clears the setuid and setgid bits
// and security.capability, so the mode and the xattrs come after it.

// applyFileMetadata applies the metadata of a regular file through its open
// descriptor.
func (a *applier) applyFileMetadata(hdr *tar.Header, name string, fd int) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("failed to chown %s to %d:%d: %w", name, hdr.Uid, hdr.Gid, err)
	}
	err := a.applyXattrs(hdr, name, true, func(key string, value []byte) error {
		return unix.Fsetxattr(fd, key, value, 0)
	})
	if err != nil {
		return err
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return fmt.Errorf("failed to chmod %s: %w", name, err)
	}
	times := entryTimes(hdr)
	if err := futimens(fd, &times); err != nil {
		return fmt.Errorf("failed to set times of %s: %w", name, err)
	}
	return nil
}

// applyMetadata applies the metadata of a directory, symlink or device node
// by path, never following a symlink at name. Directory times are left for
// setDirTimes.
func (a *applier) applyMetadata(hdr *tar.Header, name string, isDir, isSymlink bool) error {
	p := a.path(name)
	if err := lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("failed to chown %s to %d:%d: %w", name, hdr.Uid, hdr.Gid, err)
	}
	err := a.applyXattrs(hdr, name, isDir, func(key string, value []byte) error {
		return unix.Lsetxattr(p, key, value, 0)
	})
	if err != nil {
		return err
	}
	if !isSymlink {
		// name is not a symlink, so following the last component is safe.
		if err := unix.Fchmodat(unix.AT_FDCWD, p, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("failed to chmod %s: %w", name, err)
		}
	}
	if isDir {
		return nil
	}
	times := entryTimes(hdr)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, times[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("failed to set times of %s: %w", name, err)
	}
	return nil
}

// setDirTimes sets the times of every directory entry, in entry order, once
// no later entry can change them. The name is resolved with every symlink
// followed, as the walking differ does. A directory that a later entry
// removed is skipped.
func (a *applier) setDirTimes() error {
	for _, d := range a.dirs {
		err := unix.UtimesNanoAt(unix.AT_FDCWD, a.path(d.name), d.times[:], 0)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			continue
		}
		if err != nil {
			err = fmt.Errorf("failed to set times of %s: %w", d.name, err)
			return &EntryError{Entry: d.entry, Err: err}
		}
	}
	return nil
}

// lchown changes the owner of p without following a symlink at p.
func lchown(p string, uid, gid int) error {
	return unix.Fchownat(unix.AT_FDCWD, p, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// futimens sets the access and modification times of an open descriptor.
func futimens(fd int, times *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0,
		uintptr(unsafe.Pointer(&times[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
