package extract

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The functions in this file look paths up as the merged overlay mount of
// the target over its lowerdirs shows them, which copy-up needs to find the
// file a hardlink on the merged mount would reach.

// resolveMerged returns name with every symlink in it resolved as the
// merged overlay mount resolves it. Each component is looked up in the
// target first and then in the lowerdirs, uppermost first, and a whiteout
// or an opaque directory ends the lookup.
func (a *applier) resolveMerged(name string) (string, error) {
	return resolveLinks(name, a.mergedReadlink)
}

// mergedReadlink returns the target of name, a path without symlinks in its
// parents, when the merged mount shows a symlink there.
func (a *applier) mergedReadlink(name string) (string, bool, error) {
	var st unix.Stat_t
	err := unix.Lstat(a.path(name), &st)
	if err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return "", false, nil
		}
		target, err := os.Readlink(a.path(name))
		return target, err == nil, err
	}
	if err != unix.ENOENT && err != unix.ENOTDIR {
		return "", false, err
	}
	for i, l := range a.opts.Lowers {
		if hidden, err := a.hiddenFrom(name, i); err != nil || hidden {
			return "", false, err
		}
		fd, err := openLower(l, name, unix.O_PATH|unix.O_NOFOLLOW)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			continue
		}
		if err != nil {
			return "", false, fmt.Errorf("failed to look up %s in lowerdir %s: %w",
				name, l.Name(), err)
		}
		defer unix.Close(fd)
		if err := unix.Fstat(fd, &st); err != nil {
			return "", false, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return "", false, nil
		}
		target, err := readlinkFD(fd)
		return target, err == nil, err
	}
	return "", false, nil
}

// hiddenFrom reports whether the merged overlay mount hides name in the
// lowerdir with index i and in every one below it. That is so when a parent
// directory of name is a whiteout, or is opaque, in the target or in a
// lowerdir above i.
func (a *applier) hiddenFrom(name string, i int) (bool, error) {
	parent, _ := splitName(name)
	if parent == "" {
		return false, nil
	}
	parts := strings.Split(parent, "/")
	for n := 1; n <= len(parts); n++ {
		dir := strings.Join(parts[:n], "/")
		hidden, err := a.hidesInTarget(dir)
		if err != nil || hidden {
			return hidden, err
		}
		for _, l := range a.opts.Lowers[:i] {
			hidden, err := hidesInLower(l, dir)
			if err != nil || hidden {
				return hidden, err
			}
		}
	}
	return false, nil
}

// hidesInTarget reports whether dir in the target is a whiteout or an
// opaque directory.
func (a *applier) hidesInTarget(dir string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(a.path(dir), &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return false, nil
		}
		return false, fmt.Errorf("failed to inspect %s: %w", dir, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return st.Rdev == 0, nil
	case unix.S_IFDIR:
		value := make([]byte, 1)
		n, err := unix.Lgetxattr(a.path(dir), opaqueXattr, value)
		return err == nil && n == 1 && value[0] == 'y', nil
	}
	return false, nil
}

// hidesInLower reports whether dir in the lowerdir l is a whiteout or an
// opaque directory.
func hidesInLower(l *os.File, dir string) (bool, error) {
	fd, err := openLower(l, dir, unix.O_PATH|unix.O_NOFOLLOW)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to look up %s in lowerdir %s: %w", dir, l.Name(), err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, fmt.Errorf("failed to stat %s in lowerdir %s: %w", dir, l.Name(), err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return st.Rdev == 0, nil
	case unix.S_IFDIR:
		dirFD, err := openLower(l, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return false, fmt.Errorf("failed to open %s in lowerdir %s: %w", dir, l.Name(), err)
		}
		defer unix.Close(dirFD)
		value, err := getXattr(dirFD, opaqueXattr)
		return err == nil && string(value) == "y", nil
	}
	return false, nil
}
