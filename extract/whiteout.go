package extract

import (
	"archive/tar"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// applyWhiteout applies ".wh.HIDDEN" in parent. A whiteout hides only lower
// layers, so an entry of this same layer at that path stays. If that entry
// is a directory, OverlayWhiteouts makes it opaque and DeleteWhiteouts
// removes the lower-layer content below it.
func (a *applier) applyWhiteout(hdr *tar.Header, parent, hidden string) error {
	resolvedParent, err := a.resolve(parent)
	if err != nil {
		return err
	}
	if err := a.mkparent(resolvedParent); err != nil {
		return err
	}
	name := joinName(resolvedParent, hidden)
	if err := a.resolvePending(); err != nil {
		return err
	}
	if _, ok := a.created[name]; ok {
		return a.whiteoutOwnEntry(hdr, name)
	}

	if a.opts.Whiteouts == DeleteWhiteouts {
		return a.removeAll(name)
	}
	if _, ok := a.whiteouts[name]; ok {
		return nil
	}
	p := a.path(name)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err == nil {
		if err := a.removeAll(name); err != nil {
			return err
		}
	}
	if err := unix.Mknodat(unix.AT_FDCWD, p, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("failed to create whiteout %s: %w", name, err)
	}
	if err := lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("failed to chown whiteout %s: %w", name, err)
	}
	a.whiteouts[name] = struct{}{}
	return nil
}

// whiteoutOwnEntry applies a whiteout of a path this layer created.
func (a *applier) whiteoutOwnEntry(hdr *tar.Header, name string) error {
	a.warn(hdr.Name, "whiteout of an entry of the same layer: it hides only lower layers")
	var st unix.Stat_t
	if err := unix.Lstat(a.path(name), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	if a.opts.Whiteouts == OverlayWhiteouts {
		return a.setOpaque(name)
	}
	return a.removeLowerEntries(name)
}

// applyOpaque applies the opaque marker of parent: with OverlayWhiteouts it
// sets trusted.overlay.opaque=y on the directory, with DeleteWhiteouts it
// removes everything below it that this layer did not create.
func (a *applier) applyOpaque(hdr *tar.Header, parent string) error {
	dir, err := a.resolve(parent)
	if err != nil {
		return err
	}
	if err := a.mkparent(dir); err != nil {
		return err
	}
	if a.opts.Whiteouts == OverlayWhiteouts {
		return a.setOpaque(dir)
	}
	if err := a.resolvePending(); err != nil {
		return err
	}
	return a.removeLowerEntries(dir)
}

// removeLowerEntries removes every entry below dir that this layer did not
// create, descending into the directories it did create. It reads each
// directory once per layer.
func (a *applier) removeLowerEntries(dir string) error {
	if _, ok := a.emptiedDirs[dir]; ok {
		return nil
	}
	a.dirReads++
	entries, err := os.ReadDir(a.path(dir))
	if err != nil {
		return fmt.Errorf("failed to read directory %s: %w", dir, err)
	}
	for _, e := range entries {
		name := joinName(dir, e.Name())
		if _, ok := a.created[name]; !ok {
			if err := a.removeAll(name); err != nil {
				return err
			}
			continue
		}
		if e.IsDir() {
			if err := a.removeLowerEntries(name); err != nil {
				return err
			}
		}
	}
	a.emptiedDirs[dir] = struct{}{}
	return nil
}
