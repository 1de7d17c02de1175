package manifest

import (
	"fmt"
	"sort"
	"time"
)

// Option configures Diff.
type Option func(*diffOptions)

type diffOptions struct {
	volatileAfter int64
	hasVolatile   bool
}

// kernelClockLag bounds how far a time the kernel stamps on a file can be
// behind time.Now taken just before. The kernel stamps files from a clock
// that advances once per tick, 10 ms at most, so a file changed right after
// time.Now can carry an earlier time.
const kernelClockLag = 100 * time.Millisecond

// VolatileAfter makes every modification time at or after t, less the
// kernel's clock lag, equal to any other such time. Appliers give whiteout
// devices, implied parent directories and the target root the time of
// extraction, which differs between two runs.
func VolatileAfter(t time.Time) Option {
	return func(o *diffOptions) {
		o.volatileAfter = t.Add(-kernelClockLag).UnixNano()
		o.hasVolatile = true
	}
}

// Diff returns the differences between a and b, one line per differing
// field or path, or nil when the trees match.
func Diff(a, b Manifest, opts ...Option) []string {
	var o diffOptions
	for _, opt := range opts {
		opt(&o)
	}
	var diffs []string
	i, j := 0, 0
	for i < len(a.Entries) || j < len(b.Entries) {
		switch {
		case j >= len(b.Entries) || (i < len(a.Entries) && a.Entries[i].Path < b.Entries[j].Path):
			e := a.Entries[i]
			diffs = append(diffs, fmt.Sprintf("%s: only in first tree (%s)", e.Path, e.Type))
			i++
		case i >= len(a.Entries) || b.Entries[j].Path < a.Entries[i].Path:
			e := b.Entries[j]
			diffs = append(diffs, fmt.Sprintf("%s: only in second tree (%s)", e.Path, e.Type))
			j++
		default:
			diffs = append(diffs, diffEntry(a.Entries[i], b.Entries[j], o)...)
			i++
			j++
		}
	}
	return diffs
}

func diffEntry(a, b Entry, o diffOptions) []string {
	var diffs []string
	field := func(name string, x, y any) {
		if x != y {
			diffs = append(diffs, fmt.Sprintf("%s: %s %v != %v", a.Path, name, x, y))
		}
	}
	field("type", a.Type, b.Type)
	field("mode", fmt.Sprintf("%04o", a.Mode), fmt.Sprintf("%04o", b.Mode))
	field("uid", a.UID, b.UID)
	field("gid", a.GID, b.GID)
	field("size", a.Size, b.Size)
	field("sha256", a.SHA256, b.SHA256)
	field("link", a.Link, b.Link)
	field("device", fmt.Sprintf("%d:%d", a.Major, a.Minor), fmt.Sprintf("%d:%d", b.Major, b.Minor))
	field("same inode as", a.SameInode, b.SameInode)
	if !(o.hasVolatile && a.Mtime >= o.volatileAfter && b.Mtime >= o.volatileAfter) {
		field("mtime", time.Unix(0, a.Mtime).UTC().Format(time.RFC3339Nano),
			time.Unix(0, b.Mtime).UTC().Format(time.RFC3339Nano))
	}

	keys := map[string]bool{}
	for k := range a.Xattrs {
		keys[k] = true
	}
	for k := range b.Xattrs {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		x, inA := a.Xattrs[k]
		y, inB := b.Xattrs[k]
		switch {
		case !inA:
			diffs = append(diffs, fmt.Sprintf("%s: xattr %s only in second tree (%q)",
				a.Path, k, y))
		case !inB:
			diffs = append(diffs, fmt.Sprintf("%s: xattr %s only in first tree (%q)",
				a.Path, k, x))
		case x != y:
			diffs = append(diffs, fmt.Sprintf("%s: xattr %s %q != %q", a.Path, k, x, y))
		}
	}
	return diffs
}
