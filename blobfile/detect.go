package blobfile

import (
	"bytes"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	// ustarMagic is at offset 257 of a POSIX or GNU tar header.
	ustarMagic = []byte("ustar")
)

const tarBlockSize = 512

// DetectMediaType returns the OCI layer media type of a blob from its first
// bytes: gzip, zstd, or an uncompressed tar whose first header carries the
// ustar magic (POSIX, PAX and GNU tars do) or that is an empty archive. It
// returns an error wrapping errdefs.ErrInvalidArgument for anything else,
// pre-POSIX tars included, which need an explicit media type.
func DetectMediaType(r io.Reader) (string, error) {
	head := make([]byte, tarBlockSize)
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("failed to read layer header: %w", err)
	}
	head = head[:n]

	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return ocispec.MediaTypeImageLayerGzip, nil
	case bytes.HasPrefix(head, zstdMagic):
		return ocispec.MediaTypeImageLayerZstd, nil
	case n == tarBlockSize && bytes.HasPrefix(head[257:], ustarMagic):
		return ocispec.MediaTypeImageLayer, nil
	case n == tarBlockSize && bytes.Count(head, []byte{0}) == tarBlockSize:
		return ocispec.MediaTypeImageLayer, nil
	}
	return "", fmt.Errorf("layer is not gzip, zstd or a tar archive, give its media type: %w",
		errdefs.ErrInvalidArgument)
}
