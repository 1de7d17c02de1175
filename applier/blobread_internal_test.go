package applier

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/blobfile"
)

// TestBlobReadSize checks that reads are limited for the blobs of
// containerd's local content store and of blobfile, which are local files,
// and not for other readers, such as those of the content API.
func TestBlobReadSize(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	blob := []byte("layer")
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digest.FromBytes(blob),
		Size:      int64(len(blob)),
	}

	store, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	if err := content.WriteBlob(ctx, store, "test", bytes.NewReader(blob), desc); err != nil {
		t.Fatal(err)
	}
	stored, err := store.ReaderAt(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	defer stored.Close()

	path := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(path, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	layer, err := blobfile.OpenLayer(ctx, path, ocispec.MediaTypeImageLayer)
	if err != nil {
		t.Fatal(err)
	}
	file, err := layer.ReaderAt(ctx, layer.Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()

	for _, tc := range []struct {
		name string
		ra   content.ReaderAt
		want int
	}{
		{"local content store", stored, localReadSize},
		{"blobfile", file, localReadSize},
		{"other reader", bytesReaderAt{bytes.NewReader(blob)}, 0},
	} {
		if got := blobReadSize(tc.ra); got != tc.want {
			t.Errorf("%s (%T): read size %d, want %d", tc.name, tc.ra, got, tc.want)
		}
	}
}

// bytesReaderAt is a content.ReaderAt that offers only the interface's
// methods, as the content API's readers do.
type bytesReaderAt struct{ r *bytes.Reader }

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) { return b.r.ReadAt(p, off) }
func (b bytesReaderAt) Size() int64                             { return b.r.Size() }
func (b bytesReaderAt) Close() error                            { return nil }

// TestCountingReaderMaxRead checks that countingReader requests at most
// maxRead bytes per call from its reader and still counts and hashes
// everything.
func TestCountingReaderMaxRead(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	src := &largestRead{r: bytes.NewReader(data)}
	c := &countingReader{r: src, hashes: newLayerHashes(digest.SHA256), maxRead: 512}
	got, err := io.ReadAll(io.LimitReader(c, int64(len(data))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes that differ from the %d written", len(got), len(data))
	}
	if src.largest > 512 {
		t.Errorf("requested %d bytes in one call, want at most 512", src.largest)
	}
	if c.n != int64(len(data)) {
		t.Errorf("counted %d bytes, want %d", c.n, len(data))
	}
	if d := digest.NewDigest(digest.SHA256, c.hashes.blob); d != digest.FromBytes(data) {
		t.Errorf("hash is %s, want %s", d, digest.FromBytes(data))
	}
}

// largestRead records the largest buffer passed to its Read.
type largestRead struct {
	r       io.Reader
	largest int
}

func (l *largestRead) Read(p []byte) (int, error) {
	l.largest = max(l.largest, len(p))
	return l.r.Read(p)
}
