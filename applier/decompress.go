package applier

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// compression is the encoding of a layer's tar in its blob.
type compression int

const (
	uncompressed compression = iota
	gzipCompressed
	zstdCompressed
	// processed layers go through containerd's stream processors, which
	// is how encrypted layers are decrypted.
	processed
)

// layerCompression returns the compression of the media types decoded here
// directly: the OCI layer types with their non-distributable variants and
// Docker's schema 2 layer types.
func layerCompression(mediaType string) (compression, bool) {
	// The non-distributable types are deprecated in the image spec but
	// still found in registries.
	switch mediaType {
	case ocispec.MediaTypeImageLayer,
		ocispec.MediaTypeImageLayerNonDistributable,
		images.MediaTypeDockerSchema2Layer,
		images.MediaTypeDockerSchema2LayerForeign:
		return uncompressed, true
	case ocispec.MediaTypeImageLayerGzip,
		ocispec.MediaTypeImageLayerNonDistributableGzip,
		images.MediaTypeDockerSchema2LayerGzip,
		images.MediaTypeDockerSchema2LayerForeignGzip:
		return gzipCompressed, true
	case ocispec.MediaTypeImageLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributableZstd,
		images.MediaTypeDockerSchema2LayerZstd:
		return zstdCompressed, true
	}
	return 0, false
}

// decoder is a decompressed layer stream. Close releases it; Err reports a
// failure that surfaced only after the tar ended, such as a bad checksum in
// a stream processor.
type decoder interface {
	io.ReadCloser
	Err() error
}

// newDecoder returns the tar stream of a blob of the given media type. It
// returns an error wrapping errdefs.ErrNotImplemented for a media type that
// neither this package nor a registered stream processor decodes.
func newDecoder(ctx context.Context, mediaType string, blob io.Reader,
	payloads map[string]typeurl.Any) (decoder, error) {
	c, ok := layerCompression(mediaType)
	if !ok {
		return newProcessorDecoder(ctx, mediaType, blob, payloads)
	}
	switch c {
	case gzipCompressed:
		return newGzipDecoder(blob)
	case zstdCompressed:
		// One decoding goroutine is enough because the pipeline already
		// decodes apart from the reading and hashing: on the Debian layer
		// it was about 5% faster than the default of one per core.
		zr, err := zstd.NewReader(blob, zstd.WithDecoderLowmem(false),
			zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("failed to start zstd decoder: %w", err)
		}
		return &zstdDecoder{zr: zr}, nil
	}
	return &plainDecoder{Reader: blob}, nil
}

type plainDecoder struct{ io.Reader }

// passesBlob reports whether dec yields the blob's bytes unchanged.
func passesBlob(dec decoder) bool {
	_, ok := dec.(*plainDecoder)
	return ok
}

// readsInRead reports whether dec reads the blob only from within its Read
// method, in the caller's goroutine. The zstd decoder does with a
// concurrency of 1.
func readsInRead(dec decoder) bool {
	switch dec.(type) {
	case *gzipDecoder, *zstdDecoder, *plainDecoder:
		return true
	}
	return false
}

func (plainDecoder) Close() error { return nil }
func (plainDecoder) Err() error   { return nil }

// maxZstdWindow bounds the window a zstd layer may ask for, because the
// decoder allocates it up front: a tiny blob compressed with --long=29 would
// otherwise cost 512 MiB per apply. 128 MiB (a window log of 27) is also the
// default decompression memory limit of the zstd command line (zstd(1) of
// zstd 1.5.4, option -M), so any layer that `zstd -d` decodes without
// --long or --memory fits.
const maxZstdWindow = 128 << 20

type zstdDecoder struct{ zr *zstd.Decoder }

func (d *zstdDecoder) Read(p []byte) (int, error) {
	n, err := d.zr.Read(p)
	// The decoder returns ErrWindowSizeExceeded for a window the frame
	// header declares, and ErrDecoderSizeExceeded when the content size of
	// a single-segment frame, which is then its window, is over the limit.
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = fmt.Errorf("zstd window is over the %d MiB limit, so recompress the layer "+
			"with --long=27 or less: %w", maxZstdWindow>>20, err)
	}
	return n, err
}

func (d *zstdDecoder) Close() error { d.zr.Close(); return nil }
func (d *zstdDecoder) Err() error   { return nil }

// gzipDecoder reads a series of gzip members and stops at the first bytes
// after a member that are not the start of another one. Such trailing bytes
// are ignored rather than rejected, as unpigz and gzip -d ignore them, so that
// the result does not depend on which decompressor a host uses.
type gzipDecoder struct {
	br *bufio.Reader
	zr *gzip.Reader
	// done is set once the last member has ended.
	done bool
}

func newGzipDecoder(r io.Reader) (*gzipDecoder, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("failed to read gzip header: %w", err)
	}
	zr.Multistream(false)
	return &gzipDecoder{br: br, zr: zr}, nil
}

func (d *gzipDecoder) Read(p []byte) (int, error) {
	for !d.done {
		n, err := d.zr.Read(p)
		if err != io.EOF {
			return n, err
		}
		if !d.nextMember() {
			d.done = true
		} else if err := d.zr.Reset(d.br); err != nil {
			return n, fmt.Errorf("failed to read gzip header: %w", err)
		} else {
			d.zr.Multistream(false)
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, io.EOF
}

// nextMember reports whether another gzip member follows.
func (d *gzipDecoder) nextMember() bool {
	magic, err := d.br.Peek(2)
	return err == nil && magic[0] == 0x1f && magic[1] == 0x8b
}

func (d *gzipDecoder) Close() error { return d.zr.Close() }
func (d *gzipDecoder) Err() error   { return nil }

// processorDecoder runs containerd's stream processor chain until it yields
// an uncompressed tar.
type processorDecoder struct {
	diff.StreamProcessor
	chain []diff.StreamProcessor
}

func newProcessorDecoder(ctx context.Context, mediaType string, blob io.Reader,
	payloads map[string]typeurl.Any) (decoder, error) {
	processor := diff.NewProcessorChain(mediaType, blob)
	chain := []diff.StreamProcessor{processor}
	for processor.MediaType() != ocispec.MediaTypeImageLayer {
		next, err := diff.GetProcessor(ctx, processor, payloads)
		if err != nil {
			closeAll(chain)
			if err == diff.ErrNoProcessor {
				return nil, fmt.Errorf("media type %s: %w", mediaType, errdefs.ErrNotImplemented)
			}
			return nil, fmt.Errorf("failed to get stream processor for %s: %w",
				processor.MediaType(), err)
		}
		processor = next
		chain = append(chain, processor)
	}
	return &processorDecoder{StreamProcessor: processor, chain: chain}, nil
}

func (d *processorDecoder) Close() error {
	closeAll(d.chain)
	return nil
}

// Err returns the first error a processor of the chain reports.
func (d *processorDecoder) Err() error {
	for _, p := range d.chain {
		if ep, ok := p.(interface{ Err() error }); ok {
			if err := ep.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

func closeAll(chain []diff.StreamProcessor) {
	for i := len(chain) - 1; i >= 0; i-- {
		chain[i].Close()
	}
}
