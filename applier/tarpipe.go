package applier

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// tarPipe writes the layer's tar into the pipe that is the child's stdin.
//
// It hands the pipe the pages of the stage's buffers with vmsplice(2)
// instead of copying them, which saves the parent a copy of the whole tar
// and the kernel a page allocation per 4 KiB written. The pipe then refers to
// the buffer's memory until the child has read or spliced those bytes, so a
// buffer goes back to the stage only when no byte of it can still be
// referred to: when at least reach bytes have been written after its last
// byte. Each slot of a pipe contains at most one page, so a pipe of
// capacity C never contains bytes written more than C bytes ago. The child
// moves large file contents from the pipe into a staging pipe of its own,
// at most child.SpliceBatch bytes at a time, and empties the staging pipe
// into the file before it takes more from the pipe. reach is therefore C
// plus child.SpliceBatch.
//
// The buffers must not be Go heap memory, because the pipe may outlive the
// apply when the child is killed: see mapBuffer. Where vmsplice fails as
// unsupported (a seccomp filter, a kernel without it), tarPipe copies with
// write(2) and gives each buffer back at once.
type tarPipe struct {
	conn syscall.RawConn
	// give returns a buffer to the stage.
	give func([]byte)
	// reach is the pipe's capacity in bytes plus what the reader may keep
	// in a pipe of its own: how far behind the end of what was written a
	// byte may still be referred to.
	reach   int64
	written int64
	// pending are the buffers the pipe may still refer to, oldest first.
	pending []pendingBuffer
	// copying is set once vmsplice fails as unsupported.
	copying bool
	// vmsplice is vmspliceBytes, replaced in tests.
	vmsplice func(fd int, p []byte) (int, error)
}

// pendingBuffer is a buffer handed to the pipe and the stream offset just
// after its last byte.
type pendingBuffer struct {
	buf []byte
	end int64
}

// newTarPipe returns a tarPipe writing to w, the write end of a pipe, for
// buffers of bufferSize bytes that go back through give. readerStaged is
// the max number of bytes the reader keeps in a staging pipe of its own
// after taking them from this pipe. newTarPipe reads the pipe's capacity
// from the kernel. The pending buffers contain less than that capacity plus
// readerStaged plus one buffer, and when that could exceed maxHeld bytes,
// tarPipe copies instead, so that the stage is never left waiting for a
// buffer the pipe holds. w must stay in non-blocking mode: a full pipe then
// parks the goroutine in Go's poller rather than holding a processor in a
// blocked system call.
func newTarPipe(w *os.File, give func([]byte), bufferSize, readerStaged, maxHeld int64) (*tarPipe,
	error) {
	conn, err := w.SyscallConn()
	if err != nil {
		return nil, err
	}
	t := &tarPipe{conn: conn, give: give, vmsplice: vmspliceBytes}
	var size int
	var sizeErr error
	if err := conn.Control(func(fd uintptr) {
		size, sizeErr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
	}); err != nil {
		return nil, err
	}
	if sizeErr != nil {
		return nil, fmt.Errorf("failed to read pipe size: %w", sizeErr)
	}
	t.reach = int64(size) + readerStaged
	if t.reach+bufferSize > maxHeld {
		t.copying = true
	}
	return t, nil
}

// write sends all of buf into the pipe. buf belongs to the tarPipe from then
// on. It goes back to the stage through give once the pipe can no longer
// refer to it, or at once if none of it was vmspliced. After an error, buf
// is not given back, because the stream ends there.
func (t *tarPipe) write(buf []byte) error {
	spliced := false
	for p := buf; len(p) > 0; {
		n, err := t.writePrefix(p)
		if err != nil {
			return err
		}
		// writePrefix falls back to copying only before it moves any
		// byte.
		spliced = spliced || !t.copying
		p = p[n:]
		t.written += int64(n)
	}
	if spliced {
		t.pending = append(t.pending, pendingBuffer{buf: buf, end: t.written})
	} else {
		t.give(buf)
	}
	t.release()
	return nil
}

// writePrefix writes a prefix of p, waiting in the poller while the pipe is
// full.
func (t *tarPipe) writePrefix(p []byte) (int, error) {
	var n int
	var err error
	werr := t.conn.Write(func(fd uintptr) bool {
		for {
			if t.copying {
				n, err = unix.Write(int(fd), p)
			} else {
				n, err = t.vmsplice(int(fd), p)
				if vmspliceUnsupported(err) {
					// Nothing was handed over, so the bytes go
					// again by copy.
					t.copying = true
					continue
				}
			}
			if err != unix.EINTR {
				return err != unix.EAGAIN
			}
		}
	})
	if werr != nil {
		return 0, werr
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// vmspliceBytes hands a prefix of p to the pipe fd without blocking.
func vmspliceBytes(fd int, p []byte) (int, error) {
	iov := []unix.Iovec{{Base: &p[0]}}
	iov[0].SetLen(len(p))
	return unix.Vmsplice(fd, iov, unix.SPLICE_F_NONBLOCK)
}

// vmspliceUnsupported reports whether err means that vmsplice cannot be used
// on this pipe.
func vmspliceUnsupported(err error) bool {
	return errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) ||
		errors.Is(err, unix.EINVAL)
}

// release gives back every pending buffer the pipe can no longer refer to.
func (t *tarPipe) release() {
	i := 0
	for i < len(t.pending) && t.pending[i].end <= t.written-t.reach {
		t.give(t.pending[i].buf)
		i++
	}
	t.pending = t.pending[i:]
}

// mapBuffer returns a buffer of size bytes outside the Go heap. A pipe may
// still refer to a buffer's pages after the apply ends, for as long as a
// killed child's pipe lives. Once unmapped, those pages keep the layer's
// bytes and are never reused for other data of this process, as heap memory
// would be.
func mapBuffer(size int) ([]byte, error) {
	return unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
}

// unmapBuffer releases a buffer of mapBuffer.
func unmapBuffer(buf []byte) {
	unix.Munmap(buf[:cap(buf)])
}
