package extract

import (
	"archive/tar"
	"fmt"
	"math"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// applier is the state of one Apply.
type applier struct {
	opts Options
	root string
	buf  []byte
	// src is the stream under the tar reader, once Apply has begun.
	src *source

	// dirs are the directory entries of the layer, in entry order, whose
	// times are set once every entry is applied.
	dirs []dirTime
	// created contains the resolved paths of the entries and implied
	// parents this layer created.
	created map[string]struct{}
	// pending contains created names whose parent may contain a symlink.
	// They are resolved into created when a whiteout needs them.
	pending []string
	// exactDirs are directories created by this layer under a name with
	// no symlink in it, so that names below them are their own resolved
	// path.
	exactDirs dirIndex
	// whiteouts holds the resolved paths of the overlay whiteouts this
	// layer created.
	whiteouts map[string]struct{}
	// emptiedDirs are the directories that an opaque marker or a whiteout
	// of this layer has already emptied of lower-layer entries
	// (DeleteWhiteouts). Nothing but this layer's own entries can appear
	// below them afterwards, so emptying them again would find nothing.
	emptiedDirs map[string]struct{}
	// dirReads counts the directories read to remove lower-layer entries,
	// for tests.
	dirReads int
}

type dirTime struct {
	// entry is the entry name as in the header, name the cleaned one.
	entry, name string
	times       [2]unix.Timespec
}

func newApplier(opts Options) *applier {
	root := path.Clean(opts.Root)
	if root == "." {
		root = "/"
	}
	return &applier{
		opts:        opts,
		root:        root,
		buf:         make([]byte, copyBufferSize),
		created:     map[string]struct{}{},
		exactDirs:   newDirIndex(),
		whiteouts:   map[string]struct{}{},
		emptiedDirs: map[string]struct{}{},
	}
}

// path returns the absolute path of name, a cleaned relative name.
func (a *applier) path(name string) string {
	if name == "" {
		return a.root
	}
	if a.root == "/" {
		return "/" + name
	}
	return a.root + "/" + name
}

func (a *applier) warn(entry, reason string) {
	if a.opts.Warn != nil {
		a.opts.Warn(entry, reason)
	}
}

// whiteoutPrefix starts the name of every whiteout entry, and opaqueMarker
// is the name of the entry that makes its directory opaque.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// applyEntry applies one tar entry; r yields the content of a regular file.
func (a *applier) applyEntry(hdr *tar.Header, r *tar.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeLink: //nolint:staticcheck
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if !fitsUint32(hdr.Devmajor) || !fitsUint32(hdr.Devminor) {
			return fmt.Errorf("device number %d:%d out of range: %w",
				hdr.Devmajor, hdr.Devminor, ErrInvalidLayer)
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, ErrInvalidLayer)
	}

	name := cleanName(hdr.Name)
	if name == "" {
		return nil
	}
	parent, base := splitName(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		if base == opaqueMarker {
			return a.applyOpaque(hdr, parent)
		}
		hidden := base[len(whiteoutPrefix):]
		if hidden == "" || hidden == "." || hidden == ".." || strings.Contains(hidden, "/") {
			return fmt.Errorf("invalid whiteout name %q: %w", base, ErrInvalidLayer)
		}
		return a.applyWhiteout(hdr, parent, hidden)
	}
	return a.createEntry(hdr, name, r)
}

func fitsUint32(n int64) bool { return n >= 0 && n <= math.MaxUint32 }

// splitName splits a cleaned relative name into its parent ("" for the
// root) and its last component.
func splitName(name string) (string, string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

func joinName(parent, base string) string {
	if parent == "" {
		return base
	}
	return parent + "/" + base
}
