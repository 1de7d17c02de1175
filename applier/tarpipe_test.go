package applier

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chroot-applier/containerd-chroot-applier/internal/child"
)

// streamByte is the byte at offset off of the test stream. 251 is prime, so
// a buffer refilled for a later offset almost never matches its old bytes.
func streamByte(off int64) byte { return byte(off % 251) }

// TestTarPipeBufferReuse writes a stream through tarPipe
// from a few buffers that are refilled as soon as they come back, while a
// slow reader checks every byte. A buffer given back while the pipe still
// referred to its pages would show the reader bytes of a later offset.
func TestTarPipeBufferReuse(t *testing.T) {
	const (
		bufferSize = 64 << 10
		buffers    = 5
		total      = 24 << 20
	)
	for _, tc := range []struct {
		name     string
		pipeSize int
		copying  bool
		splice   bool
		// batch, when not zero, makes the reader move up to that many
		// bytes at a time into a staging pipe before it splices them
		// into a file, as the child does.
		batch int
		// unsupportedAfter, when not zero, makes vmsplice move at most
		// 8 KiB a call and fail as unsupported after that many calls, so
		// that the fallback to copying starts inside a buffer.
		unsupportedAfter int
	}{
		{name: "vmsplice, reader reads", pipeSize: bufferSize},
		{name: "vmsplice, reader splices into a file", pipeSize: bufferSize, splice: true},
		{name: "vmsplice, reader stages in a pipe of its own", pipeSize: bufferSize,
			batch: bufferSize},
		{name: "vmsplice, pipe smaller than a buffer", pipeSize: 16 << 10},
		{name: "copy", pipeSize: bufferSize, copying: true},
		{name: "vmsplice unsupported inside a buffer", pipeSize: bufferSize,
			unsupportedAfter: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			conn, err := w.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			conn.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, tc.pipeSize) })

			// The most recently given buffer is refilled first, so a
			// buffer given back too early is overwritten at once.
			var free [][]byte
			for range buffers {
				buf, err := mapBuffer(bufferSize)
				if err != nil {
					t.Fatal(err)
				}
				defer unmapBuffer(buf)
				free = append(free, buf)
			}
			give := func(buf []byte) { free = append(free, buf[:cap(buf)]) }
			pipe, err := newTarPipe(w, give, bufferSize, int64(tc.batch),
				bufferSize*(buffers-2))
			if err != nil {
				t.Fatal(err)
			}
			if tc.copying {
				pipe.copying = true
			} else if pipe.copying {
				t.Fatalf("pipe of %d bytes copies, want vmsplice", pipe.reach)
			}
			if tc.unsupportedAfter > 0 {
				calls := 0
				pipe.vmsplice = func(fd int, p []byte) (int, error) {
					calls++
					if calls > tc.unsupportedAfter {
						return 0, unix.ENOSYS
					}
					return vmspliceBytes(fd, p[:min(len(p), 8<<10)])
				}
			}

			// A reader that finds a wrong byte closes the pipe, so that
			// the writer stops too.
			readErr := make(chan error, 1)
			dir := t.TempDir()
			go func() {
				var err error
				switch {
				case tc.batch > 0:
					err = stageAndCheck(r, dir, total, tc.batch)
				case tc.splice:
					err = spliceAndCheck(r, dir, total)
				default:
					err = readAndCheck(r, total)
				}
				if err != nil {
					r.Close()
				}
				readErr <- err
			}()

			var off int64
			for off < total {
				if len(free) == 0 {
					t.Fatalf("the pipe holds every buffer at offset %d", off)
				}
				buf := free[len(free)-1]
				free = free[:len(free)-1]
				for i := range buf {
					buf[i] = streamByte(off + int64(i))
				}
				if err := pipe.write(buf); err != nil {
					t.Fatalf("write failed: %v; reader: %v", err, <-readErr)
				}
				off += int64(len(buf))
			}
			w.Close()
			if err := <-readErr; err != nil {
				t.Fatal(err)
			}
			r.Close()
		})
	}
}

