package extract

import (
	"archive/tar"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// maxLinks bounds the symlinks followed while resolving one name, as
// continuity's fs.RootPath bounds them.
const maxLinks = 255

// resolve returns name with every symlink in it resolved inside the root:
// ".." and absolute targets stop at the root, and components that do not
// exist are kept as they are. It is the slow path's equivalent of
// continuity's fs.RootPath and of the kernel's lookup in the confined child.
func (a *applier) resolve(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if a.exactDirs.has(name) {
		return name, nil
	}
	return resolveLinks(name, a.targetReadlink)
}

// targetReadlink returns the target of name, a path without symlinks in its
// parents, when the target has a symlink there. A missing name is no
// symlink.
func (a *applier) targetReadlink(name string) (string, bool, error) {
	var st unix.Stat_t
	err := unix.Lstat(a.path(name), &st)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", false, nil
	}
	target, err := os.Readlink(a.path(name))
	return target, err == nil, err
}

// resolveLinks returns name with every symlink in it resolved, component by
// component, through readlink, which returns the target of a path whose
// parents hold no symlinks and whether that path is a symlink. ".." and
// absolute targets stop at the root; more than maxLinks symlinks fail with
// ELOOP.
func resolveLinks(name string, readlink func(string) (string, bool, error)) (string, error) {
	var resolved []string
	rest := strings.Split(name, "/")
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		candidate := strings.Join(append(resolved, c), "/")
		target, isLink, err := readlink(candidate)
		if err != nil {
			return "", fmt.Errorf("failed to resolve %s: %w", name, err)
		}
		if !isLink {
			resolved = append(resolved, c)
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("failed to resolve %s: too many symlinks: %w", name, unix.ELOOP)
		}
		if strings.HasPrefix(target, "/") {
			resolved = resolved[:0]
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return strings.Join(resolved, "/"), nil
}

// existing is the kind of file prepare found at an entry's path.
type existing int

const (
	existingNone existing = iota
	existingDir
	existingRemoved
	existingOwnWhiteout
)

// prepare resolves the parent of name, creates it if it is missing and
// removes what is in the way of the entry: anything but a directory that a
// directory entry merges with. It returns the resolved name.
func (a *applier) prepare(hdr *tar.Header, name string) (string, existing, error) {
	parent, base := splitName(name)
	resolvedParent, err := a.resolve(parent)
	if err != nil {
		return "", 0, err
	}
	if err := a.mkparent(resolvedParent); err != nil {
		return "", 0, err
	}
	resolved := joinName(resolvedParent, base)

	var st unix.Stat_t
	if err := unix.Lstat(a.path(resolved), &st); err != nil {
		if err == unix.ENOENT {
			return resolved, existingNone, nil
		}
		return "", 0, fmt.Errorf("failed to inspect %s: %w", resolved, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR && hdr.Typeflag == tar.TypeDir {
		return resolved, existingDir, nil
	}
	found := existingRemoved
	if _, ok := a.whiteouts[resolved]; ok {
		delete(a.whiteouts, resolved)
		found = existingOwnWhiteout
	}
	if err := a.removeAll(resolved); err != nil {
		return "", 0, err
	}
	return resolved, found, nil
}

// mkparent makes sure that dir, a resolved name, is a directory. Like the
// walking differ's mkparent, it creates dir and its missing parents with
// mode 0755 and root as owner, unless a lowerdir has the directory. Then
// the owner, mode, times and xattrs of the lower directory are copied. A
// whiteout of this layer in the way is replaced by an opaque directory.
func (a *applier) mkparent(dir string) error {
	if dir == "" {
		return nil
	}
	var st unix.Stat_t
	err := unix.Lstat(a.path(dir), &st)
	if err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return nil
		}
		if _, ok := a.whiteouts[dir]; ok {
			return a.replaceWhiteout(dir)
		}
		return &os.PathError{Op: "mkparent", Path: dir, Err: unix.ENOTDIR}
	}
	if err != unix.ENOENT && err != unix.ENOTDIR {
		return fmt.Errorf("failed to inspect %s: %w", dir, err)
	}

	parent, _ := splitName(dir)
	if err := a.mkparent(parent); err != nil {
		return err
	}
	if err := a.mkdir(dir); err != nil {
		return err
	}
	if err := a.copyLowerDir(dir); err != nil {
		return err
	}
	a.recordCreated(dir, true, true)
	return nil
}

// mkdir creates dir with mode 0755 whatever the umask and the parent's
// setgid bit.
func (a *applier) mkdir(dir string) error {
	p := a.path(dir)
	if err := unix.Mkdirat(unix.AT_FDCWD, p, 0o755); err != nil {
		return fmt.Errorf("failed to create parent directory %s: %w", dir, err)
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, p, 0o755, 0); err != nil {
		return fmt.Errorf("failed to chmod %s: %w", dir, err)
	}
	return nil
}

// replaceWhiteout turns a whiteout of this layer into an opaque directory,
// which is what creating a file below a deleted path on the merged overlay
// mount leaves in the upperdir.
func (a *applier) replaceWhiteout(dir string) error {
	if err := unix.Unlinkat(unix.AT_FDCWD, a.path(dir), 0); err != nil {
		return fmt.Errorf("failed to remove whiteout %s: %w", dir, err)
	}
	delete(a.whiteouts, dir)
	if err := a.mkdir(dir); err != nil {
		return err
	}
	a.recordCreated(dir, true, true)
	return a.setOpaque(dir)
}

func (a *applier) setOpaque(dir string) error {
	if err := unix.Setxattr(a.path(dir), opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("failed to mark %s opaque: %w", dir, err)
	}
	return nil
}

// removeAll removes name and everything below it, never following a
// symlink.
func (a *applier) removeAll(name string) error {
	if err := os.RemoveAll(a.path(name)); err != nil {
		return fmt.Errorf("failed to remove %s: %w", name, err)
	}
	a.exactDirs.remove(name)
	return nil
}

// recordCreated notes that this layer created name. A name is recorded as
// it is when resolved is set or when this layer created its parent under a
// name without symlinks. Any other name is resolved later, when a whiteout
// needs to know.
func (a *applier) recordCreated(name string, resolved, isDir bool) {
	parent, _ := splitName(name)
	if !resolved && parent != "" {
		if !a.exactDirs.has(parent) {
			a.pending = append(a.pending, name)
			return
		}
	}
	a.created[name] = struct{}{}
	if isDir {
		a.exactDirs.add(name)
	} else {
		a.exactDirs.remove(name)
	}
}

// resolvePending resolves the created names recorded without resolution.
// NOTE: they are resolved now, not when they were created, so a symlink in
// their parents that this layer changed in between gives a stale path.
func (a *applier) resolvePending() error {
	parents := map[string]string{}
	for _, name := range a.pending {
		parent, base := splitName(name)
		resolvedParent, ok := parents[parent]
		if !ok {
			var err error
			resolvedParent, err = a.resolve(parent)
			if err != nil {
				return err
			}
			parents[parent] = resolvedParent
		}
		a.created[joinName(resolvedParent, base)] = struct{}{}
	}
	a.pending = a.pending[:0]
	return nil
}
