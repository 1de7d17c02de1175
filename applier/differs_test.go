package applier_test

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
	"github.com/chroot-applier/containerd-chroot-applier/internal/manifest"
)

// TestDiffersFromWalking pins the cases where the walking differ fails or
// leaves a tree that the merged overlay mount would not show. Each case
// asserts our tree; walkingFails records whether containerd 2.4's walking
// differ rejects the same layers, so that a change there shows up here.
func TestDiffersFromWalking(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name         string
		kind         targetKind
		layers       [][]lt.Entry
		walkingFails bool
		verify       func(t *testing.T, m manifest.Manifest)
		// merged, if set, checks the merged overlay mount of all layers.
		merged func(t *testing.T, m manifest.Manifest)
		// walkingShows, if set, is a path that the merged mount shows after
		// the walking differ applied the layers, and that it must hide.
		walkingShows string
	}{
		{
			// The walking differ links inside the upperdir only, where the
			// target is missing, and fails with ENOENT.
			name: "hardlink to a lower-layer file is copied up",
			kind: overlayTarget,
			layers: [][]lt.Entry{
				{
					lt.Dir("d", lt.Mode(0o700), lt.Owner(5, 5)),
					lt.File("d/f", "lower content", lt.Mode(0o4750), lt.Owner(7, 8),
						lt.Xattr("user.k", "v"), lt.Xattr("security.capability", capNetRaw())),
					lt.Symlink("s", "d/f", lt.Owner(3, 3)),
				},
				{
					// As WriteDiff does, the link repeats the capability, which
					// the chown of the linked inode clears.
					lt.Link("g", "d/f", lt.Mode(0o4750), lt.Owner(7, 8),
						lt.Xattr("security.capability", capNetRaw())),
					lt.Link("s2", "s", lt.Owner(3, 3)),
				},
			},
			walkingFails: true,
			verify: func(t *testing.T, m manifest.Manifest) {
				d := wantType(t, m, "d", "dir")
				if d.Mode != 0o700 || d.UID != 5 {
					t.Errorf("copied-up parent d: mode %o uid %d, want 700 and 5", d.Mode, d.UID)
				}
				f, g := wantType(t, m, "d/f", "file"), wantType(t, m, "g", "file")
				if f.SameInode != "d/f" || g.SameInode != "d/f" {
					t.Errorf("d/f and g do not share an inode: %q, %q", f.SameInode, g.SameInode)
				}
				size := int64(len("lower content"))
				if f.Mode != 0o4750 || f.UID != 7 || f.GID != 8 || f.Size != size {
					t.Errorf("d/f: mode %o owner %d:%d size %d, want 4750 7:8 %d",
						f.Mode, f.UID, f.GID, f.Size, size)
				}
				if f.Xattrs["user.k"] != "v" || f.Xattrs["security.capability"] != capNetRaw() {
					t.Errorf("d/f: xattrs %q, want user.k and security.capability copied", f.Xattrs)
				}
				if f.Mtime != lt.Epoch.UnixNano() {
					t.Errorf("d/f: mtime %d, want the lower file's %d",
						f.Mtime, lt.Epoch.UnixNano())
				}
				s := wantType(t, m, "s", "symlink")
				if s.Link != "d/f" || s.UID != 3 || s.SameInode != "s" {
					t.Errorf("s: link %q uid %d inode group %q, want d/f, 3, s",
						s.Link, s.UID, s.SameInode)
				}
			},
			merged: func(t *testing.T, m manifest.Manifest) {
				f, g := wantType(t, m, "d/f", "file"), wantType(t, m, "g", "file")
				if f.SHA256 != g.SHA256 || f.Size != int64(len("lower content")) {
					t.Errorf("merged d/f and g differ or lost content: %+v, %+v", f, g)
				}
			},
		},
		{
			// On the merged mount the link follows the lower symlink, so
			// the file is copied up where the symlink leads.
			name: "hardlink through a lower-layer symlink copies up its target",
			kind: overlayTarget,
			layers: [][]lt.Entry{
				{lt.Dir("real"), lt.File("real/f", "x"), lt.Symlink("dir", "real")},
				{lt.Link("g", "dir/f")},
			},
			walkingFails: true,
			verify: func(t *testing.T, m manifest.Manifest) {
				f, g := wantType(t, m, "real/f", "file"), wantType(t, m, "g", "file")
				if f.SameInode != "g" || g.SameInode != "g" {
					t.Errorf("real/f and g do not share an inode: %q, %q", f.SameInode, g.SameInode)
				}
				wantMissing(t, m, "dir")
			},
			merged: func(t *testing.T, m manifest.Manifest) {
				wantType(t, m, "dir", "symlink")
				wantType(t, m, "g", "file")
			},
		},
		{
			// A whiteout hides lower layers only (OCI image spec,
			// layer.md), so the file this layer adds stays.
			name: "file then its whiteout keeps the file",
			kind: bindTarget,
			layers: [][]lt.Entry{
				{lt.File("x", "lower"), lt.Dir("d"), lt.File("d/lower", "x")},
				{
					lt.File("x", "new"), lt.Whiteout("", "x"),
					lt.Dir("d"), lt.File("d/new", "x"), lt.Whiteout("", "d"),
				},
			},
			verify: func(t *testing.T, m manifest.Manifest) {
				if x := wantType(t, m, "x", "file"); x.Size != 3 {
					t.Errorf("x has %d bytes, want the layer's 3", x.Size)
				}
				wantType(t, m, "d/new", "file")
				wantMissing(t, m, "d/lower")
			},
		},
		{
			name: "file then its whiteout keeps the file on overlay",
			kind: overlayTarget,
			layers: [][]lt.Entry{
				{lt.File("x", "lower"), lt.Dir("d"), lt.File("d/lower", "x")},
				{
					lt.File("x", "new"), lt.Whiteout("", "x"),
					lt.Dir("d"), lt.File("d/new", "x"), lt.Whiteout("", "d"),
				},
			},
			walkingFails: true,
			verify: func(t *testing.T, m manifest.Manifest) {
				if x := wantType(t, m, "x", "file"); x.Size != 3 {
					t.Errorf("x has %d bytes, want the layer's 3", x.Size)
				}
				wantType(t, m, "d/new", "file")
				wantOpaque(t, m, "d")
			},
			merged: func(t *testing.T, m manifest.Manifest) {
				if x := wantType(t, m, "x", "file"); x.Size != 3 {
					t.Errorf("merged x has %d bytes, want the layer's 3", x.Size)
				}
				wantType(t, m, "d/new", "file")
				wantMissing(t, m, "d/lower")
			},
		},
		{
			// The walking differ replaces the whiteout device with a plain
			// directory, which lets the lower directory show through.
			name: "directory replacing its whiteout is opaque",
			kind: overlayTarget,
			layers: [][]lt.Entry{
				{lt.Dir("d"), lt.File("d/lower", "x"), lt.File("y", "lower")},
				{
					lt.Whiteout("", "d"), lt.Dir("d"), lt.File("d/new", "x"),
					lt.Whiteout("", "y"), lt.File("y", "new"),
				},
			},
			verify: func(t *testing.T, m manifest.Manifest) {
				wantOpaque(t, m, "d")
				wantType(t, m, "d/new", "file")
				if y := wantType(t, m, "y", "file"); y.Size != 3 {
					t.Errorf("y has %d bytes, want the layer's 3", y.Size)
				}
			},
			merged: func(t *testing.T, m manifest.Manifest) {
				wantType(t, m, "d/new", "file")
				wantMissing(t, m, "d/lower")
			},
			walkingShows: "d/lower",
		},
		{
			// The walking differ finds the whiteout device where it needs a
			// parent directory and fails with ENOTDIR.
			name: "whiteout in the way of parents becomes an opaque directory",
			kind: overlayTarget,
			layers: [][]lt.Entry{
				{lt.Dir("a", lt.Mode(0o700), lt.Owner(4, 4)), lt.File("a/old", "x")},
				{lt.Whiteout("", "a"), lt.File("a/b/f", "x")},
			},
			walkingFails: true,
			verify: func(t *testing.T, m manifest.Manifest) {
				a := wantOpaque(t, m, "a")
				if a.Mode != 0o755 || a.UID != 0 {
					t.Errorf("a: mode %o uid %d, want 755 and 0 (the lower a is hidden)",
						a.Mode, a.UID)
				}
				wantType(t, m, "a/b/f", "file")
				wantMissing(t, m, "a/old")
			},
			merged: func(t *testing.T, m manifest.Manifest) {
				wantType(t, m, "a/b/f", "file")
				wantMissing(t, m, "a/old")
			},
		},
		{
			// The walking differ creates the parents of a PAX global
			// header's name and removes what is at that name.
			name: "pax global header creates nothing",
			kind: bindTarget,
			layers: [][]lt.Entry{
				{lt.File("kept", "x")},
				{lt.Global("kept"), lt.Global("foo/bar")},
			},
			verify: func(t *testing.T, m manifest.Manifest) {
				wantType(t, m, "kept", "file")
				wantMissing(t, m, "foo")
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := lt.NewStore(t)
			var layers []ocispec.Descriptor
			for _, entries := range tc.layers {
				layers = append(layers, lt.Layer(t, store, "", entries...))
			}
			s, err := applyAll(t, oursDiffer(store), tc.kind, layers)
			if err != nil {
				t.Fatalf("apply failed: %v", err)
			}
			tc.verify(t, buildManifest(t, s.dirs[len(s.dirs)-1]))
			if tc.merged != nil {
				tc.merged(t, mergedView(t, s.dirs))
			}

			walking, walkingErr := applyAll(t, walkingDiffer(store), tc.kind, layers)
			if tc.walkingFails && walkingErr == nil {
				t.Errorf("walking differ now succeeds; compare its tree with ours")
			}
			if tc.walkingShows != "" && walkingErr == nil {
				if _, ok := mergedView(t, walking.dirs).Get(tc.walkingShows); !ok {
					t.Errorf("the walking differ's merged mount now hides %s", tc.walkingShows)
				}
			}
		})
	}
}

