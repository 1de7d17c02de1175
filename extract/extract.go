package extract

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// Whiteouts selects how OCI whiteout entries (".wh.NAME" and the opaque
// marker ".wh..wh..opq") are applied.
type Whiteouts int

const (
	// DeleteWhiteouts removes whited-out paths from the target, as when the
	// target is a plain directory that already holds the lower layers.
	DeleteWhiteouts Whiteouts = iota
	// OverlayWhiteouts writes overlayfs whiteouts into an upperdir: a 0:0
	// character device for ".wh.NAME" and the xattr trusted.overlay.opaque=y
	// for ".wh..wh..opq".
	OverlayWhiteouts
)

// Options configures one Apply.
type Options struct {
	// Root is the directory the layer is applied to. In the confined child
	// it is "/".
	Root string
	// Whiteouts selects how whiteout entries are applied.
	Whiteouts Whiteouts
	// Lowers are the overlay lowerdirs, uppermost first, opened with
	// O_PATH|O_DIRECTORY before confinement. They are only read, and only
	// through lookups scoped to each directory (openat2 RESOLVE_IN_ROOT).
	Lowers []*os.File
	// Warn, if set, is called for every entry that is skipped or changed,
	// with the entry name and the reason.
	Warn func(entry, reason string)
	// SpliceBatch, when the stream is a pipe, is the max number of bytes
	// that Apply moves from it at a time into a staging pipe of its own,
	// on the way to a file. Apply empties the staging pipe into the file
	// before it takes more from the stream, so it never keeps more than
	// SpliceBatch bytes there. Each move takes what the stream's pipe
	// contains and wakes the stream's writer once, where splicing straight
	// into the file would wake it for every writeMax bytes. A writer that
	// passes its memory to the stream's pipe with vmsplice(2) must count
	// these bytes as still in that pipe. Zero splices straight from the
	// stream.
	SpliceBatch int
}

// Stats describes an applied layer.
type Stats struct {
	// Size is the sum of the header sizes of all entries, as containerd's
	// archive.Apply counts it.
	Size int64 `json:"size"`
	// Entries is the number of tar entries read.
	Entries int64 `json:"entries"`
}

// ErrInvalidLayer is wrapped by every error caused by the layer's content
// rather than by the target file system.
var ErrInvalidLayer = errors.New("invalid layer content")

// EntryError reports the tar entry whose application failed.
type EntryError struct {
	// Entry is the entry name as it appears in the tar header.
	Entry string
	// Err is the underlying error.
	Err error
}

// Error returns the entry name and the underlying error.
func (e *EntryError) Error() string { return fmt.Sprintf("entry %q: %v", e.Entry, e.Err) }

// Unwrap returns the underlying error.
func (e *EntryError) Unwrap() error { return e.Err }

// readBufferSize is the size of the buffer under the tar reader, and
// copyBufferSize the size of the buffer file contents are copied through.
const (
	readBufferSize = 1 << 20
	copyBufferSize = 1 << 20
)

// writeMax is the most one write(2) or splice(2) puts into a file. The
// kernel sizes a file's page cache folios by the length of each write, so
// this caps them at 32 KiB, the size the walking differ writes. Larger
// folios need larger free blocks. Some virtual machines report free memory
// to their host (virtio-balloon free page reporting), and the host takes it
// back. There, large free blocks are more often memory the host has to back
// again on the first write. On the benchmark's machine, 128 KiB and 256 KiB
// calls made the child's copy into the page cache up to 9 times slower in
// some runs of the large-files input. One apply then took up to 3 s
// instead of 1 s. docs/benchmark.md has the runs and profiles.
const writeMax = 32 << 10

