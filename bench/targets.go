package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"golang.org/x/sys/unix"
)

// Target kinds on the command line.
const (
	kindDir     = "dir"
	kindOverlay = "overlay"
)

// workspace is the benchmark's temporary directory: a content store that
// holds the inputs, the lower layers of overlay targets and a directory for
// the fresh target of each run.
type workspace struct {
	root   string
	store  string
	lowers []string
	runs   int
}

func newWorkspace(parent string) (*workspace, error) {
	root, err := os.MkdirTemp(parent, "containerd-chroot-applier-bench-")
	if err != nil {
		return nil, err
	}
	w := &workspace{root: root, store: filepath.Join(root, "content")}
	for i, files := range lowerLayers {
		dir := filepath.Join(root, fmt.Sprintf("lower%d", i+1))
		if err := writeTree(dir, files); err != nil {
			return nil, err
		}
		w.lowers = append(w.lowers, dir)
	}
	return w, nil
}

// lowerLayers are the trees of the overlay targets' lowerdirs, uppermost
// first. They share top-level directories with the inputs, so that an apply
// takes the attributes of implied parents from them.
var lowerLayers = []map[string]string{
	{"etc/hostname": "bench\n", "usr/share/doc/lower1": "lower 1\n", "var/lib/lower1": "1\n"},
	{"etc/motd": "lower 2\n", "usr/lib/lower2": "lower 2\n", "var/cache/lower2": "2\n"},
}

func writeTree(root string, files map[string]string) error {
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ingest copies the blob of in into the workspace's content store.
func (w *workspace) ingest(ctx context.Context, in input) error {
	cs, err := local.NewStore(w.store)
	if err != nil {
		return err
	}
	if _, err := cs.Info(ctx, in.Digest); err == nil {
		return nil
	}
	f, err := os.Open(in.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = content.WriteBlob(ctx, cs, "bench-"+in.Digest.Encoded(), bufio.NewReaderSize(f, 1<<20),
		in.descriptor())
	if err != nil {
		return fmt.Errorf("failed to ingest %s: %w", in.Name, err)
	}
	return nil
}

// target is a fresh extraction target and the mounts that describe it.
type target struct {
	dir    string
	mounts []mount.Mount
}

// newTarget creates an empty target of the given kind.
func (w *workspace) newTarget(kind string) (target, error) {
	w.runs++
	dir := filepath.Join(w.root, fmt.Sprintf("run%d", w.runs))
	switch kind {
	case kindDir:
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return target{}, err
		}
		return target{dir: dir, mounts: []mount.Mount{{
			Type: "bind", Source: dir, Options: []string{"rbind", "rw"},
		}}}, nil
	case kindOverlay:
		upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return target{}, err
			}
		}
		lowerdir := w.lowers[0]
		for _, l := range w.lowers[1:] {
			lowerdir += ":" + l
		}
		return target{dir: dir, mounts: []mount.Mount{{
			Type:   "overlay",
			Source: "overlay",
			Options: []string{
				"workdir=" + work, "upperdir=" + upper, "lowerdir=" + lowerdir,
			},
		}}}, nil
	}
	return target{}, fmt.Errorf("unknown target kind %q, expected %s or %s",
		kind, kindDir, kindOverlay)
}

func (w *workspace) close() error { return os.RemoveAll(w.root) }

// settleAll writes back every dirty page of every file system and waits
// until it is written.
func settleAll() { unix.Sync() }

// warmBlob reads the blob at path, so that the timed run finds it in the
// page cache as it would find a layer that was just pulled. A machine may
// evict cold page cache between runs, as DAMON's pageout scheme does on the
// machine of the published results, and both sides would then time reading
// the blob from disk instead of applying it.
func warmBlob(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyBuffer(io.Discard, f, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("failed to read blob %s: %w", path, err)
	}
	return nil
}

// dropCache drops the page cache of the regular files under dir, once they
// are written back, so that the next run writes into memory that was used
// before. On the machine of the published results, writing 1 GiB with dd
// took 0.25 s when each file's cache was dropped after its run, and 2 to
// 3.4 s from the third file on when the cache kept them. The likely cause
// is that the virtual machine's host backs guest memory only when it is
// first touched, which then dominates both sides' times.
func dropCache(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("failed to open %s: %w", p, err)
		}
		defer unix.Close(fd)
		return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	})
}

// blobPath returns the path of the blob of in in the content store at root.
func blobPath(root string, in input) string {
	return filepath.Join(root, "blobs", in.Digest.Algorithm().String(), in.Digest.Encoded())
}
