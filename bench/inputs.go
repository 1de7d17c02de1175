package main

import (
	"archive/tar"
	"bufio"
	_ "crypto/sha256" // registers the digest algorithm of go-digest
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// input is one layer blob the benchmark applies.
type input struct {
	// Name is the input's name on the command line and in the table.
	Name string `json:"name"`
	// Path is the blob file in the cache directory.
	Path string `json:"path"`
	// MediaType, Digest and Size describe the blob.
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	// DiffID is the digest of the tar stream and Uncompressed its byte
	// count.
	DiffID       digest.Digest `json:"diffID"`
	Uncompressed int64         `json:"uncompressed"`
	// Entries is the number of tar entries.
	Entries int64 `json:"entries"`
}

// descriptor returns the OCI descriptor of the blob.
func (in input) descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: in.MediaType, Digest: in.Digest, Size: in.Size}
}

// inputNames lists every input in the order of the table.
var inputNames = []string{
	"debian-gzip", "debian-zstd", "debian-tar", "small", "large", "empty",
}

// loadInput returns the named input, generating its blob into cacheDir when
// the cache does not have it yet.
func loadInput(cacheDir, name string) (input, error) {
	in, err := buildInput(cacheDir, name)
	in.Name = name
	return in, err
}

func buildInput(cacheDir, name string) (input, error) {
	switch name {
	case "debian-gzip":
		return debianInput(cacheDir, name, "gzip")
	case "debian-zstd":
		return debianInput(cacheDir, name, "zstd")
	case "debian-tar":
		return debianInput(cacheDir, name, "")
	case "small":
		return cachedInput(cacheDir, "small-v1", ocispec.MediaTypeImageLayerGzip, writeSmallFiles)
	case "large":
		return cachedInput(cacheDir, "large-v1", ocispec.MediaTypeImageLayerGzip, writeLargeFiles)
	case "empty":
		return cachedInput(cacheDir, "empty-v1", ocispec.MediaTypeImageLayerGzip,
			func(*tar.Writer) error { return nil })
	}
	return input{}, fmt.Errorf("unknown input %q, expected one of %v", name, inputNames)
}

// cachedInput returns the input stored as key in cacheDir, or builds its tar
// with build, compresses it as mediaType and stores it there first.
func cachedInput(cacheDir, key, mediaType string, build func(*tar.Writer) error) (input, error) {
	metaPath := filepath.Join(cacheDir, key+".json")
	if in, err := readMeta(metaPath); err == nil {
		return in, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return input{}, err
	}
	blobPath := filepath.Join(cacheDir, key+".blob")
	f, err := os.CreateTemp(cacheDir, key+".tmp-*")
	if err != nil {
		return input{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()

	bw := bufio.NewWriterSize(f, 1<<20)
	cw, err := compressor(bw, mediaType)
	if err != nil {
		return input{}, err
	}
	tw := tar.NewWriter(cw)
	if err := build(tw); err != nil {
		return input{}, fmt.Errorf("failed to build input %s: %w", key, err)
	}
	if err := tw.Close(); err != nil {
		return input{}, err
	}
	if err := cw.Close(); err != nil {
		return input{}, err
	}
	if err := bw.Flush(); err != nil {
		return input{}, err
	}
	if err := f.Chmod(0o644); err != nil {
		return input{}, err
	}
	if err := f.Close(); err != nil {
		return input{}, err
	}
	if err := os.Rename(f.Name(), blobPath); err != nil {
		return input{}, err
	}
	return describeBlob(metaPath, blobPath, key, mediaType)
}

// describeBlob hashes and counts the blob at blobPath and stores the result
// as JSON at metaPath, so that later runs skip the work.
func describeBlob(metaPath, blobPath, name, mediaType string) (input, error) {
	in := input{Name: name, Path: blobPath, MediaType: mediaType}
	f, err := os.Open(blobPath)
	if err != nil {
		return input{}, err
	}
	defer f.Close()

	digester := digest.Canonical.Digester()
	blob := io.TeeReader(bufio.NewReaderSize(f, 1<<20), digester.Hash())
	dec, err := decompressor(blob, mediaType)
	if err != nil {
		return input{}, err
	}
	defer dec.Close()
	diffDigester := digest.Canonical.Digester()
	counted := &countingReader{r: io.TeeReader(dec, diffDigester.Hash())}
	tr := tar.NewReader(counted)
	for {
		if _, err := tr.Next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return input{}, fmt.Errorf("failed to read blob %s: %w", blobPath, err)
		}
		in.Entries++
	}
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return input{}, err
	}
	if _, err := io.Copy(io.Discard, blob); err != nil {
		return input{}, err
	}
	in.Uncompressed = counted.n
	in.DiffID = diffDigester.Digest()
	in.Digest = digester.Digest()
	fi, err := f.Stat()
	if err != nil {
		return input{}, err
	}
	in.Size = fi.Size()

	data, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return input{}, err
	}
	return in, os.WriteFile(metaPath, data, 0o644)
}

func readMeta(path string) (input, error) {
	var in input
	data, err := os.ReadFile(path)
	if err != nil {
		return in, err
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return in, err
	}
	if _, err := os.Stat(in.Path); err != nil {
		return in, err
	}
	return in, nil
}

func compressor(w io.Writer, mediaType string) (io.WriteCloser, error) {
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip:
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case ocispec.MediaTypeImageLayerZstd:
		return zstd.NewWriter(w)
	case ocispec.MediaTypeImageLayer:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unsupported media type %s", mediaType)
}

func decompressor(r io.Reader, mediaType string) (io.ReadCloser, error) {
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip:
		return gzip.NewReader(r)
	case ocispec.MediaTypeImageLayerZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case ocispec.MediaTypeImageLayer:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unsupported media type %s", mediaType)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
