package applier_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
	"github.com/chroot-applier/containerd-chroot-applier/internal/manifest"
)

// sentinel is a directory outside every target that no layer may change.
type sentinel struct {
	dir    string
	before manifest.Manifest
}

func newSentinel(t *testing.T) *sentinel {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sentinel")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "victim"), []byte("host victim"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &sentinel{dir: dir, before: buildManifest(t, dir)}
}

// check fails the test unless the sentinel is byte for byte as it was and
// its file has a single link.
func (s *sentinel) check(t *testing.T) {
	t.Helper()
	for _, d := range manifest.Diff(s.before, buildManifest(t, s.dir)) {
		t.Errorf("sentinel changed: %s", d)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(s.dir, "file"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 1 {
		t.Errorf("sentinel file has %d links, want 1", st.Nlink)
	}
}

// wantInvalid fails the test unless err wraps errdefs.ErrInvalidArgument
// and names entry.
func wantInvalid(t *testing.T, err error, entry string) {
	t.Helper()
	if err == nil {
		t.Fatalf("apply succeeded, want an invalid-argument error naming %q", entry)
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("error %q does not wrap errdefs.ErrInvalidArgument", err)
	}
	if !strings.Contains(err.Error(), entry) {
		t.Errorf("error %q does not name entry %q", err, entry)
	}
}

func TestHostileLayers(t *testing.T) {
	requireRoot(t)
	type result struct {
		kind   targetKind
		target string
		m      manifest.Manifest
	}
	cases := []struct {
		name string
		// lower, if set, is applied first.
		lower  func(sentinel string) []lt.Entry
		layer  func(sentinel string) []lt.Entry
		kinds  []targetKind
		entry  string // set when the layer must be rejected, naming this entry
		verify func(t *testing.T, sentinel string, r result)
	}{
		{
			name:  "dotdot names land inside",
			layer: entries(lt.File("../x", "1"), lt.File("/../y", "2")),
			verify: func(t *testing.T, _ string, r result) {
				wantType(t, r.m, "x", "file")
				wantType(t, r.m, "y", "file")
			},
		},
		{
			name: "absolute symlink parent stays inside",
			layer: func(s string) []lt.Entry {
				return []lt.Entry{lt.Symlink("etc", s), lt.File("etc/new", "x")}
			},
			verify: func(t *testing.T, s string, r result) {
				wantType(t, r.m, "etc", "symlink")
				wantType(t, r.m, strings.TrimPrefix(s, "/")+"/new", "file")
			},
		},
		{
			name: "relative symlink parent clamps at root",
			layer: func(string) []lt.Entry {
				return []lt.Entry{lt.Symlink("up", "../../../.."), lt.File("up/new", "x")}
			},
			verify: func(t *testing.T, _ string, r result) { wantType(t, r.m, "new", "file") },
		},
		{
			name:  "hardlink to host file is resolved inside",
			layer: func(s string) []lt.Entry { return []lt.Entry{lt.Link("link", s+"/file")} },
			entry: "link",
		},
		{
			name: "hardlink to symlink does not chmod its target",
			layer: func(s string) []lt.Entry {
				return []lt.Entry{lt.Symlink("a", s+"/victim"), lt.Link("b", "a", lt.Mode(0o4777))}
			},
			verify: func(t *testing.T, _ string, r result) {
				a, b := wantType(t, r.m, "a", "symlink"), wantType(t, r.m, "b", "symlink")
				if a.SameInode != "a" || b.SameInode != "a" {
					t.Errorf("a and b do not share an inode: %q, %q", a.SameInode, b.SameInode)
				}
			},
		},
		{
			name: "symlink named dot is ignored",
			layer: func(s string) []lt.Entry {
				return []lt.Entry{lt.Symlink(".", s), lt.File("pwned", "x")}
			},
			verify: func(t *testing.T, _ string, r result) {
				wantType(t, r.m, ".", "dir")
				wantType(t, r.m, "pwned", "file")
			},
		},
		{name: "whiteout named .wh.", layer: entries(lt.Whiteout("", "")), entry: ".wh."},
		{name: "whiteout named .wh..", layer: entries(lt.Whiteout("", ".")), entry: ".wh.."},
		{name: "whiteout named .wh...", layer: entries(lt.Whiteout("", "..")), entry: ".wh..."},
		{name: "subdirectory whiteout .wh.", layer: subWhiteout(""), entry: "d/.wh."},
		{name: "subdirectory whiteout .wh..", layer: subWhiteout("."), entry: "d/.wh.."},
		{name: "subdirectory whiteout .wh...", layer: subWhiteout(".."), entry: "d/.wh..."},
		{
			name:  "whiteout of symlink keeps its target",
			lower: entries(lt.Dir("dir"), lt.File("dir/f", "x"), lt.Symlink("link", "dir")),
			layer: entries(lt.Whiteout("", "link")),
			kinds: []targetKind{bindTarget},
			verify: func(t *testing.T, _ string, r result) {
				wantMissing(t, r.m, "link")
				wantType(t, r.m, "dir/f", "file")
			},
		},
		{
			name: "opaque marker after entries of the same layer",
			lower: entries(lt.Dir("opq"), lt.File("opq/lower", "x"),
				lt.Dir("opq/sub"), lt.File("opq/sub/f", "x")),
			layer: entries(lt.Dir("opq"), lt.File("opq/before", "x"),
				lt.Opaque("opq"), lt.File("opq/after", "x")),
			verify: func(t *testing.T, _ string, r result) {
				wantType(t, r.m, "opq/before", "file")
				wantType(t, r.m, "opq/after", "file")
				if r.kind == overlayTarget {
					wantOpaque(t, r.m, "opq")
					return
				}
				wantMissing(t, r.m, "opq/lower")
				wantMissing(t, r.m, "opq/sub")
			},
		},
		{
			name:  "pax global header named like a path",
			layer: entries(lt.Global("foo/bar")),
			verify: func(t *testing.T, _ string, r result) {
				if len(r.m.Entries) != 1 {
					t.Errorf("target has %v, want only the root", r.m.Paths())
				}
			},
		},
		{
			name:  "device major beyond 32 bits",
			layer: entries(gnuChar("dev", 1<<32, 0)),
			entry: "dev",
		},
		{
			name:  "negative device minor",
			layer: entries(gnuChar("dev", 1, -1)),
			entry: "dev",
		},
		{
			name: "trusted overlay xattrs are not written",
			layer: entries(lt.Dir("d", lt.Xattr("trusted.overlay.opaque", "y"),
				lt.Xattr("trusted.overlay.redirect", "/elsewhere"))),
			verify: func(t *testing.T, _ string, r result) {
				if d := wantType(t, r.m, "d", "dir"); len(d.Xattrs) != 0 {
					t.Errorf("d has xattrs %v, want none", d.Xattrs)
				}
			},
		},
		{
			name: "setuid and capability survive chown",
			layer: entries(
				lt.File("suid", "x", lt.Mode(0o4755), lt.Owner(1000, 1000)),
				lt.File("sgid", "x", lt.Mode(0o2755), lt.Owner(1000, 1000)),
				lt.File("cap", "x", lt.Mode(0o755), lt.Owner(1000, 1000),
					lt.Xattr("security.capability", capNetRaw()))),
			verify: func(t *testing.T, _ string, r result) {
				if e := wantType(t, r.m, "suid", "file"); e.Mode != 0o4755 || e.UID != 1000 {
					t.Errorf("suid: mode %o uid %d, want 4755 and 1000", e.Mode, e.UID)
				}
				if e := wantType(t, r.m, "sgid", "file"); e.Mode != 0o2755 || e.GID != 1000 {
					t.Errorf("sgid: mode %o gid %d, want 2755 and 1000", e.Mode, e.GID)
				}
				got := wantType(t, r.m, "cap", "file").Xattrs["security.capability"]
				if got != capNetRaw() {
					t.Errorf("cap: security.capability %q, want %q", got, capNetRaw())
				}
			},
		},
		{
			name: "owner names are never looked up",
			layer: entries(
				lt.Dir("etc"),
				lt.File("etc/nsswitch.conf", "passwd: files\ngroup: files\n"),
				lt.File("etc/passwd", "root:x:4242:4242::/:/bin/sh\n"),
				lt.Dir("lib"), lt.Dir("lib/x86_64-linux-gnu"),
				lt.File("lib/x86_64-linux-gnu/libnss_files.so.2", "\x7fELF junk"),
				lt.File("named", "x", lt.Owner(1234, 5678), lt.Names("root", "root")),
				lt.File("root-named-nobody", "x", lt.Owner(0, 0), lt.Names("nobody", "nogroup"))),
			verify: func(t *testing.T, _ string, r result) {
				if e := wantType(t, r.m, "named", "file"); e.UID != 1234 || e.GID != 5678 {
					t.Errorf("named: owner %d:%d, want 1234:5678", e.UID, e.GID)
				}
				if e := wantType(t, r.m, "root-named-nobody", "file"); e.UID != 0 || e.GID != 0 {
					t.Errorf("root-named-nobody: owner %d:%d, want 0:0", e.UID, e.GID)
				}
			},
		},
	}
	for _, tc := range cases {
		kinds := tc.kinds
		if kinds == nil {
			kinds = targetKinds
		}
		for _, kind := range kinds {
			t.Run(tc.name+"/"+string(kind), func(t *testing.T) {
				sent := newSentinel(t)
				store := lt.NewStore(t)
				var layers []ocispec.Descriptor
				if tc.lower != nil {
					layers = append(layers, lt.Layer(t, store, "", tc.lower(sent.dir)...))
				}
				layers = append(layers, lt.Layer(t, store, "", tc.layer(sent.dir)...))
				s, err := applyAll(t, oursDiffer(store), kind, layers)
				sent.check(t)
				if tc.entry != "" {
					wantInvalid(t, err, tc.entry)
					return
				}
				if err != nil {
					t.Fatalf("apply failed: %v", err)
				}
				top := s.dirs[len(s.dirs)-1]
				tc.verify(t, sent.dir, result{kind: kind, target: top, m: buildManifest(t, top)})
			})
		}
	}
}

// subWhiteout is a layer with the whiteout ".wh.BASE" in directory d.
func subWhiteout(base string) func(string) []lt.Entry {
	return entries(lt.Dir("d"), lt.Whiteout("d", base))
}

func entries(e ...lt.Entry) func(string) []lt.Entry {
	return func(string) []lt.Entry { return e }
}

// gnuChar is a character device in GNU format, whose base-256 numeric
// fields can carry device numbers that do not fit in 32 bits.
func gnuChar(name string, major, minor int64) lt.Entry {
	e := lt.Char(name, major, minor)
	e.Header.Format = 0
	return e
}

func wantType(t *testing.T, m manifest.Manifest, path, typ string) manifest.Entry {
	t.Helper()
	e, ok := m.Get(path)
	if !ok {
		t.Errorf("%s is missing; tree has %v", path, m.Paths())
		return e
	}
	if e.Type != typ {
		t.Errorf("%s is a %s, want a %s", path, e.Type, typ)
	}
	return e
}

func wantMissing(t *testing.T, m manifest.Manifest, path string) {
	t.Helper()
	if e, ok := m.Get(path); ok {
		t.Errorf("%s exists as a %s, want it removed", path, e.Type)
	}
}
