package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func writeTree(t *testing.T, dir string, content string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a/f"), []byte(content), 0o644))
	must(os.Link(filepath.Join(dir, "a/f"), filepath.Join(dir, "a/b/g")))
	must(os.Symlink("../f", filepath.Join(dir, "a/b/l")))
	must(unix.Mkfifo(filepath.Join(dir, "p"), 0o600))
	must(unix.Lsetxattr(filepath.Join(dir, "a/f"), "user.k", []byte("v"), 0))
	old := time.Unix(1000, 5)
	for _, p := range []string{"a/f", "a/b", "a", "p", "."} {
		must(os.Chtimes(filepath.Join(dir, p), old, old))
	}
	must(unix.Lutimes(filepath.Join(dir, "a/b/l"), []unix.Timeval{{Sec: 1000}, {Sec: 1000}}))
}

func TestDiff(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, "same")
	writeTree(t, b, "same")
	ma, err := Build(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := Build(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(ma, mb); d != nil {
		t.Fatalf("identical trees differ: %v", d)
	}
	if e, _ := ma.Get("a/b/g"); e.SameInode != "a/b/g" {
		t.Errorf("a/b/g: SameInode = %q, want a/b/g (first path of its group)", e.SameInode)
	}
	if e, _ := ma.Get("a/f"); e.Xattrs["user.k"] != "v" {
		t.Errorf("a/f: xattrs = %v, want user.k=v", e.Xattrs)
	}

	cases := []struct {
		name   string
		change func(dir string) error
		want   string
	}{
		{"content", func(d string) error {
			return os.WriteFile(filepath.Join(d, "a/f"), []byte("diff"), 0o644)
		}, "sha256"},
		{"mode", func(d string) error {
			return os.Chmod(filepath.Join(d, "a/f"), 0o4755)
		}, "mode"},
		{"owner", func(d string) error {
			return os.Lchown(filepath.Join(d, "a/b/l"), 7, 8)
		}, "uid"},
		{"xattr", func(d string) error {
			return unix.Lsetxattr(filepath.Join(d, "a"), "user.x", nil, 0)
		}, "xattr user.x"},
		{"extra path", func(d string) error {
			return os.Mkdir(filepath.Join(d, "new"), 0o755)
		}, "only in second"},
		{"link broken", func(d string) error {
			if err := os.Remove(filepath.Join(d, "a/b/g")); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(d, "a/b/g"), []byte("same"), 0o644)
		}, "same inode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := t.TempDir()
			writeTree(t, c, "same")
			if err := tc.change(c); err != nil {
				t.Fatal(err)
			}
			mc, err := Build(c)
			if err != nil {
				t.Fatal(err)
			}
			d := Diff(ma, mc, VolatileAfter(time.Now().Add(-time.Hour)))
			if !strings.Contains(strings.Join(d, "\n"), tc.want) {
				t.Errorf("diff %v does not mention %q", d, tc.want)
			}
		})
	}
}

func TestDiffVolatileAfter(t *testing.T) {
	a := Manifest{Entries: []Entry{{Path: ".", Type: "dir", Mtime: 2e9}}}
	b := Manifest{Entries: []Entry{{Path: ".", Type: "dir", Mtime: 3e9}}}
	if d := Diff(a, b); len(d) != 1 {
		t.Errorf("without VolatileAfter: %v, want one mtime difference", d)
	}
	if d := Diff(a, b, VolatileAfter(time.Unix(2, 0))); d != nil {
		t.Errorf("both mtimes volatile: %v, want none", d)
	}
	// The kernel's clock may stamp a file a tick before the time taken
	// just before the change.
	if d := Diff(a, b, VolatileAfter(time.Unix(2, 0).Add(time.Millisecond))); d != nil {
		t.Errorf("mtime a tick before the volatile time: %v, want none", d)
	}
	if d := Diff(a, b, VolatileAfter(time.Unix(2, 500e6))); len(d) != 1 {
		t.Errorf("one mtime volatile: %v, want one mtime difference", d)
	}
}
