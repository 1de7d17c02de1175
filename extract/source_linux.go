package extract

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// spliceMin is the smallest file content moved by splice(2) rather than
// read and written. Smaller contents are copied through the buffer, which
// saves the system calls splice adds. The value is an estimate, not measured.
const spliceMin = 256 << 10

// errNoSeek makes archive/tar skip content by reading it.
var errNoSeek = errors.New("nothing spliced to skip")

// source is the layer stream under the tar reader. When the stream is a
// pipe, large file contents go from the pipe to their file by splice(2)
// without passing through this process. source then lets the tar reader
// skip those bytes without reading them, because archive/tar skips the
// unread content of an entry by seeking when its reader is an io.Seeker
// whose seek to the current position succeeds.
type source struct {
	br *bufio.Reader
	// pipe is the descriptor of the pipe br reads, or -1. It is also set
	// to -1 once the target's file system rejects splice.
	pipe int
	// stagingR and stagingW are the ends of a pipe of this process's own
	// through which spliced contents pass, at most batch bytes at a time
	// (see Options.SpliceBatch). They are nil until the first splice.
	// batch is 0 when contents go straight from pipe to their file.
	stagingR, stagingW *os.File
	batch              int
	// skip is the number of bytes splice consumed that the tar reader has
	// still to skip, and pos the position the tar reader has reached.
	skip int64
	pos  int64
}

func newSource(r io.Reader, batch int) *source {
	s := &source{br: bufio.NewReaderSize(r, readBufferSize), pipe: -1, batch: batch}
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
			// Fd leaves the descriptor in blocking mode, as splice needs.
			s.pipe = int(f.Fd())
		}
	}
	return s
}

func (s *source) Read(p []byte) (int, error) {
	if s.skip > 0 {
		// Only archive/tar's skipping of content reads here, and it
		// discards what it reads.
		n := int(min(int64(len(p)), s.skip))
		s.skip -= int64(n)
		s.pos += int64(n)
		return n, nil
	}
	n, err := s.br.Read(p)
	s.pos += int64(n)
	return n, err
}

// Seek moves forward over spliced bytes only. It fails when there are none,
// so that archive/tar reads what it skips of any other entry.
func (s *source) Seek(offset int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || s.skip == 0 || offset < 0 || offset > s.skip {
		return 0, errNoSeek
	}
	s.skip -= offset
	s.pos += offset
	return s.pos, nil
}

// canSplice reports whether the content of hdr may be spliced: it must be a
// plain regular file whose stored size is its size.
func (s *source) canSplice(hdr *tar.Header) bool {
	if s.pipe < 0 || hdr.Size < spliceMin || hdr.Typeflag != tar.TypeReg {
		return false
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return false
		}
	}
	return true
}

// spliceTo moves the next size bytes of the stream to fd: what the buffer
// holds by write(2), the rest by splice(2). When the target's file system
// cannot splice, the rest is copied through buf and nothing more is
// spliced. The tar reader then skips the size bytes without reading them.
// readErr is set when the stream ends early, writeErr when fd fails.
func (s *source) spliceTo(fd int, size int64, buf []byte) (readErr, writeErr error) {
	var done int64
	for done < size {
		if s.br.Buffered() > 0 || s.pipe < 0 {
			n := size - done
			if s.pipe >= 0 {
				n = min(n, int64(s.br.Buffered()))
			}
			copied, readErr, writeErr := copyTo(fd, s.br, n, buf)
			done += copied
			if readErr != nil || writeErr != nil {
				return readErr, writeErr
			}
			continue
		}
		if s.batch > 0 && s.openStaging() {
			n, readErr, writeErr := s.spliceStaged(fd, min(size-done, int64(s.batch)), buf)
			done += n
			if readErr != nil || writeErr != nil {
				return readErr, writeErr
			}
			continue
		}
		n, err := spliceRetry(s.pipe, fd, min(size-done, writeMax), unix.SPLICE_F_MOVE)
		switch {
		case err == unix.EINVAL:
			s.pipe = -1
		case err != nil:
			return nil, err
		case n == 0:
			return io.ErrUnexpectedEOF, nil
		default:
			done += n
		}
	}
	s.skip += size
	return nil, nil
}

