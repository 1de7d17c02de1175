package applier_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	"github.com/chroot-applier/containerd-chroot-applier/internal/manifest"
	"github.com/chroot-applier/containerd-chroot-applier/internal/proctest"
)

// relBigFiles and relBigFileSize make the large layer: 1 GiB of file data
// that compresses to a few MiB, so the test writes a small blob once and
// never holds the layer in memory.
const (
	relBigFiles    = 64
	relBigFileSize = 16 << 20
)

func relRequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the applier's child needs root: it unshares a mount namespace and pivots its root")
	}
}

func relNewStore(t testing.TB) content.Store {
	t.Helper()
	store, err := local.NewStore(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatalf("failed to create content store: %v", err)
	}
	return store
}

// relWriteLayer streams the tar that build writes into store, gzip
// compressed when mediaType is a gzip type, and returns the blob's
// descriptor.
func relWriteLayer(t testing.TB, store content.Store, mediaType string,
	build func(tw *tar.Writer) error) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	pr, pw := io.Pipe()
	go func() {
		var out io.WriteCloser = pw
		if strings.HasSuffix(mediaType, "gzip") {
			gz, err := gzip.NewWriterLevel(pw, gzip.BestSpeed)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			out = gz
		}
		tw := tar.NewWriter(out)
		err := build(tw)
		if err == nil {
			err = tw.Close()
		}
		if err == nil && out != pw {
			err = out.Close()
		}
		pw.CloseWithError(err)
	}()

	w, err := store.Writer(ctx, content.WithRef(fmt.Sprintf("rel-%d", time.Now().UnixNano())))
	if err != nil {
		t.Fatalf("failed to open content writer: %v", err)
	}
	n, err := io.Copy(w, pr)
	if err != nil {
		w.Close()
		t.Fatalf("failed to write layer blob: %v", err)
	}
	if err := w.Commit(ctx, 0, ""); err != nil && !errdefs.IsAlreadyExists(err) {
		t.Fatalf("failed to commit layer blob: %v", err)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: w.Digest(), Size: n}
}

// relEntry is one tar entry of a small test layer.
type relEntry struct {
	name     string
	typeflag byte
	mode     int64
	data     string
	linkname string
}

