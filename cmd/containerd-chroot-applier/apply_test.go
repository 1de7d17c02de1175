package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/internal/proctest"
)

func runApply(t *testing.T, args ...string) (applyOutput, []byte, error) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"apply"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var out applyOutput
	if err == nil {
		if jerr := json.Unmarshal(stdout.Bytes(), &out); jerr != nil {
			t.Fatalf("apply output is not JSON: %v\n%s", jerr, stdout.Bytes())
		}
	}
	return out, stderr.Bytes(), err
}

func TestApplyTarget(t *testing.T) {
	requireRoot(t)
	layer := writeLayer(t, dir("etc/"), file("etc/hello", "hello\n"))
	data, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()

	out, stderr, err := runApply(t, "--target", target, layer)
	if err != nil {
		t.Fatalf("apply failed: %v\n%s", err, stderr)
	}
	if out.Digest != digest.FromBytes(data) {
		t.Errorf("digest = %s, want %s", out.Digest, digest.FromBytes(data))
	}
	if out.DiffID != out.Digest {
		t.Errorf("diffID of an uncompressed layer = %s, want its digest %s", out.DiffID, out.Digest)
	}
	if out.MediaType != ocispec.MediaTypeImageLayer {
		t.Errorf("media type = %s, want %s", out.MediaType, ocispec.MediaTypeImageLayer)
	}
	if out.Size != int64(len(data)) || out.UncompressedSize != int64(len(data)) {
		t.Errorf("size = %d, uncompressed = %d, want both %d",
			out.Size, out.UncompressedSize, len(data))
	}
	if out.Entries != 2 {
		t.Errorf("entries = %d, want 2", out.Entries)
	}
	if out.Target != "bind" {
		t.Errorf("target = %q, want bind", out.Target)
	}
	if out.Root != "pivot_root" && out.Root != "chroot" {
		t.Errorf("root = %q, want pivot_root or chroot", out.Root)
	}
	if _, err := time.ParseDuration(out.Duration); err != nil {
		t.Errorf("duration %q: %v", out.Duration, err)
	}
	got, err := os.ReadFile(filepath.Join(target, "etc/hello"))
	if err != nil || string(got) != "hello\n" {
		t.Errorf("etc/hello = %q, %v, want \"hello\\n\"", got, err)
	}
}

func TestApplyUpperdir(t *testing.T) {
	requireRoot(t)
	lower := t.TempDir()
	if err := os.MkdirAll(filepath.Join(lower, "etc"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "etc/gone"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The layer has no entry for etc/, so etc/ takes its mode from the
	// lowerdir, and it deletes etc/gone with a whiteout.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	raw, err := os.ReadFile(writeLayer(t, file("etc/new", "new\n"),
		tarEntry{header: tar.Header{Typeflag: tar.TypeReg, Name: "etc/.wh.gone", Mode: 0o644}}))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	zw.Close()
	layer := filepath.Join(t.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(layer, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	upper := t.TempDir()

	out, stderr, err := runApply(t, "--upperdir", upper, "--lowerdir", lower, layer)
	if err != nil {
		t.Fatalf("apply failed: %v\n%s", err, stderr)
	}
	if out.MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Errorf("detected media type = %s, want %s",
			out.MediaType, ocispec.MediaTypeImageLayerGzip)
	}
	if out.DiffID != digest.FromBytes(raw) {
		t.Errorf("diffID = %s, want %s", out.DiffID, digest.FromBytes(raw))
	}
	if out.Size != int64(gz.Len()) || out.UncompressedSize != int64(len(raw)) {
		t.Errorf("size = %d, uncompressed = %d, want %d and %d",
			out.Size, out.UncompressedSize, gz.Len(), len(raw))
	}
	if out.Target != "overlay" {
		t.Errorf("target = %q, want overlay", out.Target)
	}

	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(upper, "etc/gone"), &st); err != nil {
		t.Fatalf("no whiteout for etc/gone: %v", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/gone has mode %o rdev %d, want a 0:0 character device", st.Mode, st.Rdev)
	}
	fi, err := os.Stat(filepath.Join(upper, "etc"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("implied etc/ has mode %o, want the lowerdir's 750", fi.Mode().Perm())
	}
}

func TestApplyErrors(t *testing.T) {
	requireRoot(t)
	badLayer := writeLayer(t, tarEntry{header: tar.Header{Typeflag: tar.TypeLink, Name: "etc/link",
		Linkname: "etc/missing"}})
	badData, err := os.ReadFile(badLayer)
	if err != nil {
		t.Fatal(err)
	}
	goodLayer := writeLayer(t, file("a", "a"))

	tests := []struct {
		name     string
		args     []string
		contains []string
	}{
		{"invalid layer names the layer and entry", []string{"--target", t.TempDir(), badLayer},
			[]string{digest.FromBytes(badData).String(), `"etc/link"`, "invalid layer content"}},
		{"missing target directory",
			[]string{"--target", filepath.Join(t.TempDir(), "absent"), goodLayer},
			[]string{"absent", "not found"}},
		{"target and upperdir together", []string{"--target", "a", "--upperdir", "b", goodLayer},
			[]string{"not both"}},
		{"lowerdir without upperdir", []string{"--target", "a", "--lowerdir", "b", goodLayer},
			[]string{"--lowerdir needs --upperdir"}},
		{"no layer argument", []string{"--target", t.TempDir()}, []string{"one LAYER argument"}},
		{"undetectable layer", []string{"--target", t.TempDir(), writeText(t, "plain text")},
			[]string{"give its media type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := runApply(t, tt.args...)
			if err == nil {
				t.Fatal("apply succeeded, want a non-zero exit")
			}
			for _, s := range tt.contains {
				if !bytes.Contains(stderr, []byte(s)) {
					t.Errorf("stderr %q does not contain %q", stderr, s)
				}
			}
		})
	}
}

func writeText(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "layer")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeLargeLayer writes a gzip layer of a few zero-filled files, about
// 1.5 GiB uncompressed and a few MiB on disk.
func writeLargeLayer(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "large.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	const fileSize = 512 << 20
	zeros := make([]byte, 1<<20)
	for i := range 3 {
		hdr := &tar.Header{Name: "zero" + strconv.Itoa(i), Mode: 0o644, Size: fileSize}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		for written := 0; written < fileSize; written += len(zeros) {
			if _, err := tw.Write(zeros); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestApplyInterrupted(t *testing.T) {
	requireRoot(t)
	layer := writeLargeLayer(t)
	target := t.TempDir()

	cmd := exec.Command(binary, "apply", "--target", target, layer)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// Wait until the child is writing the first file, so that the signal
	// arrives in the middle of the extraction.
	deadline := time.Now().Add(30 * time.Second)
	for {
		fi, err := os.Stat(filepath.Join(target, "zero0"))
		if err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("extraction did not start within 30s\n%s", stderr.Bytes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	children := childPIDs(t, cmd.Process.Pid)
	if len(children) == 0 {
		t.Fatal("no child process is running")
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("apply exited 0 after SIGINT, want a non-zero exit")
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("apply exited %s after SIGINT, want within 1s", d)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("apply did not exit within 10s of SIGINT")
	}
	for _, pid := range children {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
			t.Errorf("child %d is still present after apply exited", pid)
		}
	}
	if !bytes.Contains(stderr.Bytes(), []byte("context canceled")) {
		t.Errorf("stderr %q does not say the apply was cancelled", stderr.Bytes())
	}
}

// childPIDs returns the PIDs of the processes whose parent is pid.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	pids, err := proctest.Children(pid)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}
