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
		buffers    = 4
		total      = 24 << 20
	)
	for _, tc := range []struct {
		name     string
		pipeSize int
		copying  bool
		splice   bool
		// unsupportedAfter, when not zero, makes vmsplice move at most
		// 8 KiB a call and fail as unsupported after that many calls, so
		// that the fallback to copying starts inside a buffer.
		unsupportedAfter int
	}{
		{name: "vmsplice, reader reads", pipeSize: bufferSize},
		{name: "vmsplice, reader splices into a file", pipeSize: bufferSize, splice: true},
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
			pipe, err := newTarPipe(w, give, bufferSize, bufferSize*(buffers-2))
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
				if tc.splice {
					err = spliceAndCheck(r, dir, total)
				} else {
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
	f, err := os.Create(filepath.Join(dir, "spliced"))
	if err != nil {
		return err
	}
	defer f.Close()

	in, out := int(r.Fd()), int(f.Fd())
	var off int64
	for off < n {
		m, err := unix.Splice(in, nil, out, nil, int(min(n-off, 100000)), unix.SPLICE_F_MOVE)
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