func relTar(entries ...relEntry) func(tw *tar.Writer) error {
	return func(tw *tar.Writer) error {
		for _, e := range entries {
			hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: e.mode,
				Linkname: e.linkname, Size: int64(len(e.data)), ModTime: time.Unix(1700000000, 0)}
			if hdr.Typeflag == 0 {
				hdr.Typeflag = tar.TypeReg
			}
			if hdr.Typeflag != tar.TypeReg {
				hdr.Size = 0
			}
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if hdr.Size > 0 {
				if _, err := io.WriteString(tw, e.data); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// relBigLayer writes relBigFiles files of relBigFileSize bytes each. The
// bytes are not zero, so that no extractor can skip them as holes.
func relBigLayer(tw *tar.Writer) error {
	chunk := bytes.Repeat([]byte{'x'}, 1<<20)
	for i := range relBigFiles {
		hdr := &tar.Header{Name: fmt.Sprintf("big/%02d", i), Typeflag: tar.TypeReg,
			Mode: 0o644, Size: relBigFileSize, ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		for range relBigFileSize / len(chunk) {
			if _, err := tw.Write(chunk); err != nil {
				return err
			}
		}
	}
	return nil
}

func relBindMounts(dir string) []mount.Mount {
	return []mount.Mount{{Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}}
}

// relChildren returns the PIDs of the processes whose parent is the test
// process, zombies included, since a zombie is a child nobody reaped.
func relChildren(t testing.TB) []int {
	t.Helper()
	return relChildrenOf(t, os.Getpid())
}

func relChildrenOf(t testing.TB, parent int) []int {
	t.Helper()
	pids, err := proctest.Children(parent)
	if err != nil {
		t.Fatalf("failed to list /proc: %v", err)
	}
	return pids
}

// relWaitForChild polls until the test process has exactly one child and
// returns its PID.
func relWaitForChild(t testing.TB, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if pids := relChildren(t); len(pids) == 1 {
			return pids[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no single child process appeared within %v: children %v", timeout, relChildren(t))
	return 0
}

// relWatchChildren polls the test process's children until stop is closed
// and sends every PID it saw.
func relWatchChildren(t testing.TB, stop <-chan struct{}) <-chan []int {
	seen := make(chan []int, 1)
	go func() {
		var pids []int
		for {
			for _, pid := range relChildren(t) {
				if !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
			select {
			case <-stop:
				seen <- pids
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return seen
}

// relHostState is what an apply must leave as it found it.
type relHostState struct {
	children   []int
	mountinfo  string
	fds        []string
	goroutines int
	dirs       map[string][]string
}

// relUseOwnTempDir points os.TempDir at a directory of the test's own, so
// that temp files of other processes on the host cannot disturb the check
// for leaked ones. The applier's child inherits the variable.
func relUseOwnTempDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", dir)
	return dir
}

// relForeignMountPrefix is where the integration tests' containerd daemons
// keep their roots. go test runs packages in parallel, and those daemons
// mount and unmount there while this package runs, so their mounts are not
// this package's to account for.
var relForeignMountPrefix = filepath.Join(os.TempDir(), "cca-")

// relOwnMounts returns the lines of mountinfo whose mount point is not under
// relForeignMountPrefix, in their order.
func relOwnMounts(mountinfo string) string {
	var own []string
	for _, line := range strings.Split(mountinfo, "\n") {
		// The fifth field is the mount point.
		if fields := strings.Fields(line); len(fields) > 4 &&
			strings.HasPrefix(fields[4], relForeignMountPrefix) {
			continue
		}
		own = append(own, line)
	}
	return strings.Join(own, "\n")
}

// relSnapshot records the process's children, mounts, descriptors and
// goroutines and the entries of dirs.
func relSnapshot(t testing.TB, dirs ...string) relHostState {
	t.Helper()
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("failed to read mountinfo: %v", err)
	}
	s := relHostState{
		children:   relChildren(t),
		mountinfo:  relOwnMounts(string(mountinfo)),
		fds:        relOpenFiles(t, os.Getpid()),
		goroutines: runtime.NumGoroutine(),
		dirs:       map[string][]string{},
	}
	for _, dir := range dirs {
		s.dirs[dir] = relDirNames(t, dir)
	}
	return s
}

// relOpenFiles lists the descriptors of process pid as "FD -> TARGET",
// leaving out the one that reads the list.
func relOpenFiles(t testing.TB, pid int) []string {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("failed to list descriptors of %d: %v", pid, err)
	}
	var fds []string
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || link == dir {
			continue
		}
		fds = append(fds, e.Name()+" -> "+link)
	}
	return fds
}

func relDirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("failed to list %s: %v", dir, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// relCheckNoLeaks fails the test for every difference between before and
// the state now. Goroutines get a moment to finish, since the ones that
// copied the child's output end just after the child is reaped.
func relCheckNoLeaks(t testing.TB, before relHostState) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before.goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	dirs := make([]string, 0, len(before.dirs))
	for dir := range before.dirs {
		dirs = append(dirs, dir)
	}
	after := relSnapshot(t, dirs...)
	if !slices.Equal(after.children, before.children) {
		t.Errorf("child processes left behind: before %v, after %v",
			before.children, after.children)
	}
	if after.mountinfo != before.mountinfo {
		t.Errorf("mounts changed:\nbefore:\n%s\nafter:\n%s", before.mountinfo, after.mountinfo)
	}
	for _, fd := range after.fds {
		if !slices.Contains(before.fds, fd) {
			t.Errorf("descriptor left open: %s", fd)
		}
	}
	if after.goroutines > before.goroutines {
		t.Errorf("goroutines: before %d, after %d", before.goroutines, after.goroutines)
	}
	for _, dir := range dirs {
		if !slices.Equal(after.dirs[dir], before.dirs[dir]) {
			t.Errorf("entries of %s: before %q, after %q", dir, before.dirs[dir], after.dirs[dir])
		}
	}
}

// relManifest describes every path under root, one line each: its
// manifest entry (type, mode, owner, content, xattrs, modification time)
// followed by its link count and change time, which catch a new hardlink to
// the path from outside root.
func relManifest(t testing.TB, root string) string {
	t.Helper()
	m, err := manifest.Build(root)
	if err != nil {
		t.Fatalf("failed to build manifest of %s: %v", root, err)
	}
	var b strings.Builder
	for _, e := range m.Entries {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, e.Path), &st); err != nil {
			t.Fatalf("failed to stat %s: %v", e.Path, err)
		}
		fmt.Fprintf(&b, "%+v nlink=%d ctime=%d\n", e, st.Nlink, st.Ctim.Nano())
	}
	return b.String()
}

// relMakeSentinel creates a small tree that no apply may change.
func relMakeSentinel(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("sentinel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	subFile := filepath.Join(dir, "sub", "file")
	if err := os.WriteFile(subFile, []byte("sentinel\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// relInterruptBigApply starts applying the large layer, waits until the
// child has written several of its files and calls interrupt. It returns
// the layer, the time the apply took to return after the interrupt, and
// the apply's error.
func relInterruptBigApply(t *testing.T, interrupt func(cancel context.CancelFunc)) (
	ocispec.Descriptor, time.Duration, error) {
	t.Helper()
	ownTmp := relUseOwnTempDir(t)
	store := relNewStore(t)
	desc := relWriteLayer(t, store, ocispec.MediaTypeImageLayerGzip, relBigLayer)
	target := filepath.Join(t.TempDir(), "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	before := relSnapshot(t, ownTmp, filepath.Dir(target))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := applier.New(store).ApplyLayer(ctx, desc, relBindMounts(target))
		done <- err
	}()

	written := 0
	deadline := time.Now().Add(30 * time.Second)
	for written < 4 && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("apply returned before it was interrupted: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
		entries, _ := os.ReadDir(filepath.Join(target, "big"))
		written = len(entries)
	}
	if written < 4 {
		t.Fatalf("the child wrote %d files of the large layer in 30s", written)
	}

	interrupted := time.Now()
	interrupt(cancel)
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("apply did not return within 10s of the interrupt")
	}
	elapsed := time.Since(interrupted)

	entries, _ := os.ReadDir(filepath.Join(target, "big"))
	if len(entries) == relBigFiles {
		t.Errorf("all %d files were written although the apply was interrupted", relBigFiles)
	}
	relCheckNoLeaks(t, before)
	return desc, elapsed, err
}

func TestRelCancelMidLayer(t *testing.T) {
	relRequireRoot(t)
	desc, elapsed, err := relInterruptBigApply(t, func(cancel context.CancelFunc) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
	if err != nil && !strings.Contains(err.Error(), desc.Digest.String()) {
		t.Errorf("error %q does not name layer %s", err, desc.Digest)
	}
	if elapsed > time.Second {
		t.Errorf("apply returned %v after cancellation, want within 1s", elapsed)
	}
}

func TestRelChildKilledMidLayer(t *testing.T) {
	relRequireRoot(t)
	desc, _, err := relInterruptBigApply(t, func(context.CancelFunc) {
		pid := relWaitForChild(t, time.Second)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("failed to kill child %d: %v", pid, err)
		}
	})
	if err == nil {
		t.Fatal("apply succeeded although its child was killed")
	}
	if !strings.Contains(err.Error(), "killed") {
		t.Errorf("error %q does not say the child was killed", err)
	}
	if !strings.Contains(err.Error(), desc.Digest.String()) {
		t.Errorf("error %q does not name layer %s", err, desc.Digest)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("error %q wraps context.Canceled although nothing was cancelled", err)
	}
}

func TestRelTargetFull(t *testing.T) {
	relRequireRoot(t)
	ownTmp := relUseOwnTempDir(t)
	parent := t.TempDir()
	target := filepath.Join(parent, "target")
	sentinel := filepath.Join(parent, "sentinel")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	relMakeSentinel(t, sentinel)
	err := unix.Mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=8m")
	if err != nil {
		t.Skipf("mounting a tmpfs needs CAP_SYS_ADMIN: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, 0); err != nil {
			t.Errorf("failed to unmount test tmpfs %s: %v", target, err)
		}
	})

	store := relNewStore(t)
	big := strings.Repeat("y", 16<<20)
	desc := relWriteLayer(t, store, ocispec.MediaTypeImageLayerGzip, relTar(
		relEntry{name: "dir/", typeflag: tar.TypeDir, mode: 0o755},
		relEntry{name: "dir/small", data: "small\n"},
		relEntry{name: "dir/big", data: big},
	))
	wantSentinel := relManifest(t, sentinel)
	before := relSnapshot(t, ownTmp, parent)

	_, err = applier.New(store).ApplyLayer(context.Background(), desc, relBindMounts(target))
	if err == nil {
		t.Fatal("apply of a 16 MiB file onto an 8 MiB tmpfs succeeded")
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error %v does not wrap syscall.ENOSPC", err)
	}
	if !errdefs.IsResourceExhausted(err) {
		t.Errorf("error %v is not errdefs.ErrResourceExhausted", err)
	}
	msg := err.Error()
	for _, want := range []string{desc.Digest.String(), "dir/big", "no space left on device"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	var ce *applier.ChildError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *applier.ChildError", err)
	}
	if ce.Entry != "dir/big" {
		t.Errorf("ChildError.Entry = %q, want %q", ce.Entry, "dir/big")
	}
	if ce.Layer != desc.Digest {
		t.Errorf("ChildError.Layer = %s, want %s", ce.Layer, desc.Digest)
	}
	if got := relManifest(t, sentinel); got != wantSentinel {
		t.Errorf("sentinel changed:\nbefore:\n%s\nafter:\n%s", wantSentinel, got)
	}
	relCheckNoLeaks(t, before)
}

func TestRelRequestErrors(t *testing.T) {
	relRequireRoot(t)
	store := relNewStore(t)
	layer := relWriteLayer(t, store, ocispec.MediaTypeImageLayer,
		relTar(relEntry{name: "file", data: "data\n"}))
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")

	withMediaType := func(mediaType string) ocispec.Descriptor {
		desc := layer
		desc.MediaType = mediaType
		return desc
	}
	overlay := func(upper, lower string) []mount.Mount {
		return []mount.Mount{{Type: "overlay", Source: "overlay",
			Options: []string{"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + dir}}}
	}
	tests := []struct {
		name   string
		desc   ocispec.Descriptor
		mounts []mount.Mount
		is     func(error) bool
		kind   string
		// child is set where only the kernel, inside the child's mount
		// namespace, can tell that the request fails: it may load a
		// module for a file system type on the first mount.
		child bool
	}{
		{
			name: "blob missing from the content store",
			desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer,
				Digest: digest.FromString("not in the store"), Size: 16},
			mounts: relBindMounts(dir),
			is:     errdefs.IsNotFound, kind: "not found",
		},
		{
			name: "descriptor with an invalid digest",
			desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer,
				Digest: "sha256:not-hex", Size: 16},
			mounts: relBindMounts(dir),
			is:     errdefs.IsInvalidArgument, kind: "invalid argument",
		},
		{
			name:   "media type no decoder handles",
			desc:   withMediaType("application/vnd.example.layer.v1.tar+lz4"),
			mounts: relBindMounts(dir),
			is:     errdefs.IsNotImplemented, kind: "not implemented",
		},
		{
			name:   "mount of a file system type the kernel does not know",
			desc:   layer,
			mounts: []mount.Mount{{Type: "nosuchfs", Source: dir}},
			is:     errdefs.IsNotImplemented, kind: "not implemented",
			child: true,
		},
		{
			name:   "no mounts",
			desc:   layer,
			mounts: nil,
			is:     errdefs.IsInvalidArgument, kind: "invalid argument",
		},
		{
			name:   "bind source that does not exist",
			desc:   layer,
			mounts: relBindMounts(missing),
			is:     errdefs.IsNotFound, kind: "not found",
		},
		{
			name:   "overlay upperdir that does not exist",
			desc:   layer,
			mounts: overlay(missing, dir),
			is:     errdefs.IsNotFound, kind: "not found",
		},
		{
			name:   "overlay lowerdir that does not exist",
			desc:   layer,
			mounts: overlay(dir, missing),
			is:     errdefs.IsNotFound, kind: "not found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop := make(chan struct{})
			seen := relWatchChildren(t, stop)
			_, err := applier.New(store).ApplyLayer(context.Background(), tt.desc, tt.mounts)
			close(stop)
			children := <-seen

			if err == nil {
				t.Fatal("apply succeeded")
			}
			if !tt.is(err) {
				t.Errorf("error %q is not errdefs %s", err, tt.kind)
			}
			if tt.desc.Digest != "" && !strings.Contains(err.Error(), tt.desc.Digest.String()) {
				t.Errorf("error %q does not name layer %s", err, tt.desc.Digest)
			}
			var ce *applier.ChildError
			if tt.child {
				if !errors.As(err, &ce) || ce.Stage != "confine" {
					t.Errorf("error %v is not a confinement *applier.ChildError", err)
				}
				return
			}
			if errors.As(err, &ce) {
				t.Errorf("a child was started for a request that cannot succeed: %v", err)
			}
			if len(children) > 0 {
				t.Errorf("child processes %v were started for a request that cannot succeed",
					children)
			}
		})
	}
}

func TestRelChildErrors(t *testing.T) {
	relRequireRoot(t)
	store := relNewStore(t)
	tests := []struct {
		name    string
		entries []relEntry
		// readOnly makes the target a read-only bind mount, which the
		// child mounts in its own namespace.
		readOnly bool
		entry    string
		message  string
		is       func(error) bool
	}{
		{
			name:    "whiteout of the layer root is rejected",
			entries: []relEntry{{name: "dir/", typeflag: tar.TypeDir}, {name: "dir/.wh.."}},
			entry:   "dir/.wh..",
			is:      errdefs.IsInvalidArgument,
		},
		{
			name:     "file on a read-only target cannot be created",
			entries:  []relEntry{{name: "file", data: "data\n"}},
			readOnly: true,
			entry:    "file",
			message:  "read-only file system",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc := relWriteLayer(t, store, ocispec.MediaTypeImageLayer, relTar(tt.entries...))
			target := t.TempDir()
			mounts := relBindMounts(target)
			if tt.readOnly {
				mounts[0].Options = []string{"rbind", "ro"}
			}
			// A failed apply may leave entries in the target, which
			// containerd discards with the snapshot, but nothing beside it.
			before := relSnapshot(t, filepath.Dir(target))

			_, err := applier.New(store).ApplyLayer(context.Background(), desc, mounts)
			var ce *applier.ChildError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *applier.ChildError", err)
			}
			if ce.Stage != "extract" {
				t.Errorf("ChildError.Stage = %q, want %q", ce.Stage, "extract")
			}
			if ce.Entry != tt.entry {
				t.Errorf("ChildError.Entry = %q, want %q", ce.Entry, tt.entry)
			}
			if ce.Layer != desc.Digest {
				t.Errorf("ChildError.Layer = %s, want %s", ce.Layer, desc.Digest)
			}
			if !strings.Contains(err.Error(), tt.entry) {
				t.Errorf("error %q does not name entry %q", err, tt.entry)
			}
			if tt.message != "" && !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
			if tt.is != nil && !tt.is(err) {
				t.Errorf("error %v has the wrong errdefs kind", err)
			}
			if strings.Contains(err.Error(), "exit status") {
				t.Errorf("error %q reports a raw exit status", err)
			}
			relCheckNoLeaks(t, before)
		})
	}
}

// relAuditArch is the seccomp architecture of the test binary.
var relAuditArch = map[string]uint32{
	"amd64": unix.AUDIT_ARCH_X86_64,
	"arm64": unix.AUDIT_ARCH_AARCH64,
}

// relDenySyscalls installs a seccomp filter on the calling thread that
// fails the given system calls with EPERM, as a container runtime's seccomp
// profile does. Processes forked from the thread inherit the filter. The
// caller must have locked its goroutine to the thread and must never unlock
// it, so that the Go runtime ends the thread, and the filter, with the
// goroutine.
func relDenySyscalls(arch uint32, nrs ...uintptr) error {
	const nrOffset, archOffset = 0, 4 // offsets in struct seccomp_data
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: archOffset},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, K: arch},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: nrOffset},
	}
	for i, nr := range nrs {
		// Jump over the remaining comparisons and the ALLOW to the ERRNO.
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K,
			Jt: uint8(len(nrs) - i), K: uint32(nr)})
	}
	prog = append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K,
			K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
	)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER,
		uintptr(unsafe.Pointer(&fprog)), 0, 0)
}