// TestStageBuffersAllowVmsplice checks that the stage has buffers enough
// for what the tar pipe and the child's staging pipe may keep, so that an
// apply passes its buffers with vmsplice rather than copying them.
func TestStageBuffersAllowVmsplice(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	conn, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var sizeErr error
	conn.Control(func(fd uintptr) { _, sizeErr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	if sizeErr != nil {
		t.Skipf("pipe of %d bytes not allowed: %v", pipeSize, sizeErr)
	}
	pipe, err := newTarPipe(w, func([]byte) {}, stageBufferSize, child.SpliceBatch,
		stageBufferSize*(stageBuffers-2))
	if err != nil {
		t.Fatal(err)
	}
	if pipe.copying {
		t.Errorf("tar pipe copies: %d bytes of reach and a buffer of %d exceed %d buffers",
			pipe.reach, stageBufferSize, stageBuffers-2)
	}
}

// readAndCheck reads n bytes from r in small, slow reads and checks them.
func readAndCheck(r io.Reader, n int64) error {
	buf := make([]byte, 3000)
	var off int64
	for off < n {
		m, err := r.Read(buf[:min(int64(len(buf)), n-off)])
		for i := range m {
			if buf[i] != streamByte(off+int64(i)) {
				return fmt.Errorf("byte at offset %d is %d, want %d",
					off+int64(i), buf[i], streamByte(off+int64(i)))
			}
		}
		off += int64(m)
		if err != nil {
			return fmt.Errorf("read failed at offset %d: %w", off, err)
		}
		if off%(1<<20) < int64(m) {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// spliceAndCheck splices n bytes from r into a file in dir, as the child
// does with large file contents, and checks the file.
func spliceAndCheck(r *os.File, dir string, n int64) error {
	return spliceAndCheckVia(r, dir, n, func(in, out int, max int64) (int64, error) {
		return unix.Splice(in, nil, out, nil, int(min(max, 100000)), unix.SPLICE_F_MOVE)
	})
}

// stageAndCheck moves at most batch bytes at a time from r into a staging
// pipe and splices them from there into a file in dir in small calls, as
// the child does with large file contents, and checks the file. Before
// every third move it reads a few bytes with read(2), as the child reads a
// tar header, so that moves start inside a pipe slot and split it.
func stageAndCheck(r *os.File, dir string, n int64, batch int) error {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, batch); err != nil {
		return err
	}
	moves := 0
	header := make([]byte, 1000)
	return spliceAndCheckVia(r, dir, n, func(in, out int, max int64) (int64, error) {
		moves++
		if moves%3 == 0 {
			m, err := unix.Read(in, header[:min(max, int64(len(header)))])
			if err != nil || m == 0 {
				return int64(m), err
			}
			return int64(m), writeFull(out, header[:m])
		}
		staged, err := unix.Splice(in, nil, fds[1], nil, int(min(max, int64(batch))), 0)
		if err != nil || staged == 0 {
			return staged, err
		}
		// Keeping the bytes in the staging pipe a while gives the writer
		// time to refill a buffer given back too early.
		time.Sleep(50 * time.Microsecond)
		for done := int64(0); done < staged; {
			m, err := unix.Splice(fds[0], nil, out, nil, int(min(staged-done, 3000)),
				unix.SPLICE_F_MOVE)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return done, err
			}
			done += m
		}
		return staged, nil
	})
}

// writeFull writes all of p to the descriptor fd.
func writeFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// spliceAndCheckVia moves n bytes from r into a file in dir with move, which
// moves at most max bytes from the descriptor in to out, and checks the
// file.
func spliceAndCheckVia(r *os.File, dir string, n int64,
	move func(in, out int, max int64) (int64, error)) error {
	f, err := os.Create(filepath.Join(dir, "spliced"))
	if err != nil {
		return err
	}
	defer f.Close()

	in, out := int(r.Fd()), int(f.Fd())
	var off int64
	for off < n {
		m, err := move(in, out, n-off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("splice failed at offset %d: %w", off, err)
		}
		if m == 0 {
			return fmt.Errorf("stream ended at offset %d", off)
		}
		off += m
	}

	want := make([]byte, n)
	for i := range want {
		want[i] = streamByte(int64(i))
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		return fmt.Errorf("spliced file differs from offset %d on", i)
	}
	return nil
}
