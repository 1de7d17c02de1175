// Package mount turns the mounts containerd hands to a diff applier into an
// extraction target.
//
// containerd describes a snapshot as a list of mounts. Two shapes cover the
// common snapshotters and can be extracted into without mounting anything.
// One is a single overlay mount: its upperdir receives the layer with
// overlayfs whiteouts, and its lowerdirs supply the attributes of implied
// parent directories. The other is a single writable bind mount, whose
// source is the snapshot directory itself. Every other list is mounted by the confined
// child inside its own mount namespace, so nothing stays mounted on the host
// whatever happens to the child.
package mount

import (
	"fmt"
	"os"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
)

// Kind is the shape of an extraction target.
type Kind int

const (
	// Overlay extracts into Target.Dir, an overlay upperdir, converting
	// whiteouts to their overlayfs form.
	Overlay Kind = iota + 1
	// Bind extracts into Target.Dir, the source of a bind mount.
	Bind
	// Mounted mounts Target.Mounts inside the child's mount namespace and
	// extracts into the result.
	Mounted
)

// String returns the name of the kind as it appears in logs.
func (k Kind) String() string {
	switch k {
	case Overlay:
		return "overlay"
	case Bind:
		return "bind"
	case Mounted:
		return "mounted"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Target is the extraction target of a layer.
type Target struct {
	// Kind is the shape of the target.
	Kind Kind `json:"kind"`
	// Dir is the upperdir (Overlay) or the bind source (Bind).
	Dir string `json:"dir,omitempty"`
	// Lowerdirs are the overlay lowerdirs in overlayfs order, uppermost
	// first. They are only read.
	Lowerdirs []string `json:"lowerdirs,omitempty"`
	// Mounts are the mounts to make inside the child (Mounted).
	Mounts []mount.Mount `json:"mounts,omitempty"`
}

// Plan chooses the target for mounts. It returns an error wrapping
// errdefs.ErrInvalidArgument for an empty list and errdefs.ErrNotFound when a
// directory the target needs does not exist, so that no child is started for
// a request that cannot succeed.
func Plan(mounts []mount.Mount) (Target, error) {
	if len(mounts) == 0 {
		return Target{}, fmt.Errorf("no mounts to apply to: %w", errdefs.ErrInvalidArgument)
	}

	var t Target
	switch {
	case len(mounts) == 1 && mounts[0].Type == "overlay" && hasOption(mounts[0], "upperdir="):
		t = Target{Kind: Overlay}
		for _, o := range mounts[0].Options {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				t.Dir = v
			} else if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
				t.Lowerdirs = strings.Split(v, ":")
			}
		}
	case len(mounts) == 1 && isBind(mounts[0]) && !hasOption(mounts[0], "ro"):
		t = Target{Kind: Bind, Dir: mounts[0].Source}
	default:
		return Target{Kind: Mounted, Mounts: mounts}, nil
	}

	for _, dir := range append([]string{t.Dir}, t.Lowerdirs...) {
		if err := checkDir(dir); err != nil {
			return Target{}, err
		}
	}
	return t, nil
}

func isBind(m mount.Mount) bool {
	return m.Type == "bind" || hasOption(m, "bind") || hasOption(m, "rbind")
}

// hasOption reports whether m has the option opt, or, when opt ends in "=",
// an option with that key.
func hasOption(m mount.Mount, opt string) bool {
	for _, o := range m.Options {
		if o == opt || (strings.HasSuffix(opt, "=") && strings.HasPrefix(o, opt)) {
			return true
		}
	}
	return false
}

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("target directory %s: %w", dir, errdefs.ErrNotFound)
		}
		return fmt.Errorf("failed to stat target directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("target %s is not a directory: %w", dir, errdefs.ErrInvalidArgument)
	}
	return nil
}