// relApplyWithDenied applies desc onto target from a thread on which the
// system calls nrs fail with EPERM, so that the child starts with them
// denied.
func relApplyWithDenied(t *testing.T, store content.Store, desc ocispec.Descriptor,
	target string, nrs ...uintptr) (applier.Result, error) {
	t.Helper()
	arch, ok := relAuditArch[runtime.GOARCH]
	if !ok {
		t.Skipf("no seccomp architecture known for %s", runtime.GOARCH)
	}
	type outcome struct {
		res applier.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		runtime.LockOSThread()
		if err := relDenySyscalls(arch, nrs...); err != nil {
			done <- outcome{err: fmt.Errorf("failed to install seccomp filter: %w", err)}
			return
		}
		res, err := applier.New(store).ApplyLayer(context.Background(), desc, relBindMounts(target))
		done <- outcome{res: res, err: err}
	}()
	o := <-done
	return o.res, o.err
}

// TestRelConfinement covers the child when its container's seccomp profile
// denies pivot_root (Docker's default profile does unless CAP_SYS_ADMIN is
// granted): it falls back to chroot, and when chroot is denied too it
// reports a structured confinement error.
func TestRelConfinement(t *testing.T) {
	relRequireRoot(t)
	store := relNewStore(t)
	desc := relWriteLayer(t, store, ocispec.MediaTypeImageLayer,
		relTar(relEntry{name: "file", data: "data\n"}))

	t.Run("pivot_root denied falls back to chroot", func(t *testing.T) {
		target := t.TempDir()
		before := relSnapshot(t, filepath.Dir(target))
		res, err := relApplyWithDenied(t, store, desc, target, unix.SYS_PIVOT_ROOT)
		if err != nil {
			t.Fatalf("apply failed: %v", err)
		}
		if res.Root != "chroot" {
			t.Errorf("Result.Root = %q, want %q", res.Root, "chroot")
		}
		data, err := os.ReadFile(filepath.Join(target, "file"))
		if err != nil || string(data) != "data\n" {
			t.Errorf("target file = %q, %v; want %q", data, err, "data\n")
		}
		relCheckNoLeaks(t, before)
	})

	t.Run("pivot_root and chroot denied is a confinement error", func(t *testing.T) {
		target := t.TempDir()
		before := relSnapshot(t, filepath.Dir(target))
		_, err := relApplyWithDenied(t, store, desc, target, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT)
		var ce *applier.ChildError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *applier.ChildError", err)
		}
		if ce.Stage != "confine" {
			t.Errorf("ChildError.Stage = %q, want %q", ce.Stage, "confine")
		}
		if ce.Layer != desc.Digest {
			t.Errorf("ChildError.Layer = %s, want %s", ce.Layer, desc.Digest)
		}
		for _, want := range []string{"pivot_root", "chroot", "operation not permitted"} {
			if !strings.Contains(ce.Message, want) {
				t.Errorf("ChildError.Message %q does not contain %q", ce.Message, want)
			}
		}
		if entries := relDirNames(t, target); len(entries) != 0 {
			t.Errorf("target holds %q although the child never confined itself", entries)
		}
		relCheckNoLeaks(t, before)
	})
}
