package main

import (
	"os"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/internal/fixture"
)

// debianMediaTypes maps the fixture's compression names to media types.
var debianMediaTypes = map[string]string{
	"":     ocispec.MediaTypeImageLayer,
	"gzip": ocispec.MediaTypeImageLayerGzip,
	"zstd": ocispec.MediaTypeImageLayerZstd,
}

// debianInput returns the Debian bookworm minbase layer compressed with
// compression ("", "gzip" or "zstd"). The fixture package builds and caches
// the blob. Its description is cached in cacheDir next to the generated
// inputs, and described again when the blob is newer.
func debianInput(cacheDir, name, compression string) (input, error) {
	blob, err := fixture.DebianLayer(compression)
	if err != nil {
		return input{}, err
	}
	metaPath := filepath.Join(cacheDir, strings.ReplaceAll(name, "-", "_")+".json")
	if in, err := readMeta(metaPath); err == nil && in.Path == blob && !newer(blob, metaPath) {
		return in, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return input{}, err
	}
	return describeBlob(metaPath, blob, name, debianMediaTypes[compression])
}

// newer reports whether the file a was modified after the file b.
func newer(a, b string) bool {
	ai, err := os.Stat(a)
	if err != nil {
		return true
	}
	bi, err := os.Stat(b)
	if err != nil {
		return true
	}
	return ai.ModTime().After(bi.ModTime())
}
