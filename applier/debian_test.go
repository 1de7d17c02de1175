package applier_test

import (
	"testing"

	"github.com/chroot-applier/containerd-chroot-applier/internal/fixture"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

// debianUpdate is a layer on top of the Debian rootfs that does what image
// updates do. It deletes a tree, makes a directory opaque, replaces a file
// with a symlink and a directory with a file, and changes owners and modes.
// It also adds a setuid binary, a file with a capability, a fifo and a
// device.
func debianUpdate() []lt.Entry {
	return []lt.Entry{
		lt.Dir("dev"),
		lt.Char("dev/custom", 10, 200, lt.Mode(0o600), lt.Owner(0, 5)),
		lt.Dir("etc"),
		lt.Dir("etc/apt"),
		lt.Opaque("etc/apt"),
		lt.File("etc/apt/sources.list", "deb http://deb.debian.org/debian bookworm main\n"),
		lt.Symlink("etc/hostname", "/proc/sys/kernel/hostname"),
		lt.File("etc/shadow", "root:*:19000:0:99999:7:::\n", lt.Mode(0o640), lt.Owner(0, 42)),
		lt.Dir("run"),
		lt.Fifo("run/initctl", lt.Mode(0o600)),
		lt.Dir("usr"),
		lt.Dir("usr/local", lt.Mode(0o2775), lt.Owner(0, 50)),
		lt.Dir("usr/local/bin"),
		lt.File("usr/local/bin/suid", "#!/bin/sh\n", lt.Mode(0o4755), lt.Owner(1000, 1000)),
		lt.File("usr/local/bin/ping", "\x7fELF", lt.Mode(0o755),
			lt.Xattr("security.capability", capNetRaw())),
		lt.Dir("usr/share"),
		lt.Whiteout("usr/share", "doc"),
		lt.Dir("var"),
		lt.File("var/mail", "no longer a directory\n"),
		lt.Dir("var/log", lt.Mode(0o700), lt.Owner(0, 4)),
	}
}

// TestDebianMatchesWalkingDiffer applies the Debian bookworm minbase rootfs
// as one layer, and an update on top of it, with both appliers and compares
// the trees, for each compression of the base layer.
func TestDebianMatchesWalkingDiffer(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("applies a 200 MB layer eight times; skipped with -short")
	}
	for _, c := range []lt.Compression{"", "gzip", "zstd"} {
		name := string(c)
		if name == "" {
			name = "tar"
		}
		t.Run(name, func(t *testing.T) {
			path, err := fixture.DebianLayer(string(c))
			if err != nil {
				t.Fatal(err)
			}
			store := lt.NewStore(t)
			base := lt.WriteFile(t, store, lt.MediaType(c), path)
			update := lt.Layer(t, store, c, debianUpdate()...)
			compareWithWalking(t, store, targetKinds, base, update)
		})
	}
}
