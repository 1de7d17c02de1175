package extract

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestSpliceToFile checks spliceTo with and without a staging pipe, into a
// plain file and into one opened with O_APPEND, which rejects splice. There
// the content is copied instead, including bytes already in the staging
// pipe when splice fails. In every case the stream after the content is
// then read in order.
func TestSpliceToFile(t *testing.T) {
	content := make([]byte, 3<<20+123)
	for i := range content {
		content[i] = byte(i % 253)
	}
	const after = "after the content"
	for _, batch := range []int{0, 64 << 10} {
		for _, appending := range []bool{false, true} {
			name := fmt.Sprintf("batch %d, O_APPEND %t", batch, appending)
			t.Run(name, func(t *testing.T) {
				testSpliceToFile(t, content, after, batch, appending)
			})
		}
	}
}

func testSpliceToFile(t *testing.T, content []byte, after string, batch int, appending bool) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		w.Write(content)
		w.Write([]byte(after))
		w.Close()
	}()
	s := newSource(r, batch)
	defer s.close()
	flags := os.O_CREATE | os.O_WRONLY
	if appending {
		flags |= os.O_APPEND
	}
	name := filepath.Join(t.TempDir(), "file")
	f, err := os.OpenFile(name, flags, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	size := int64(len(content))
	readErr, writeErr := s.spliceTo(int(f.Fd()), size, make([]byte, copyBufferSize))
	if readErr != nil || writeErr != nil {
		t.Fatalf("spliceTo: read error %v, write error %v", readErr, writeErr)
	}
	if appending && s.pipe != -1 {
		t.Errorf("source still splices after the file rejected it")
	}
	if !appending && s.pipe == -1 {
		t.Errorf("source stopped splicing into a plain file")
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("file has %d bytes that differ from the %d of the content", len(got), len(content))
	}
	if _, err := s.Seek(size, io.SeekCurrent); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(s)
	if err != nil || string(rest) != after {
		t.Errorf("rest of stream = %q, %v; want %q", rest, err, after)
	}
}
