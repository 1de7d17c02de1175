package applier_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

// capNetRaw is a version 2 security.capability value granting CAP_NET_RAW
// as permitted and effective.
func capNetRaw() string {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<13)
	return string(b)
}

// TestMatchesWalkingDiffer applies generated layers with our applier and
// with containerd's walking differ, on bind and overlay snapshots, and
// compares the full trees.
func TestMatchesWalkingDiffer(t *testing.T) {
	requireRoot(t)
	old := time.Unix(1000000000, 123456789)
	chain := []lt.Entry{lt.Dir("real")}
	for i := 0; i < 50; i++ {
		target := fmt.Sprintf("l%d", i+1)
		if i == 49 {
			target = "real"
		}
		chain = append(chain, lt.Symlink(fmt.Sprintf("l%d", i), target))
	}
	chain = append(chain, lt.File("l0/f", "beyond the kernel's 40 links"))

	cases := []struct {
		name   string
		layers [][]lt.Entry
	}{
		{"symlink chain longer than the kernel follows", [][]lt.Entry{chain}},
		{"hardlink to a file of an earlier layer", [][]lt.Entry{
			{lt.File("a", "x", lt.Owner(1, 1))},
			{lt.Link("b", "a", lt.Owner(2, 2), lt.Mode(0o600))},
		}},
		{"modes and owners", [][]lt.Entry{{
			lt.Dir("bin", lt.Owner(0, 0)),
			lt.File("bin/suid", "x", lt.Mode(0o4755), lt.Owner(1000, 1000)),
			lt.File("bin/sgid", "x", lt.Mode(0o2755), lt.Owner(1000, 1000)),
			lt.Dir("tmp", lt.Mode(0o1777)),
			lt.Dir("private", lt.Mode(0o700), lt.Owner(5, 6)),
			lt.File("private/ro", "secret", lt.Mode(0o400), lt.Owner(7, 8)),
			lt.Symlink("owned-link", "bin/suid", lt.Owner(9, 10)),
		}}},
		{"xattrs", [][]lt.Entry{{
			lt.File("ping", "elf", lt.Mode(0o755), lt.Xattr("security.capability", capNetRaw())),
			lt.Dir("d", lt.Xattr("user.comment", "a dir")),
			lt.File("f", "x", lt.Xattr("user.a", "1"), lt.Xattr("user.b", "\x00\x01binary")),
			lt.Fifo("p", lt.Xattr("user.refused", "fifo")),
			lt.File("t", "x", lt.Xattr("trusted.overlay.opaque", "y"), lt.Xattr("trusted.x", "y")),
		}}},
		{"devices and fifos", [][]lt.Entry{{
			lt.Dir("dev"),
			lt.Char("dev/null", 1, 3, lt.Mode(0o666)),
			lt.Block("dev/loop0", 7, 0),
			lt.Fifo("dev/fifo", lt.Mode(0o600), lt.Owner(3, 4)),
		}}},
		{"hardlinks", [][]lt.Entry{{
			lt.File("a", "shared", lt.Mode(0o640), lt.Owner(2, 2)),
			lt.Link("b", "a", lt.Mode(0o640), lt.Owner(2, 2)),
			lt.Dir("d"),
			lt.Link("d/c", "/a", lt.Mode(0o600), lt.Owner(3, 3)),
			lt.Symlink("s", "a"),
			lt.Link("s2", "s", lt.Mode(0o4777)),
		}}},
		{"times", [][]lt.Entry{{
			lt.Dir("d", lt.Mtime(old)),
			lt.File("d/f", "x", lt.Mtime(old)),
			lt.File("before-epoch", "x", lt.Mtime(time.Unix(-100, 0))),
			lt.Symlink("d/l", "f", lt.Mtime(old)),
			lt.File("atime", "x", lt.Mtime(old), lt.Atime(old.Add(time.Hour))),
			lt.File("atime-older", "x", lt.Mtime(old.Add(time.Hour)), lt.Atime(old)),
		}}},
		{"names", [][]lt.Entry{{
			lt.File("../up", "x"),
			lt.File("/abs", "x"),
			lt.File("./dot", "x"),
			lt.Dir("./"),
			lt.Dir("d/"),
			lt.File("d/../e", "x"),
		}}},
		{"implied parents", [][]lt.Entry{
			{
				lt.Dir("a", lt.Mode(0o710), lt.Owner(5, 5), lt.Xattr("user.x", "1"), lt.Mtime(old)),
				lt.Dir("a/b", lt.Mode(0o2750), lt.Owner(6, 6), lt.Mtime(old)),
				lt.File("notdir", "x"),
			},
			{
				lt.File("a/b/c/f", "new"),
				lt.File("n/m/f", "new"),
				lt.Whiteout("w/v", "gone"),
			},
		}},
		{"symlinked parents", [][]lt.Entry{{
			lt.Dir("real"),
			lt.Symlink("rel", "real"),
			lt.Symlink("abs", "/real"),
			lt.Symlink("up", "../../real"),
			lt.File("rel/f1", "1"),
			lt.File("abs/f2", "2"),
			lt.File("up/f3", "3"),
			lt.File("dangling/f4", "4"),
			lt.Symlink("dangling", "/made/here"),
			lt.File("dangling/f5", "5"),
		}}},
		{"replacements", [][]lt.Entry{
			{
				lt.File("file-to-dir", "x"),
				lt.Dir("dir-to-file"),
				lt.File("dir-to-file/child", "x"),
				lt.File("file-to-link", "x"),
				lt.Dir("dir-to-link"),
				lt.File("dir-to-link/child", "x"),
				lt.Dir("merged", lt.Mode(0o700), lt.Owner(1, 1)),
				lt.File("merged/kept", "x"),
				lt.Symlink("link-to-dir", "merged"),
			},
			{
				lt.Dir("file-to-dir"),
				lt.File("dir-to-file", "now a file"),
				lt.Symlink("file-to-link", "merged"),
				lt.Symlink("dir-to-link", "/merged"),
				lt.Dir("merged", lt.Mode(0o755), lt.Owner(2, 2)),
				lt.File("merged/new", "y"),
				lt.Dir("link-to-dir"),
			},
		}},
		{"whiteouts", [][]lt.Entry{
			{
				lt.Dir("tree"),
				lt.Dir("tree/sub"),
				lt.File("tree/sub/f", "x"),
				lt.File("file", "x"),
				lt.Dir("opq"),
				lt.File("opq/lower1", "x"),
				lt.Dir("opq/lowerdir"),
				lt.File("opq/lowerdir/f", "x"),
				lt.Dir("opq2"),
				lt.File("opq2/lower", "x"),
				lt.Dir("target"),
				lt.File("target/f", "x"),
				lt.Symlink("link", "target"),
			},
			{
				lt.Whiteout("", "tree"),
				lt.Whiteout("", "file"),
				lt.Whiteout("", "missing"),
				lt.Dir("opq"),
				lt.File("opq/before", "new"),
				lt.Opaque("opq"),
				lt.File("opq/after", "new"),
				lt.Opaque("opq2"),
				lt.Dir("opq2"),
				lt.Whiteout("", "link"),
			},
		}},
		{"directory after its children", [][]lt.Entry{{
			lt.File("d/e/f", "x"),
			lt.Dir("d/e", lt.Mode(0o700), lt.Owner(5, 5), lt.Mtime(old)),
			lt.Dir("d", lt.Mode(0o750), lt.Owner(6, 6), lt.Xattr("user.late", "1")),
		}}},
		{"duplicate entries", [][]lt.Entry{{
			lt.File("f", "first", lt.Mode(0o600)),
			lt.Link("g", "f"),
			lt.File("f", "second", lt.Mode(0o644), lt.Owner(1, 1)),
			lt.Dir("d", lt.Mode(0o700)),
			lt.Dir("d", lt.Mode(0o755), lt.Owner(2, 2)),
			lt.Symlink("s", "a"),
			lt.Symlink("s", "b"),
		}}},
		{"metadata prefixes", [][]lt.Entry{{
			lt.Whiteout("", ".wh.plnk"),
			lt.File("x", "x"),
		}}},
		{"pax global header", [][]lt.Entry{{
			lt.Global("pax_global_header"),
			lt.File("f", "x"),
		}}},
	}
	// The walking differ cannot link to a file of a lower layer on an
	// overlay target; TestDiffersFromWalking pins what we do there.
	bindOnly := map[string]bool{"hardlink to a file of an earlier layer": true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := lt.NewStore(t)
			var layers []ocispec.Descriptor
			for _, entries := range tc.layers {
				layers = append(layers, lt.Layer(t, store, "", entries...))
			}
			kinds := targetKinds
			if bindOnly[tc.name] {
				kinds = []targetKind{bindTarget}
			}
			compareWithWalking(t, store, kinds, layers...)
		})
	}
}
