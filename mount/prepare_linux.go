package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"
)

// scratchCandidates are directories the child may cover with a tmpfs in its
// own mount namespace to get a mount point for a Mounted target. The first
// one that exists and contains none of the mounts' paths is used.
var scratchCandidates = []string{"/mnt", "/media", "/srv", "/opt", "/tmp", "/run"}

// Prepare makes t ready for confinement and returns the directory that
// becomes the child's root. It must run inside the child's private mount
// namespace: it bind-mounts the target onto itself so that pivot_root can
// use it, and for a Mounted target it mounts a tmpfs over a scratch directory
// and the target's mounts below it. None of these mounts is visible on the
// host, and all of them go away with the namespace when the child exits.
func Prepare(t Target) (string, error) {
	switch t.Kind {
	case Overlay, Bind:
		if err := unix.Mount(t.Dir, t.Dir, "", unix.MS_BIND, ""); err != nil {
			return "", fmt.Errorf("failed to bind-mount target %s onto itself: %w", t.Dir, err)
		}
		return t.Dir, nil
	case Mounted:
		scratch, err := chooseScratch(t.Mounts)
		if err != nil {
			return "", err
		}
		err = unix.Mount("tmpfs", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700")
		if err != nil {
			return "", fmt.Errorf("failed to mount scratch tmpfs on %s: %w", scratch, err)
		}
		root := filepath.Join(scratch, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			return "", fmt.Errorf("failed to create mount point %s: %w", root, err)
		}
		if err := mount.All(t.Mounts, root); err != nil {
			return "", fmt.Errorf("failed to mount snapshot: %w", err)
		}
		return root, nil
	}
	return "", fmt.Errorf("unknown target kind %v", t.Kind)
}

func chooseScratch(mounts []mount.Mount) (string, error) {
	var paths []string
	for _, m := range mounts {
		paths = append(paths, m.Source)
		for _, o := range m.Options {
			if _, v, ok := strings.Cut(o, "="); ok && strings.HasPrefix(v, "/") {
				paths = append(paths, strings.Split(v, ":")...)
			}
		}
	}
	for _, dir := range scratchCandidates {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		if !containsAny(dir, paths) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no scratch directory for a mount point: "+
		"each of %v is missing or contains a mount path",
		scratchCandidates)
}

func containsAny(dir string, paths []string) bool {
	for _, p := range paths {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}
