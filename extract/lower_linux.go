package extract

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// openLower opens name inside the lowerdir l. The lookup is scoped to the
// lowerdir (RESOLVE_IN_ROOT): ".." and absolute symlinks stop at it, and
// magic links are refused, so a lowerdir can never lead outside itself.
func openLower(l *os.File, name string, flags int) (int, error) {
	if name == "" {
		name = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(int(l.Fd()), name, &how)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// copyLowerDir gives dir, a directory just created as an implied parent,
// the owner, mode, times and non-trusted xattrs of the same directory in
// the first lowerdir that has that path. The search stops at the first
// lowerdir where the path exists but is not a directory. Without such a
// directory, dir keeps mode 0755 and root ownership.
func (a *applier) copyLowerDir(dir string) error {
	if a.opts.Whiteouts != OverlayWhiteouts {
		return nil
	}
	for _, l := range a.opts.Lowers {
		fd, err := openLower(l, dir, unix.O_RDONLY|unix.O_DIRECTORY)
		if err == unix.ENOENT {
			continue
		}
		if err == unix.ENOTDIR {
			return nil
		}
		if err != nil {
			return fmt.Errorf("failed to look up %s in lowerdir %s: %w", dir, l.Name(), err)
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("failed to stat %s in lowerdir %s: %w", dir, l.Name(), err)
		}
		p := a.path(dir)
		if err := lchown(p, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("failed to chown %s: %w", dir, err)
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, p, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("failed to chmod %s: %w", dir, err)
		}
		times := []unix.Timespec{st.Atim, st.Mtim}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("failed to set times of %s: %w", dir, err)
		}
		return copyXattrs(fd, func(key string, value []byte) error {
			return unix.Lsetxattr(p, key, value, unix.XATTR_CREATE)
		})
	}
	return nil
}

// copyXattrs copies the non-trusted xattrs of the open descriptor fd with
// set. xattrs that vanish, already exist or are not supported are skipped,
// as the walking differ skips them.
func copyXattrs(fd int, set func(key string, value []byte) error) error {
	keys, err := listXattrs(fd)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if strings.HasPrefix(key, "trusted.") {
			continue
		}
		value, err := getXattr(fd, key)
		if err == unix.ENODATA || err == unix.ENOTSUP {
			continue
		}
		if err != nil {
			return fmt.Errorf("failed to read xattr %s: %w", key, err)
		}
		err = set(key, value)
		if err != nil && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("failed to copy xattr %s: %w", key, err)
		}
	}
	return nil
}

func listXattrs(fd int) ([]string, error) {
	for {
		size, err := unix.Flistxattr(fd, nil)
		if err == unix.ENOTSUP {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("failed to list xattrs: %w", err)
		}
		if size == 0 {
			return nil, nil
		}
		buf := make([]byte, size)
		n, err := unix.Flistxattr(fd, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to list xattrs: %w", err)
		}
		return strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00"), nil
	}
}

func getXattr(fd int, key string) ([]byte, error) {
	for {
		size, err := unix.Fgetxattr(fd, key, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		n, err := unix.Fgetxattr(fd, key, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
