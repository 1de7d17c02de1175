package applier_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
)

// ExampleApplier_ApplyLayer applies a one-file layer from a local content
// store onto a directory, as containerd applies a layer onto a bind-mounted
// snapshot. It needs root.
func ExampleApplier_ApplyLayer() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "applier-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "hello.txt", Mode: 0o644, Size: 6})
	tw.Write([]byte("hello\n"))
	tw.Close()

	store, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		log.Fatal(err)
	}
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digest.FromBytes(layer.Bytes()),
		Size:      int64(layer.Len()),
	}
	err = content.WriteBlob(ctx, store, "example", bytes.NewReader(layer.Bytes()), desc)
	if err != nil {
		log.Fatal(err)
	}

	snapshot := filepath.Join(dir, "snapshot")
	if err := os.Mkdir(snapshot, 0o755); err != nil {
		log.Fatal(err)
	}
	mounts := []mount.Mount{{Type: "bind", Source: snapshot, Options: []string{"rbind", "rw"}}}
	res, err := applier.New(store).ApplyLayer(ctx, desc, mounts)
	if err != nil {
		log.Fatal(err)
	}

	data, err := os.ReadFile(filepath.Join(snapshot, "hello.txt"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("diffID matches: %v\n", res.Diff.Digest == desc.Digest)
	fmt.Printf("confined with: %s\n", res.Root)
	fmt.Printf("hello.txt: %s", data)
	// Output:
	// diffID matches: true
	// confined with: pivot_root
	// hello.txt: hello
}
