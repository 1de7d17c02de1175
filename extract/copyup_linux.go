package extract

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyUp copies name from the first lowerdir that has it into the target,
// as overlayfs copies a file up before it links it. Whiteouts and opaque
// directories hide lower files as they do on the merged mount. Content,
// owner, mode, non-trusted xattrs and times are copied. A symlink is copied
// as a symlink and a device node as a device node, and missing parents are
// created as implied parents. It returns false when the merged mount shows
// no file at name.
//
// The xattrs of symlinks and device nodes are not copied, because they can
// only be read through a path, and a path into a lowerdir is not scoped.
func (a *applier) copyUp(name string) (bool, error) {
	for i, l := range a.opts.Lowers {
		if hidden, err := a.hiddenFrom(name, i); err != nil || hidden {
			return false, err
		}
		fd, err := openLower(l, name, unix.O_PATH|unix.O_NOFOLLOW)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("failed to look up %s in lowerdir %s: %w", name, l.Name(), err)
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return false, fmt.Errorf("failed to stat %s in lowerdir %s: %w", name, l.Name(), err)
		}
		kind := st.Mode & unix.S_IFMT
		if kind == unix.S_IFCHR && st.Rdev == 0 {
			return false, nil
		}
		if kind == unix.S_IFDIR {
			return false, fmt.Errorf("hardlink target %s is a directory: %w", name, ErrInvalidLayer)
		}

		parent, _ := splitName(name)
		if err := a.mkparent(parent); err != nil {
			return false, err
		}
		if err := a.copyUpNode(l, fd, name, &st); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

// copyUpNode creates name in the target as a copy of the lower inode fd,
// whose status is st.
func (a *applier) copyUpNode(l *os.File, fd int, name string, st *unix.Stat_t) error {
	p := a.path(name)
	times := []unix.Timespec{st.Atim, st.Mtim}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return a.copyUpFile(l, name, st)
	case unix.S_IFLNK:
		target, err := readlinkFD(fd)
		if err != nil {
			return fmt.Errorf("failed to read symlink %s in lowerdir %s: %w", name, l.Name(), err)
		}
		if err := unix.Symlinkat(target, unix.AT_FDCWD, p); err != nil {
			return fmt.Errorf("failed to copy up symlink %s: %w", name, err)
		}
	default:
		if err := unix.Mknodat(unix.AT_FDCWD, p, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("failed to copy up %s: %w", name, err)
		}
	}
	if err := lchown(p, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("failed to chown %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, p, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("failed to chmod %s: %w", name, err)
		}
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("failed to set times of %s: %w", name, err)
	}
	return nil
}

// copyUpFile copies the regular file name from the lowerdir l.
func (a *applier) copyUpFile(l *os.File, name string, st *unix.Stat_t) error {
	src, err := openLower(l, name, unix.O_RDONLY|unix.O_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("failed to open %s in lowerdir %s: %w", name, l.Name(), err)
	}
	srcFile := os.NewFile(uintptr(src), name)
	defer srcFile.Close()

	dst, err := unix.Openat(unix.AT_FDCWD, a.path(name),
		unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("failed to copy up %s: %w", name, err)
	}
	defer unix.Close(dst)
	if err := a.copyContent(fdWriter(dst), io.Reader(srcFile), name); err != nil {
		return err
	}
	if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("failed to chown %s: %w", name, err)
	}
	err = copyXattrs(src, func(key string, value []byte) error {
		return unix.Fsetxattr(dst, key, value, 0)
	})
	if err != nil {
		return fmt.Errorf("failed to copy up %s: %w", name, err)
	}
	if err := unix.Fchmod(dst, st.Mode&0o7777); err != nil {
		return fmt.Errorf("failed to chmod %s: %w", name, err)
	}
	times := [2]unix.Timespec{st.Atim, st.Mtim}
	if err := futimens(dst, &times); err != nil {
		return fmt.Errorf("failed to set times of %s: %w", name, err)
	}
	return nil
}

// readlinkFD returns the target of the symlink opened with O_PATH as fd.
func readlinkFD(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
