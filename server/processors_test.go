package server

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs/pkg/errgrpc"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	"github.com/chroot-applier/containerd-chroot-applier/config"
)

// catMediaType is a layer media type that only the test's stream processor
// decodes, into a plain tar.
const catMediaType = "application/vnd.example.layer.v1.tar+cat"

func TestApplyStreamProcessor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("applying a layer needs root")
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat program to act as a stream processor")
	}
	cfg := config.Default()
	cfg.StreamProcessors = map[string]config.StreamProcessor{
		"io.example.cat": {
			Accepts: []string{catMediaType},
			Returns: ocispec.MediaTypeImageLayer,
			Path:    cat,
		},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.RegisterStreamProcessors()

	blob, diffID := plainLayer(t, "processed", "through cat\n")
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{
		MediaType: catMediaType,
		Digest:    digest.FromBytes(blob),
		Size:      int64(len(blob)),
	}
	ctx := context.Background()
	if err := content.WriteBlob(ctx, store, "layer", bytes.NewReader(blob), desc); err != nil {
		t.Fatal(err)
	}
	client := serveService(t,
		NewService(applier.New(store), ServiceOptions{MaxConcurrentApplies: 1}))
	target := t.TempDir()

	resp, err := client.Apply(namespaces.WithNamespace(ctx, "default"), applyRequest(desc, target))
	if err != nil {
		t.Fatalf("Apply() of a layer for the stream processor: %v", errgrpc.ToNative(err))
	}
	if resp.Applied.Digest != diffID.String() {
		t.Errorf("applied digest = %s, want %s", resp.Applied.Digest, diffID)
	}
	if data, err := os.ReadFile(filepath.Join(target, "processed")); err != nil ||
		string(data) != "through cat\n" {
		t.Errorf("processed = %q, %v", data, err)
	}
}
