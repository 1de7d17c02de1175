package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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

// Apply reads the tar stream r and applies it to opts.Root.
func Apply(ctx context.Context, r io.Reader, opts Options) (Stats, error) {
	return Stats{}, errors.New("extract: not implemented yet")
}
