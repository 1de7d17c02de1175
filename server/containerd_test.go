package server

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	"github.com/containerd/containerd/v2/core/content"
	contentproxy "github.com/containerd/containerd/v2/core/content/proxy"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	"github.com/chroot-applier/containerd-chroot-applier/config"
	"github.com/chroot-applier/containerd-chroot-applier/integration/harness"
)

// startContainerd starts a stock containerd in a temporary directory and
// returns it with a client connection to its socket.
func startContainerd(t *testing.T) (*harness.Containerd, *grpc.ClientConn) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("starting containerd and applying a layer need root")
	}
	ctx := context.Background()
	tools, err := harness.EnsureTools(ctx)
	if err != nil {
		t.Fatalf("containerd is not available: %v", err)
	}
	c, err := harness.StartContainerd(ctx, t, harness.Config{
		Mode:   harness.Reference,
		Binary: tools.Containerd,
		Tools:  tools,
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+c.Socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, conn
}

// plainLayer returns an uncompressed layer holding one file, and its diffID.
func plainLayer(t *testing.T, name, body string) ([]byte, digest.Digest) {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return raw.Bytes(), digest.FromBytes(raw.Bytes())
}

// gzipLayer returns a gzip layer holding one file, and its diffID.
func gzipLayer(t *testing.T, name, body string) ([]byte, digest.Digest) {
	t.Helper()
	raw, diffID := plainLayer(t, name, body)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	return gz.Bytes(), diffID
}

// writeBlob stores blob in namespace ns, labelled as a garbage collection
// root so that containerd keeps it without a lease.
func writeBlob(t *testing.T, conn *grpc.ClientConn, ns string, blob []byte) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.FromBytes(blob),
		Size:      int64(len(blob)),
	}
	ctx := namespaces.WithNamespace(context.Background(), ns)
	labels := map[string]string{"containerd.io/gc.root": time.Now().UTC().Format(time.RFC3339)}
	err := content.WriteBlob(ctx, contentproxy.NewContentStore(conn), "test-"+desc.Digest.Encoded(),
		bytes.NewReader(blob), desc, content.WithLabels(labels))
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

func TestApplyThroughContainerd(t *testing.T) {
	c, conn := startContainerd(t)
	blob, diffID := gzipLayer(t, "hello", "hello from alpha\n")
	desc := writeBlob(t, conn, "alpha", blob)
	contentRoot := filepath.Join(c.Root, "io.containerd.content.v1.content")

	tests := []struct {
		name        string
		contentRoot string
	}{
		{"content API only", ""},
		{"content root discovered", "auto"},
		{"content root configured", contentRoot},
		{"unreadable content root falls back", filepath.Join(t.TempDir(), "absent")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := recordLogs(t)
			svc := NewService(applier.New(blobProvider(conn, tt.contentRoot)),
				ServiceOptions{MaxConcurrentApplies: 2})
			client := serveService(t, svc)
			target := t.TempDir()
			ctx := leases.WithLease(
				namespaces.WithNamespace(context.Background(), "alpha"), "lease-1")

			resp, err := client.Apply(ctx, applyRequest(desc, target))
			if err != nil {
				t.Fatalf("Apply() in the blob's namespace: %v", errgrpc.ToNative(err))
			}
			if got := oci.DescriptorFromProto(resp.Applied); got.Digest != diffID {
				t.Errorf("applied digest = %s, want the diffID %s", got.Digest, diffID)
			}
			if data, err := os.ReadFile(filepath.Join(target, "hello")); err != nil ||
				string(data) != "hello from alpha\n" {
				t.Errorf("hello = %q, %v", data, err)
			}

			fields, ok := logs.find("layer applied")
			if !ok {
				t.Fatal("no \"layer applied\" log line")
			}
			for key, want := range map[string]any{"namespace": "alpha", "lease": "lease-1"} {
				if fields[key] != want {
					t.Errorf("layer applied %s = %v, want %v", key, fields[key], want)
				}
			}
			for _, key := range []string{"digest", "media", "size", "uncompressed", "d"} {
				if _, ok := fields[key]; !ok {
					t.Errorf("layer applied has no %s field", key)
				}
			}
			_, fellBack := logs.find("failed to open blob in content root, " +
				"reading it through the content API")
			if wantFallBack := strings.Contains(tt.name, "falls back"); fellBack != wantFallBack {
				t.Errorf("fell back to the content API: %v, want %v", fellBack, wantFallBack)
			}
			if tt.contentRoot == "auto" {
				fields, ok := logs.find("reading blobs from containerd's content root")
				if !ok || fields["root"] != contentRoot {
					t.Errorf("discovered content root = %v, want %s", fields["root"], contentRoot)
				}
			}

			// Another namespace cannot see the blob, whether or not it is
			// read from the content root.
			other := namespaces.WithNamespace(context.Background(), "beta")
			_, err = client.Apply(other, applyRequest(desc, t.TempDir()))
			if err := errgrpc.ToNative(err); !errdefs.IsNotFound(err) {
				t.Errorf("Apply() in another namespace = %v, want a not found error", err)
			}
			if _, ok := logs.find("failed to apply layer"); !ok {
				t.Error("the failed apply was not logged")
			}
		})
	}
}

