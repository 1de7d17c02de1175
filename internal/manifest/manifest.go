// Package manifest describes a directory tree as a sorted list of entries,
// so that two trees built from the same layers by different appliers can be
// compared field by field.
//
// A manifest records, for every path, what an applier is expected to
// reproduce: type, mode bits including setuid, setgid and sticky, numeric
// owner, size and SHA-256 of regular files, symlink targets, device
// numbers, every xattr (trusted.* and security.* included), the
// modification time in nanoseconds and which paths share an inode. Access
// times are not recorded, because reading a tree changes them.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Entry describes one path of a tree.
type Entry struct {
	// Path is relative to the root, slash-separated; the root is ".".
	Path string
	// Type is "dir", "file", "symlink", "char", "block", "fifo" or
	// "socket".
	Type string
	// Mode holds the permission bits with setuid, setgid and sticky
	// (mode & 07777).
	Mode uint32
	// UID and GID are the numeric owner.
	UID, GID uint32
	// Size is the size of a regular file, 0 for other types.
	Size int64
	// SHA256 is the hex digest of a regular file's content.
	SHA256 string
	// Link is the target of a symlink.
	Link string
	// Major and Minor are the device numbers of a device node.
	Major, Minor uint32
	// Xattrs maps every xattr name to its value.
	Xattrs map[string]string
	// Mtime is the modification time in nanoseconds since the Unix epoch.
	Mtime int64
	// SameInode is the first path, in manifest order, of the group of paths
	// that share this entry's inode, or "" when no other path does.
	SameInode string
}

// Manifest is the entries of a tree, sorted by path.
type Manifest struct {
	Entries []Entry
}

// Get returns the entry for path.
func (m Manifest) Get(path string) (Entry, bool) {
	i := sort.Search(len(m.Entries), func(i int) bool { return m.Entries[i].Path >= path })
	if i < len(m.Entries) && m.Entries[i].Path == path {
		return m.Entries[i], true
	}
	return Entry{}, false
}

// Paths returns the paths of the manifest, in order.
func (m Manifest) Paths() []string {
	paths := make([]string, len(m.Entries))
	for i, e := range m.Entries {
		paths[i] = e.Path
	}
	return paths
}

// Build walks the tree at root, never following a symlink, and returns its
// manifest.
func Build(root string) (Manifest, error) {
	type inodeKey struct{ dev, ino uint64 }
	var m Manifest
	inodes := map[inodeKey][]int{}

	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		e, st, err := describe(p, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if e.Type != "dir" {
			k := inodeKey{uint64(st.Dev), st.Ino}
			inodes[k] = append(inodes[k], len(m.Entries))
		}
		m.Entries = append(m.Entries, e)
		return nil
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("failed to build manifest of %s: %w", root, err)
	}

	for _, group := range inodes {
		if len(group) < 2 {
			continue
		}
		first := m.Entries[group[0]].Path
		for _, i := range group[1:] {
			if m.Entries[i].Path < first {
				first = m.Entries[i].Path
			}
		}
		for _, i := range group {
			m.Entries[i].SameInode = first
		}
	}
	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
	return m, nil
}

func describe(p, rel string) (Entry, unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return Entry{}, st, fmt.Errorf("failed to stat %s: %w", p, err)
	}
	e := Entry{
		Path:  rel,
		Mode:  st.Mode & 0o7777,
		UID:   st.Uid,
		GID:   st.Gid,
		Mtime: st.Mtim.Nano(),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Type = "dir"
	case unix.S_IFREG:
		e.Type = "file"
		e.Size = st.Size
		sum, err := hashFile(p)
		if err != nil {
			return Entry{}, st, err
		}
		e.SHA256 = sum
	case unix.S_IFLNK:
		e.Type = "symlink"
		link, err := os.Readlink(p)
		if err != nil {
			return Entry{}, st, fmt.Errorf("failed to read symlink %s: %w", p, err)
		}
		e.Link = link
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Type = "char"
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			e.Type = "block"
		}
		e.Major, e.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFIFO:
		e.Type = "fifo"
	case unix.S_IFSOCK:
		e.Type = "socket"
	default:
		return Entry{}, st, fmt.Errorf("unknown file type %o of %s", st.Mode&unix.S_IFMT, p)
	}
	xattrs, err := readXattrs(p)
	if err != nil {
		return Entry{}, st, err
	}
	e.Xattrs = xattrs
	return e, st, nil
}

func hashFile(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("failed to open %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("failed to read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readXattrs returns every xattr of p without following a symlink at p, or
// nil when it has none.
func readXattrs(p string) (map[string]string, error) {
	keys, err := listXattrs(p)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	xattrs := map[string]string{}
	for _, key := range keys {
		value, err := getXattr(p, key)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read xattr %s of %s: %w", key, p, err)
		}
		xattrs[key] = string(value)
	}
	return xattrs, nil
}

// listXattrs returns the xattr names of p. The list is read again when it
// grew between the call that sized the buffer and the one that filled it.
func listXattrs(p string) ([]string, error) {
	for {
		size, err := unix.Llistxattr(p, nil)
		if err == unix.ENOTSUP {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("failed to list xattrs of %s: %w", p, err)
		}
		if size == 0 {
			return nil, nil
		}
		buf := make([]byte, size)
		n, err := unix.Llistxattr(p, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to list xattrs of %s: %w", p, err)
		}
		var keys []string
		for _, key := range strings.Split(string(buf[:n]), "\x00") {
			if key != "" {
				keys = append(keys, key)
			}
		}
		return keys, nil
	}
}

func getXattr(p, key string) ([]byte, error) {
	for {
		size, err := unix.Lgetxattr(p, key, nil)
		if err != nil {
			return nil, err
		}
		value := make([]byte, size)
		n, err := unix.Lgetxattr(p, key, value)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		return value[:n], nil
	}
}
