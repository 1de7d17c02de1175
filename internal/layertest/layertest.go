// Package layertest builds layer tars and blobs for tests from short entry
// descriptions, and stores them in a containerd content store.
package layertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Epoch is the modification time every entry gets unless it sets its own.
var Epoch = time.Unix(1700000000, 0)

// Entry is one tar entry: its header and, for a regular file, its content.
type Entry struct {
	Header  tar.Header
	Content []byte
}

// Option changes an entry's header.
type Option func(*tar.Header)

// Owner sets the numeric owner.
func Owner(uid, gid int) Option { return func(h *tar.Header) { h.Uid, h.Gid = uid, gid } }

// Mode sets the mode bits.
func Mode(mode int64) Option { return func(h *tar.Header) { h.Mode = mode } }

// Mtime sets the modification time.
func Mtime(t time.Time) Option { return func(h *tar.Header) { h.ModTime = t } }

// Xattr adds an xattr as a SCHILY.xattr PAX record.
func Xattr(key, value string) Option {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+key] = value
		h.Format = tar.FormatPAX
	}
}

// Names sets the user and group names of the header.
func Names(user, group string) Option {
	return func(h *tar.Header) { h.Uname, h.Gname = user, group }
}

func entry(h tar.Header, content []byte, opts []Option) Entry {
	if h.ModTime.IsZero() {
		h.ModTime = Epoch
	}
	for _, o := range opts {
		o(&h)
	}
	return Entry{Header: h, Content: content}
}

// Dir is a directory entry, mode 0755 unless an option sets another.
func Dir(name string, opts ...Option) Entry {
	return entry(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}, nil, opts)
}

// File is a regular file entry, mode 0644 unless an option sets another.
func File(name, content string, opts ...Option) Entry {
	h := tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content))}
	return entry(h, []byte(content), opts)
}

// Symlink is a symlink entry.
func Symlink(name, target string, opts ...Option) Entry {
	h := tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}
	return entry(h, nil, opts)
}

// Link is a hardlink entry.
func Link(name, target string, opts ...Option) Entry {
	h := tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}
	return entry(h, nil, opts)
}

// Char is a character device entry.
func Char(name string, major, minor int64, opts ...Option) Entry {
	h := tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: 0o644,
		Devmajor: major, Devminor: minor}
	return entry(h, nil, opts)
}

// Fifo is a fifo entry.
func Fifo(name string, opts ...Option) Entry {
	return entry(tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: 0o644}, nil, opts)
}

// Whiteout is the whiteout entry ".wh.BASE" for name.
func Whiteout(dir, base string) Entry {
	name := ".wh." + base
	if dir != "" {
		name = dir + "/" + name
	}
	return File(name, "")
}

// Opaque is the opaque marker of dir.
func Opaque(dir string) Entry { return Whiteout(dir, ".wh..opq") }

// Global is a PAX global header with the given name.
func Global(name string) Entry {
	h := tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: name,
		PAXRecords: map[string]string{"comment": "global"}, Format: tar.FormatPAX}
	return Entry{Header: h}
}

// Tar returns the tar stream of entries.
func Tar(entries ...Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("failed to write header of %s: %w", h.Name, err)
		}
		if _, err := tw.Write(e.Content); err != nil {
			return nil, fmt.Errorf("failed to write content of %s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Compression names a layer encoding: "" (plain tar), "gzip" or "zstd".
type Compression string

// Compress encodes data with c.
func Compress(data []byte, c Compression) ([]byte, error) {
	var buf bytes.Buffer
	switch c {
	case "":
		return data, nil
	case "gzip":
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case "zstd":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown compression %q", c)
	}
	return buf.Bytes(), nil
}

// MediaType returns the OCI layer media type of c.
func MediaType(c Compression) string {
	switch c {
	case "gzip":
		return ocispec.MediaTypeImageLayerGzip
	case "zstd":
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// NewStore returns a local content store in a temporary directory of t.
func NewStore(t testing.TB) content.Store {
	t.Helper()
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatalf("failed to create content store: %v", err)
	}
	return store
}

// WriteBlob stores blob and returns its descriptor with mediaType.
func WriteBlob(t testing.TB, store content.Store, mediaType string,
	blob []byte) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{
		MediaType: mediaType,
		Digest:    digest.FromBytes(blob),
		Size:      int64(len(blob)),
	}
	ref := "test-" + desc.Digest.Encoded()
	err := content.WriteBlob(context.Background(), store, ref, bytes.NewReader(blob), desc)
	if err != nil {
		t.Fatalf("failed to store blob: %v", err)
	}
	return desc
}

// Layer builds entries as a layer compressed with c, stores it and returns
// its descriptor.
func Layer(t testing.TB, store content.Store, c Compression, entries ...Entry) ocispec.Descriptor {
	t.Helper()
	data, err := Tar(entries...)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := Compress(data, c)
	if err != nil {
		t.Fatal(err)
	}
	return WriteBlob(t, store, MediaType(c), blob)
}

// Block is a block device entry.
func Block(name string, major, minor int64, opts ...Option) Entry {
	h := tar.Header{Typeflag: tar.TypeBlock, Name: name, Mode: 0o660,
		Devmajor: major, Devminor: minor}
	return entry(h, nil, opts)
}

// Atime sets the access time; the header is written in PAX format so that
// the time is kept.
func Atime(t time.Time) Option {
	return func(h *tar.Header) {
		h.AccessTime = t
		h.Format = tar.FormatPAX
	}
}

// WriteFile stores the blob in the file at path and returns its descriptor
// with mediaType.
func WriteFile(t testing.TB, store content.Store, mediaType, path string) ocispec.Descriptor {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dgst, err := digest.FromReader(f)
	if err != nil {
		t.Fatal(err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: dgst, Size: size}
	ref := "test-" + dgst.Encoded()
	if err := content.WriteBlob(context.Background(), store, ref, f, desc); err != nil {
		t.Fatalf("failed to store %s: %v", path, err)
	}
	return desc
}
