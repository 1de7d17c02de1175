package blobfile

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func tarLayer(t *testing.T, format tar.Format) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte("hello\n")
	hdr := &tar.Header{Name: "etc/hello", Mode: 0o644, Size: int64(len(body)), Format: format}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDetectMediaType(t *testing.T) {
	layer := tarLayer(t, tar.FormatPAX)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer)
	zw.Close()
	var zs bytes.Buffer
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(layer)
	ze.Close()

	tests := []struct {
		name string
		blob []byte
		want string
	}{
		{"gzip layer", gz.Bytes(), ocispec.MediaTypeImageLayerGzip},
		{"zstd layer", zs.Bytes(), ocispec.MediaTypeImageLayerZstd},
		{"pax tar layer", layer, ocispec.MediaTypeImageLayer},
		{"gnu tar layer", tarLayer(t, tar.FormatGNU), ocispec.MediaTypeImageLayer},
		{"empty tar archive", make([]byte, 1024), ocispec.MediaTypeImageLayer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DetectMediaType(bytes.NewReader(tt.blob))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("DetectMediaType() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDetectMediaTypeRejects(t *testing.T) {
	for name, blob := range map[string][]byte{
		"short text": []byte("not a layer"),
		"empty file": nil,
		"text block": bytes.Repeat([]byte("x"), 600),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DetectMediaType(bytes.NewReader(blob))
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("DetectMediaType() = %v, want an invalid argument error", err)
			}
		})
	}
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "layer")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenLayer(t *testing.T) {
	data := bytes.Repeat(tarLayer(t, tar.FormatPAX), 1000)
	l, err := OpenLayer(context.Background(), writeFile(t, data), "")
	if err != nil {
		t.Fatal(err)
	}
	desc := l.Descriptor()
	if desc.Digest != digest.FromBytes(data) {
		t.Errorf("digest = %s, want %s", desc.Digest, digest.FromBytes(data))
	}
	if desc.Size != int64(len(data)) {
		t.Errorf("size = %d, want %d", desc.Size, len(data))
	}
	if desc.MediaType != ocispec.MediaTypeImageLayer {
		t.Errorf("media type = %s, want %s", desc.MediaType, ocispec.MediaTypeImageLayer)
	}

	got, err := content.ReadBlob(context.Background(), l, desc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("ReaderAt does not return the file's content")
	}
	other := ocispec.Descriptor{Digest: digest.FromString("other")}
	if _, err := l.ReaderAt(context.Background(), other); !errdefs.IsNotFound(err) {
		t.Errorf("ReaderAt(other) = %v, want a not found error", err)
	}
}

func TestOpenLayerOptions(t *testing.T) {
	path := writeFile(t, []byte("not a layer"))
	l, err := OpenLayer(context.Background(), path, ocispec.MediaTypeImageLayerGzip)
	if err != nil {
		t.Fatal(err)
	}
	if l.Descriptor().MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Errorf("media type = %s, want the one given", l.Descriptor().MediaType)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = OpenLayer(ctx, path, ocispec.MediaTypeImageLayer)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("OpenLayer(cancelled) = %v, want context.Canceled", err)
	}
	absent := filepath.Join(t.TempDir(), "absent")
	if _, err := OpenLayer(context.Background(), absent, ""); err == nil {
		t.Error("OpenLayer(missing file) succeeded")
	}
}

func TestProvider(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	store, err := local.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	data := tarLayer(t, tar.FormatPAX)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer,
		Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(ctx, store, "layer", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		root     string
		fromFile bool
	}{
		{"blob is read from the content root", root, true},
		{"content root without the blob falls back", t.TempDir(), false},
		{"no content root reads the store", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra, err := NewProvider(store, StaticRoot(tt.root)).ReaderAt(ctx, desc)
			if err != nil {
				t.Fatal(err)
			}
			defer ra.Close()
			if _, ok := ra.(*fileReaderAt); ok != tt.fromFile {
				t.Errorf("reader is %T, from content root %v, want %v", ra, ok, tt.fromFile)
			}
			got, err := io.ReadAll(content.NewReader(ra))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Error("reader does not return the blob")
			}
		})
	}
}

func TestProviderChecksStore(t *testing.T) {
	ctx := context.Background()
	// The store is a namespace that cannot see the blob, and the content
	// root contains it. The blob must not be read.
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	data := []byte("blob of another namespace")
	dgst := digest.FromBytes(data)
	dir := filepath.Join(root, "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, dgst.Encoded()), data, 0o644); err != nil {
		t.Fatal(err)
	}

	p := NewProvider(store, StaticRoot(root))
	_, err = p.ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
	if !errdefs.IsNotFound(err) {
		t.Errorf("ReaderAt(unknown blob) = %v, want a not found error", err)
	}
	_, err = p.ReaderAt(ctx, ocispec.Descriptor{Digest: "sha256:../../etc/passwd"})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReaderAt(bad digest) = %v, want an invalid argument error", err)
	}
}
