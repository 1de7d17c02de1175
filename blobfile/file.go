package blobfile

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// hashBufferSize is the read size used while computing a layer file's digest.
const hashBufferSize = 1 << 20

// Layer is a content.Provider that serves one layer file.
type Layer struct {
	path string
	desc ocispec.Descriptor
}

// OpenLayer computes the digest and size of the layer file at path and
// returns a provider that serves it. An empty mediaType is detected from the
// file's first bytes with DetectMediaType. Computing the digest reads the
// whole file and stops with ctx's error when ctx is done.
func OpenLayer(ctx context.Context, path, mediaType string) (*Layer, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open layer file: %w", err)
	}
	defer f.Close()

	if mediaType == "" {
		if mediaType, err = DetectMediaType(io.NewSectionReader(f, 0, f.size)); err != nil {
			return nil, fmt.Errorf("layer file %s: %w", path, err)
		}
	}

	digester := digest.Canonical.Digester()
	buf := make([]byte, hashBufferSize)
	for off := int64(0); off < f.size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := f.ReadAt(buf[:min(int64(len(buf)), f.size-off)], off)
		digester.Hash().Write(buf[:n])
		off += int64(n)
		if err != nil && !(err == io.EOF && off == f.size) {
			return nil, fmt.Errorf("failed to read layer file %s: %w", path, err)
		}
	}

	return &Layer{path: path, desc: ocispec.Descriptor{
		MediaType: mediaType,
		Digest:    digester.Digest(),
		Size:      f.size,
	}}, nil
}

// Descriptor returns the layer's descriptor: its media type, the digest of
// the file and its size.
func (l *Layer) Descriptor() ocispec.Descriptor { return l.desc }

// ReaderAt opens the file again. It returns an error wrapping
// errdefs.ErrNotFound for any descriptor other than the layer's own.
func (l *Layer) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if desc.Digest != l.desc.Digest {
		return nil, fmt.Errorf("blob %s is not the layer file %s: %w",
			desc.Digest, l.path, errdefs.ErrNotFound)
	}
	return openFile(l.path)
}
