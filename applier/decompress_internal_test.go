package applier

import (
	"bytes"
	"compress/gzip"
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestPassesBlob checks which decoders let the blob digest stand for the
// diffID.
func TestPassesBlob(t *testing.T) {
	var gz bytes.Buffer
	gzip.NewWriter(&gz).Close()
	zs, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	emptyZstd := zs.EncodeAll(nil, nil)

	cases := []struct {
		mediaType string
		blob      []byte
		want      bool
	}{
		{ocispec.MediaTypeImageLayer, nil, true},
		{images.MediaTypeDockerSchema2Layer, nil, true},
		{ocispec.MediaTypeImageLayerGzip, gz.Bytes(), false},
		{images.MediaTypeDockerSchema2LayerGzip, gz.Bytes(), false},
		{ocispec.MediaTypeImageLayerZstd, emptyZstd, false},
	}
	for _, tc := range cases {
		dec, err := newDecoder(context.Background(), tc.mediaType, bytes.NewReader(tc.blob), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.mediaType, err)
		}
		if got := passesBlob(dec); got != tc.want {
			t.Errorf("%s: passesBlob = %v, want %v", tc.mediaType, got, tc.want)
		}
		dec.Close()
	}
}
