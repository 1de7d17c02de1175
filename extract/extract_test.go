package extract_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chroot-applier/containerd-chroot-applier/extract"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

// These tests call Apply on a directory of an unconfined process, which is
// safe only because the layers here are benign. Hostile layers are tested
// through the applier, whose child confines itself first.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("extraction sets owners and creates devices, which needs root")
	}
}

func mustTar(t *testing.T, entries ...lt.Entry) []byte {
	t.Helper()
	data, err := lt.Tar(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestApplyStats(t *testing.T) {
	requireRoot(t)
	data := mustTar(t,
		lt.Global("pax_global_header"),
		lt.Dir("d"),
		lt.File("d/f", "12345"),
		lt.File("g", "abc"),
		lt.Whiteout("", "gone"),
		lt.Symlink("l", "g"),
	)
	opts := extract.Options{Root: t.TempDir()}
	stats, err := extract.Apply(context.Background(), bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Entries != 6 {
		t.Errorf("Entries = %d, want 6", stats.Entries)
	}
	if stats.Size != 8 {
		t.Errorf("Size = %d, want 8 (the sum of the header sizes)", stats.Size)
	}
}

func TestApplyErrors(t *testing.T) {
	requireRoot(t)
	unsupported := lt.File("cont", "x")
	unsupported.Header.Typeflag = tar.TypeCont
	valid := mustTar(t, lt.File("a", strings.Repeat("x", 4096)))

	cases := []struct {
		name    string
		data    []byte
		entry   string
		invalid bool
	}{
		{"unsupported entry type", mustTar(t, unsupported), "cont", true},
		{"device number beyond 32 bits", mustTar(t, bigDevice()), "dev", true},
		{"invalid whiteout name", mustTar(t, lt.Whiteout("", "..")), ".wh...", true},
		{"content cut short", valid[:1024], "a", true},
		{"missing hardlink target", mustTar(t, lt.Link("l", "nowhere")), "l", true},
		{"file below a file", mustTar(t, lt.File("f", "x"), lt.File("f/g", "y")), "f/g", false},
		{"symlink loop in the parents", mustTar(t,
			lt.Symlink("a", "b"), lt.Symlink("b", "a"), lt.File("a/f", "x")), "a/f", false},
		{"hardlink to a directory", mustTar(t, lt.Dir("d"), lt.Link("l", "d")), "l", true},
		{"hardlink to a directory from a new parent",
			mustTar(t, lt.Dir("d"), lt.Link("p/l", "d")), "p/l", true},
		{"hardlink to dot-dot", mustTar(t, lt.Link("l", "..")), "l", true},
		{"hardlink to the root", mustTar(t, lt.Link("l", "/")), "l", true},
		{"name over PATH_MAX", mustTar(t, lt.File(strings.Repeat("d/", 2100)+"f", "")),
			strings.Repeat("d/", 2100) + "f", true},
		{"xattr value over 64 KiB",
			mustTar(t, lt.File("f", "", lt.Xattr("user.v", strings.Repeat("v", 200<<10)))),
			"f", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := extract.Apply(context.Background(), bytes.NewReader(tc.data),
				extract.Options{Root: t.TempDir()})
			var entryErr *extract.EntryError
			if !errors.As(err, &entryErr) {
				t.Fatalf("error %v is not an *EntryError", err)
			}
			if entryErr.Entry != tc.entry {
				t.Errorf("Entry = %q, want %q", entryErr.Entry, tc.entry)
			}
			if got := errors.Is(err, extract.ErrInvalidLayer); got != tc.invalid {
				t.Errorf("errors.Is(%v, ErrInvalidLayer) = %v, want %v", err, got, tc.invalid)
			}
		})
	}
}

func bigDevice() lt.Entry {
	e := lt.Char("dev", 1<<32, 1)
	e.Header.Format = tar.FormatGNU
	return e
}

func TestApplyNotATar(t *testing.T) {
	requireRoot(t)
	_, err := extract.Apply(context.Background(), strings.NewReader(strings.Repeat("junk", 300)),
		extract.Options{Root: t.TempDir()})
	if !errors.Is(err, extract.ErrInvalidLayer) {
		t.Errorf("error %v, want one wrapping ErrInvalidLayer", err)
	}
}

func TestApplyCancelled(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	root := t.TempDir()
	data := mustTar(t, lt.File("f", "x"))
	_, err := extract.Apply(ctx, bytes.NewReader(data), extract.Options{Root: root})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "f")); err == nil {
		t.Error("f was created after the context was cancelled")
	}
}

func TestApplyNoSpace(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("needs a tmpfs mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })

	data := mustTar(t, lt.File("big", strings.Repeat("x", 1<<20)))
	opts := extract.Options{Root: root}
	_, err := extract.Apply(context.Background(), bytes.NewReader(data), opts)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error %v, want one wrapping ENOSPC", err)
	}
	var entryErr *extract.EntryError
	if !errors.As(err, &entryErr) || entryErr.Entry != "big" {
		t.Errorf("error %v does not name entry big", err)
	}
}

func TestApplyWarnings(t *testing.T) {
	requireRoot(t)
	data := mustTar(t,
		lt.Dir("d", lt.Xattr("trusted.overlay.opaque", "y")),
		lt.Fifo("p", lt.Xattr("user.note", "x")),
		lt.File("f", "x"),
		lt.Whiteout("", "f"),
	)
	var warned []string
	_, err := extract.Apply(context.Background(), bytes.NewReader(data), extract.Options{
		Root: t.TempDir(),
		Warn: func(entry, reason string) { warned = append(warned, entry+": "+reason) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range []string{"d", "p", ".wh.f"} {
		found := false
		for _, w := range warned {
			found = found || strings.HasPrefix(w, entry+": ")
		}
		if !found {
			t.Errorf("no warning for %s; warnings: %q", entry, warned)
		}
	}
}
