package extract

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// paxXattrPrefix starts the PAX records that carry xattrs.
const paxXattrPrefix = "SCHILY.xattr."

// opaqueXattr marks an overlay directory opaque.
const opaqueXattr = "trusted.overlay.opaque"

// applyXattrs writes the xattrs of hdr with set. Like the walking differ, it
// skips three kinds with a warning. trusted.* xattrs are skipped because
// only an opaque marker may make a directory opaque and no layer may plant
// overlay redirects. Also skipped are xattrs the file system does not
// support, and user.* xattrs rejected on a file that is neither regular nor
// a directory. regularOrDir tells which kind of file name is.
func (a *applier) applyXattrs(hdr *tar.Header, name string, regularOrDir bool,
	set func(key string, value []byte) error) error {
	for record, value := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(record, paxXattrPrefix)
		if !ok {
			continue
		}
		if strings.HasPrefix(key, "trusted.") {
			a.warn(hdr.Name, "xattr "+key+" not applied: trusted xattrs from a layer are ignored")
			continue
		}
		err := set(key, []byte(value))
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOTSUP):
			a.warn(hdr.Name, "xattr "+key+" not applied: not supported by the target")
		case errors.Is(err, unix.EPERM) && strings.HasPrefix(key, "user.") && !regularOrDir:
			a.warn(hdr.Name, "xattr "+key+" not applied: user xattrs need a file or directory")
		case errors.Is(err, unix.E2BIG), errors.Is(err, unix.ERANGE):
			// setxattr(2): E2BIG for a value and ERANGE for a name over the
			// kernel's limits (64 KiB and 255 bytes).
			return fmt.Errorf("xattr %.64s of %s is too large: %w: %w", key, name, err,
				ErrInvalidLayer)
		case errors.Is(err, unix.ENOSPC):
			// The file system has no room for this many xattrs on one file,
			// such as ext4, which keeps them in one block.
			return fmt.Errorf("xattrs of entry do not fit on %s: %w: %w", name, err,
				ErrInvalidLayer)
		default:
			return fmt.Errorf("failed to set xattr %s on %s: %w", key, name, err)
		}
	}
	return nil
}
