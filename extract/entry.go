package extract

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// createEntry creates a non-whiteout entry. It first lets the kernel resolve
// the name. Only when that fails, because a parent is missing or something
// is in the way, does it resolve the name itself, create the parents and
// clear the way.
func (a *applier) createEntry(hdr *tar.Header, name string, r io.Reader) error {
	if hdr.Typeflag == tar.TypeLink {
		return a.createLink(hdr, name)
	}
	retry, err := a.createNode(hdr, name, r, false)
	if err != nil {
		return err
	}
	if !retry {
		a.recordCreated(name, false, hdr.Typeflag == tar.TypeDir)
		return nil
	}

	resolved, existing, err := a.prepare(hdr, name)
	if err != nil {
		return err
	}
	retry, err = a.createNode(hdr, resolved, r, existing == existingDir)
	if err != nil {
		return err
	}
	if retry {
		return fmt.Errorf("failed to create %s: path changed while it was prepared", resolved)
	}
	a.recordCreated(resolved, true, hdr.Typeflag == tar.TypeDir)
	if existing == existingOwnWhiteout && hdr.Typeflag == tar.TypeDir {
		a.warn(hdr.Name, "directory replaces a whiteout of the same layer: made opaque")
		return a.setOpaque(resolved)
	}
	return nil
}

// retryable reports whether a failed creation may succeed once parents are
// created and the way is cleared.
func retryable(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) ||
		errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ELOOP)
}

// createNode creates name as the entry describes and applies its metadata.
// It returns retry when the creation itself failed with an error that
// retryable accepts, before anything changed. With merge set, a directory
// entry only applies its metadata to the directory that is already there.
func (a *applier) createNode(hdr *tar.Header, name string, r io.Reader, merge bool) (bool, error) {
	p := a.path(name)
	perm := uint32(hdr.Mode & 0o7777)

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives still use TypeRegA
		fd, err := unix.Openat(unix.AT_FDCWD, p,
			unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm&0o777)
		if err != nil {
			if retryable(err) {
				return true, nil
			}
			return false, fmt.Errorf("failed to create file %s: %w", name, err)
		}
		return false, a.writeFile(hdr, name, fd, r)

	case tar.TypeDir:
		if !merge {
			if err := unix.Mkdirat(unix.AT_FDCWD, p, perm&0o777); err != nil {
				if retryable(err) {
					return true, nil
				}
				return false, fmt.Errorf("failed to create directory %s: %w", name, err)
			}
		}
		if err := a.applyMetadata(hdr, name, true, false); err != nil {
			return false, err
		}
		a.dirs = append(a.dirs, dirTime{entry: hdr.Name, name: name, times: entryTimes(hdr)})
		return false, nil

	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, unix.AT_FDCWD, p); err != nil {
			if retryable(err) {
				return true, nil
			}
			return false, fmt.Errorf("failed to create symlink %s: %w", name, err)
		}
		return false, a.applyMetadata(hdr, name, false, true)

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := perm
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(unix.AT_FDCWD, p, mode, int(dev)); err != nil {
			if retryable(err) {
				return true, nil
			}
			return false, fmt.Errorf("failed to create device node %s: %w", name, err)
		}
		return false, a.applyMetadata(hdr, name, false, false)
	}
	return false, fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, ErrInvalidLayer)
}

// writeFile copies the content of a regular file into fd and applies the
// entry's metadata through it. It closes fd.
func (a *applier) writeFile(hdr *tar.Header, name string, fd int, r io.Reader) error {
	var err error
	if a.src != nil && a.src.canSplice(hdr) {
		readErr, writeErr := a.src.spliceTo(fd, hdr.Size, a.buf)
		if writeErr != nil {
			err = fmt.Errorf("failed to write %s: %w", name, writeErr)
		} else if readErr != nil {
			err = fmt.Errorf("failed to read content of %s: %v: %w", name, readErr, ErrInvalidLayer)
		}
	} else {
		err = a.copyContent(fdWriter(fd), r, name)
	}
	if err == nil {
		err = a.applyFileMetadata(hdr, name, fd)
	}
	if closeErr := unix.Close(fd); err == nil && closeErr != nil {
		err = fmt.Errorf("failed to close %s: %w", name, closeErr)
	}
	return err
}

// copyContent copies r to w through the applier's buffer. Read errors mean
// the layer is cut short or corrupt; write errors come from the target.
func (a *applier) copyContent(w fdWriter, r io.Reader, name string) error {
	for {
		n, rerr := r.Read(a.buf)
		if n > 0 {
			if err := w.writeAll(a.buf[:n]); err != nil {
				return fmt.Errorf("failed to write %s: %w", name, err)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("failed to read content of %s: %v: %w", name, rerr, ErrInvalidLayer)
		}
	}
}

// fdWriter writes to a raw descriptor, so that no io.ReaderFrom fast path
// replaces the applier's large buffer with a small one.
type fdWriter int

// writeAll writes p to w in calls of at most writeMax bytes.
func (w fdWriter) writeAll(p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(int(w), p[:min(len(p), writeMax)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}