// Apply reads the tar stream r and applies it to opts.Root. It must run in a
// process whose root is the target, with Root "/", because names, symlinks
// and ".." in the layer are resolved by the kernel and are only as
// contained as that root is.
//
// The resulting tree is the one containerd's walking differ (pkg/archive
// Apply, containerd 2.4) produces from the same layer and target. That
// covers modes with setuid, setgid and sticky bits, and numeric owners,
// because names in the headers are never looked up. It also covers xattrs
// from SCHILY.xattr PAX records, symlinks with their own owners and times,
// hardlinks, devices, fifos, and whiteouts and opaque markers in the
// selected form. Implied parent directories get the attributes of the first
// lowerdir that has them, and directory times are set after all entries.
// Entry names are cleaned and made relative, so "../x" and "/x" land at
// "x". An entry naming the root itself is ignored. trusted.* xattrs in the
// layer are never written and are reported through Warn, so only
// ".wh..wh..opq" makes a directory opaque.
//
// Apply deliberately differs from the walking differ where the walking
// differ fails or leaves a tree that the merged overlay mount would not
// show:
//   - With OverlayWhiteouts, a hardlink to a file that exists only in a
//     lowerdir copies the file up into the target first.
//   - With OverlayWhiteouts, a hardlink to a whiteout fails as a missing
//     target, as on the merged mount, instead of making a second whiteout.
//   - A whiteout hides only lower layers. A file and a whiteout of the same
//     name in one layer leave the layer's file, and a directory that
//     replaces a whiteout of the same layer is made opaque.
//   - A whiteout of the same layer met while creating parent directories is
//     replaced by an opaque directory instead of failing the apply.
//   - A PAX global header creates nothing, even when it is named like a
//     path.
//   - Parent directories this layer created implicitly count as created by
//     it, so an opaque marker keeps them.
//   - A directory entry that a later entry of the layer removed gets no
//     times instead of failing the apply.
//
// Limits: sparse files are written with their holes as zeros, as the
// walking differ writes them, because archive/tar reads holes as zeros.
// Two applies to the same target at once leave an undefined tree. Copy-up
// does not copy the xattrs of symlinks and device nodes.
//
// An error applying an entry is an *EntryError naming it. A stream whose
// next header cannot be read fails with an error that names the last entry
// read, and a cancelled ctx stops Apply between entries with ctx.Err().
// Invalid content wraps ErrInvalidLayer, and errors of the file system,
// ENOSPC among them, stay visible to errors.Is. Invalid content includes a
// hardlink to a directory, a name too long for the kernel, an xattr over
// its limits and more xattrs than the file system keeps on one file (ENOSPC
// from setxattr, which then wraps both).
func Apply(ctx context.Context, r io.Reader, opts Options) (Stats, error) {
	return newApplier(opts).apply(ctx, r)
}

// apply is Apply on the state a, which tests inspect afterwards.
func (a *applier) apply(ctx context.Context, r io.Reader) (Stats, error) {
	a.src = newSource(r, a.opts.SpliceBatch)
	defer a.src.close()
	tr := tar.NewReader(a.src)
	var stats Stats
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if last == "" {
				return stats, fmt.Errorf("failed to read first tar header: %v: %w",
					err, ErrInvalidLayer)
			}
			return stats, fmt.Errorf("failed to read tar header after entry %q: %v: %w",
				last, err, ErrInvalidLayer)
		}
		stats.Entries++
		stats.Size += hdr.Size
		last = hdr.Name

		if err := a.applyEntry(hdr, tr); err != nil {
			// A name over PATH_MAX or NAME_MAX cannot exist on any target.
			if errors.Is(err, unix.ENAMETOOLONG) && !errors.Is(err, ErrInvalidLayer) {
				err = fmt.Errorf("%w: %w", err, ErrInvalidLayer)
			}
			return stats, &EntryError{Entry: hdr.Name, Err: err}
		}
	}
	if err := a.setDirTimes(); err != nil {
		return stats, err
	}
	return stats, nil
}

// cleanName turns an entry name into a path relative to the root that
// cannot climb above it: "" is the root itself.
func cleanName(name string) string {
	return path.Clean("/" + name)[1:]
}
