package applier_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// zstdWithWindow compresses data as one streamed frame that declares window.
func zstdWithWindow(t *testing.T, data []byte, window int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestZstdWindowLimit(t *testing.T) {
	requireRoot(t)
	tarData := sampleTar(t)
	cases := []struct {
		name    string
		window  int
		wantErr bool
	}{
		{"window of 128 MiB is accepted", 128 << 20, false},
		{"window of 256 MiB is rejected", 256 << 20, true},
		{"window of 512 MiB is rejected", 512 << 20, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blob := zstdWithWindow(t, tarData, tc.window)
			desc, _, err := applyBlob(t, ocispec.MediaTypeImageLayerZstd, blob)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("apply failed: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("apply succeeded, want a window error")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v, want errdefs.ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), desc.Digest.String()) {
				t.Errorf("error %q does not name layer %s", err, desc.Digest)
			}
			if !strings.Contains(err.Error(), "zstd window is over the 128 MiB limit") {
				t.Errorf("error %q does not say the window is over the limit", err)
			}
		})
	}
}