// spliceRetry splices at most n bytes from the pipe in into out, retrying on
// EINTR.
func spliceRetry(in, out int, n int64, flags int) (int64, error) {
	for {
		moved, err := unix.Splice(in, nil, out, nil, int(n), flags)
		if err != unix.EINTR {
			return moved, err
		}
	}
}

// copyTo copies n bytes from r to fd through buf. readErr is set when r
// fails or ends before n bytes, writeErr when fd fails.
func copyTo(fd int, r io.Reader, n int64, buf []byte) (copied int64, readErr, writeErr error) {
	for copied < n {
		m, err := r.Read(buf[:min(int64(len(buf)), n-copied)])
		if m > 0 {
			if err := fdWriter(fd).writeAll(buf[:m]); err != nil {
				return copied, nil, err
			}
			copied += int64(m)
		}
		if err == io.EOF && copied < n {
			return copied, io.ErrUnexpectedEOF, nil
		}
		if err != nil && err != io.EOF {
			return copied, err, nil
		}
	}
	return copied, nil, nil
}

// openStaging creates the staging pipe on first use and reports whether
// there is one. Without it, contents are spliced straight from the stream.
// The pipe is asked for a capacity of batch bytes. Where the kernel gives
// it less, moves into it are only smaller.
func (s *source) openStaging() bool {
	if s.stagingW != nil {
		return true
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		s.batch = 0
		return false
	}
	unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, s.batch)
	// The descriptors stay in blocking mode, as splice needs. os.NewFile
	// then keeps them out of Go's poller, so that moving bytes out of the
	// pipe wakes no thread of this process. The ends of os.Pipe are in
	// the poller and would wake one for every splice.
	s.stagingR = os.NewFile(uintptr(fds[0]), "staging pipe")
	s.stagingW = os.NewFile(uintptr(fds[1]), "staging pipe")
	return true
}

// spliceStaged moves at most max bytes of the stream into the staging pipe,
// in one splice(2) that takes what the stream's pipe contains, and then
// empties the staging pipe into fd. It returns how many bytes reached fd.
// The staging pipe is always empty when it returns without an error, which
// the parent's reuse of its buffers depends on (Options.SpliceBatch).
func (s *source) spliceStaged(fd int, max int64, buf []byte) (done int64, readErr,
	writeErr error) {
	moved, err := spliceRetry(s.pipe, int(s.stagingW.Fd()), max, 0)
	if err != nil {
		// Moving page references between two pipes of this process
		// fails for local reasons only.
		return 0, nil, fmt.Errorf("failed to splice stream into staging pipe: %w", err)
	}
	if moved == 0 {
		return 0, io.ErrUnexpectedEOF, nil
	}
	for done < moved && s.pipe >= 0 {
		n, err := spliceRetry(int(s.stagingR.Fd()), fd, min(moved-done, writeMax),
			unix.SPLICE_F_MOVE)
		switch {
		case err == unix.EINVAL:
			s.pipe = -1
		case err != nil:
			return done, nil, err
		case n == 0:
			return done, nil, io.ErrShortWrite
		default:
			done += n
		}
	}
	if done < moved {
		// The file system rejects splice, so the bytes already in the
		// staging pipe are copied through buf. A failure to read this
		// process's own pipe is no fault of the layer.
		copied, readErr, writeErr := copyTo(fd, s.stagingR, moved-done, buf)
		done += copied
		if readErr != nil {
			return done, nil, fmt.Errorf("failed to read staging pipe: %w", readErr)
		}
		if writeErr != nil {
			return done, nil, writeErr
		}
	}
	return done, nil, nil
}

// close closes the staging pipe.
func (s *source) close() {
	if s.stagingW != nil {
		s.stagingR.Close()
		s.stagingW.Close()
		s.stagingR, s.stagingW = nil, nil
	}
}
