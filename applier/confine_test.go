package applier_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/mount"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	"github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

// TestChildConfinement inspects a running child from outside: the child is
// held waiting for its tar stream, after it has confined itself, while the
// test reads its /proc entries.
func TestChildConfinement(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the child needs root to create a mount namespace")
	}
	layer, err := layertest.Tar(layertest.File("hello", "world"))
	if err != nil {
		t.Fatal(err)
	}
	provider := &heldProvider{data: layer, release: make(chan struct{})}
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digest.FromBytes(layer),
		Size:      int64(len(layer)),
	}
	target := t.TempDir()
	mounts := []mount.Mount{{Type: "bind", Source: target, Options: []string{"rbind", "rw"}}}

	done := make(chan error, 1)
	go func() {
		_, err := applier.New(provider).Apply(context.Background(), desc, mounts)
		done <- err
	}()
	// Release the stream however the test ends, so that Apply returns.
	var released bool
	release := func() {
		if !released {
			released = true
			close(provider.release)
		}
	}
	defer release()

	pid, status := waitForConfinedChild(t)

	if got := status["NoNewPrivs"]; got != "1" {
		t.Errorf("NoNewPrivs = %q, want 1", got)
	}
	if got := status["Umask"]; got != "0000" {
		t.Errorf("Umask = %q, want 0000", got)
	}
	// CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,
	// CAP_FSETID (bits 0 to 4), CAP_SYS_ADMIN (21), CAP_MKNOD (27) and
	// CAP_SETFCAP (31).
	const wantCaps = "000000008820001f"
	for _, set := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if got := status[set]; got != wantCaps {
			t.Errorf("%s = %s, want %s", set, got, wantCaps)
		}
	}
	for _, set := range []string{"CapInh", "CapAmb"} {
		if got := status[set]; got != "0000000000000000" {
			t.Errorf("%s = %s, want no capabilities", set, got)
		}
	}

	ownNS, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	childNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		t.Fatal(err)
	}
	if childNS == ownNS {
		t.Errorf("child shares the test's mount namespace %s", ownNS)
	}

	// The child's root, seen through /proc, is the target directory.
	rootInfo, err := os.Stat(fmt.Sprintf("/proc/%d/root", pid))
	if err != nil {
		t.Fatal(err)
	}
	targetInfo, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(rootInfo, targetInfo) {
		t.Errorf("child's root is not the target %s", target)
	}

	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("apply failed after the stream was released: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("apply did not return after the stream was released")
	}
	if b, err := os.ReadFile(filepath.Join(target, "hello")); err != nil || string(b) != "world" {
		t.Errorf("target/hello = %q, %v; want world", b, err)
	}
}

// waitForConfinedChild returns the PID and /proc status fields of the test
// process's child once it has set no_new_privs and, last of its
// confinement steps, a umask of 0.
func waitForConfinedChild(t *testing.T) (int, map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, pid := range relChildren(t) {
			status := procStatus(pid)
			if status["NoNewPrivs"] == "1" && status["Umask"] == "0000" {
				return pid, status
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no confined child appeared within 30 seconds")
	return 0, nil
}

// procStatus returns the fields of /proc/PID/status, or nil if the process
// is gone.
func procStatus(pid int) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// heldProvider serves one blob whose first read waits until release is
// closed.
type heldProvider struct {
	data    []byte
	release chan struct{}
}

// ReaderAt returns a reader of the held blob.
func (p *heldProvider) ReaderAt(context.Context, ocispec.Descriptor) (content.ReaderAt, error) {
	return &heldReaderAt{p: p}, nil
}

type heldReaderAt struct{ p *heldProvider }

func (r *heldReaderAt) ReadAt(b []byte, off int64) (int, error) {
	<-r.p.release
	return bytes.NewReader(r.p.data).ReadAt(b, off)
}

func (r *heldReaderAt) Size() int64  { return int64(len(r.p.data)) }
func (r *heldReaderAt) Close() error { return nil }