func TestConcurrentAppliesWait(t *testing.T) {
	_, conn := startContainerd(t)
	const applies = 4
	var descs []ocispec.Descriptor
	for i := range applies {
		blob, _ := gzipLayer(t, fmt.Sprintf("file%d", i), fmt.Sprintf("layer %d\n", i))
		descs = append(descs, writeBlob(t, conn, "default", blob))
	}
	svc := NewService(applier.New(blobProvider(conn, "auto")),
		ServiceOptions{MaxConcurrentApplies: 1})
	client := serveService(t, svc)
	ctx := namespaces.WithNamespace(context.Background(), "default")

	var wg sync.WaitGroup
	errs := make([]error, applies)
	for i, desc := range descs {
		wg.Go(func() {
			_, errs[i] = client.Apply(ctx, applyRequest(desc, t.TempDir()))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("apply %d of %d with one slot: %v", i, applies, errgrpc.ToNative(err))
		}
	}
}

// largeGzipLayer returns a gzip layer of three 512 MiB zero-filled files,
// a few MiB compressed.
func largeGzipLayer(t *testing.T) []byte {
	t.Helper()
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	const fileSize = 512 << 20
	zeros := make([]byte, 1<<20)
	for i := range 3 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("zero%d", i), Mode: 0o644,
			Size: fileSize}); err != nil {
			t.Fatal(err)
		}
		for written := 0; written < fileSize; written += len(zeros) {
			tw.Write(zeros)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return gz.Bytes()
}

func TestRunShutdownCancelsApplies(t *testing.T) {
	c, conn := startContainerd(t)
	desc := writeBlob(t, conn, "default", largeGzipLayer(t))

	cfg := config.Default()
	cfg.Address = filepath.Join(t.TempDir(), "applier.sock")
	cfg.ContainerdAddress = c.Socket
	cfg.ShutdownTimeout = 200 * time.Millisecond
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	runDone := make(chan error, 1)
	go func() { runDone <- Run(ctx, cfg, "") }()

	var client diffapi.DiffClient
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(cfg.Address); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not create its socket within 10s")
		}
	}
	clientConn, err := grpc.NewClient("unix://"+cfg.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer clientConn.Close()
	client = diffapi.NewDiffClient(clientConn)

	target := t.TempDir()
	applyDone := make(chan error, 1)
	go func() {
		_, err := client.Apply(namespaces.WithNamespace(context.Background(), "default"),
			applyRequest(desc, target))
		applyDone <- errgrpc.ToNative(err)
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Stat(filepath.Join(target, "zero0")); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the apply did not start writing within 30s")
		}
	}

	start := time.Now()
	stop()
	select {
	case err := <-applyDone:
		if err == nil {
			t.Error("the apply succeeded, want it cancelled at the shutdown timeout")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the apply still runs 10s after shutdown began")
	}
	if err := <-runDone; err != nil {
		t.Errorf("Run() = %v, want nil after a shutdown", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s with a 200ms timeout", d)
	}
	if _, err := os.Lstat(cfg.Address); err == nil {
		t.Error("socket is still present after Run returned")
	}
}