// mergedView mounts the upperdirs dirs, bottom first, as one read-only
// overlay and returns the manifest of what the mount shows.
func mergedView(t *testing.T, dirs []string) manifest.Manifest {
	t.Helper()
	lowers := make([]string, 0, len(dirs))
	for i := len(dirs) - 1; i >= 0; i-- {
		lowers = append(lowers, dirs[i])
	}
	target := t.TempDir()
	if err := unix.Mount("overlay", target, "overlay", unix.MS_RDONLY,
		"lowerdir="+strings.Join(lowers, ":")); err != nil {
		t.Fatalf("failed to mount the merged overlay: %v", err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	return buildManifest(t, target)
}

func wantOpaque(t *testing.T, m manifest.Manifest, path string) manifest.Entry {
	t.Helper()
	e := wantType(t, m, path, "dir")
	if e.Xattrs["trusted.overlay.opaque"] != "y" {
		t.Errorf("%s is not opaque: xattrs %q", path, e.Xattrs)
	}
	return e
}

// TestHardlinkToHiddenLowerFile checks that copy-up finds only what the
// merged overlay mount shows: a lower file behind a whiteout or an opaque
// directory of a later layer cannot be linked.
func TestHardlinkToHiddenLowerFile(t *testing.T) {
	requireRoot(t)
	base := []lt.Entry{lt.Dir("d"), lt.File("d/f", "x"), lt.File("d/kept", "x")}
	cases := []struct {
		name   string
		hiding []lt.Entry
		target string
	}{
		{"behind an opaque directory", []lt.Entry{lt.Dir("d"), lt.Opaque("d")}, "d/f"},
		{"behind a whiteout of its directory", []lt.Entry{lt.Whiteout("", "d")}, "d/kept"},
		{"behind its own whiteout", []lt.Entry{lt.Dir("d"), lt.Whiteout("d", "f")}, "d/f"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := lt.NewStore(t)
			layers := []ocispec.Descriptor{
				lt.Layer(t, store, "", base...),
				lt.Layer(t, store, "", tc.hiding...),
				lt.Layer(t, store, "", lt.Link("g", tc.target)),
			}
			_, err := applyAll(t, oursDiffer(store), overlayTarget, layers)
			wantInvalid(t, err, "g")
		})
	}
}
