package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// StartRegistry serves an in-memory OCI distribution registry on a free port
// of 127.0.0.1 and returns its host:port. It is shut down when tb cleans up.
func StartRegistry(tb TB) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("failed to listen for the registry: %w", err)
	}
	srv := &http.Server{
		Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String(), nil
}

// TarLayer returns a layer whose uncompressed content is the tar stream b,
// compressed with "gzip" or "zstd" and carrying the matching OCI media type.
func TarLayer(b []byte, comp string) (v1.Layer, error) {
	return openerLayer(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, comp)
}

// FileLayer returns a layer read from the file at path, which holds a tar
// stream that is already compressed with comp ("gzip" or "zstd").
func FileLayer(path string, comp string) (v1.Layer, error) {
	return openerLayer(func() (io.ReadCloser, error) { return os.Open(path) }, comp)
}

func openerLayer(open tarball.Opener, comp string) (v1.Layer, error) {
	switch comp {
	case "gzip":
		return tarball.LayerFromOpener(open,
			tarball.WithCompression(compression.GZip),
			tarball.WithMediaType(types.OCILayer))
	case "zstd":
		return tarball.LayerFromOpener(open,
			tarball.WithCompression(compression.ZStd),
			tarball.WithMediaType(types.OCILayerZStd))
	}
	return nil, fmt.Errorf("unsupported layer compression %q: use gzip or zstd", comp)
}

// PushImage pushes an OCI image for linux/amd64 made of layers, lowest
// first, to host (a registry from StartRegistry) as repo:tag over plain HTTP
// and returns its reference.
func PushImage(ctx context.Context, host, repoTag string, layers ...v1.Layer) (string, error) {
	if len(layers) == 0 {
		return "", errors.New("an image needs at least one layer")
	}
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		return "", err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers"},
		Config:       v1.Config{Cmd: []string{"/bin/sh"}},
	})
	if err != nil {
		return "", err
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		return "", fmt.Errorf("failed to build image %s: %w", ref, err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("failed to push %s: %w", ref, err)
	}
	return ref.Name(), nil
}
