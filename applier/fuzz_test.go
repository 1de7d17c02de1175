package applier_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
)

// fuzzApplyTimeout bounds one apply of a fuzzed layer. The layers are a few
// KiB, so an apply that takes this long hangs.
const fuzzApplyTimeout = 10 * time.Second

// fuzzMaxEntries and fuzzMaxBytes keep fuzzed layers small.
const (
	fuzzMaxEntries = 8
	fuzzMaxBytes   = 255
)

// fuzzTypes are the entry types a fuzzed entry can have, indexed by the
// entry's first byte.
var fuzzTypes = []byte{
	tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
	tar.TypeChar, tar.TypeBlock, tar.TypeFifo,
}

// fuzzDevices are the only device numbers a fuzzed layer may create, so
// that a fault in extraction cannot reach a real device of the host: the
// overlay whiteout 0:0, /dev/null and /dev/zero.
var fuzzDevices = [][2]int64{{0, 0}, {1, 3}, {1, 5}}

// fuzzXattrs are the extended attributes a fuzzed entry can carry, indexed
// by one byte. Index 0 means no attribute.
var fuzzXattrs = []string{
	"", "user.fuzz", "trusted.overlay.opaque", "trusted.overlay.redirect",
	"security.capability",
}

// fuzzEntry is one entry of a fuzzed layer.
type fuzzEntry struct {
	typeflag byte
	name     string
	linkname string
	mode     int64
	uid      int
	device   int
	xattr    int
	data     string
}

// fuzzEncode is the inverse of fuzzDecode, so that seeds read as entry
// lists. overlay selects an overlay upperdir over the sentinel as the
// target instead of a bind mount.
func fuzzEncode(overlay bool, entries ...fuzzEntry) []byte {
	var b []byte
	if overlay {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	for _, e := range entries {
		b = append(b, byte(slices.Index(fuzzTypes, e.typeflag)),
			byte(e.mode), byte(e.mode>>8), byte(e.uid), byte(e.device), byte(e.xattr))
		for _, s := range []string{e.name, e.linkname, e.data} {
			b = append(b, byte(len(s)))
			b = append(b, s...)
		}
	}
	return b
}

// fuzzDecode turns fuzz bytes into a target choice and at most
// fuzzMaxEntries entries. Every byte string decodes to something; a
// truncated entry is dropped.
func fuzzDecode(b []byte) (overlay bool, entries []fuzzEntry) {
	if len(b) == 0 {
		return false, nil
	}
	overlay, b = b[0]&1 == 1, b[1:]
	next := func() (string, bool) {
		if len(b) == 0 {
			return "", false
		}
		n := int(b[0])
		if len(b) < 1+n {
			return "", false
		}
		s := string(b[1 : 1+n])
		b = b[1+n:]
		return s, true
	}
	for len(b) >= 6 && len(entries) < fuzzMaxEntries {
		e := fuzzEntry{
			typeflag: fuzzTypes[int(b[0])%len(fuzzTypes)],
			mode:     int64(b[1]) | int64(b[2]&0o17)<<8,
			uid:      int(b[3]),
			device:   int(b[4]) % len(fuzzDevices),
			xattr:    int(b[5]) % len(fuzzXattrs),
		}
		b = b[6:]
		var ok1, ok2, ok3 bool
		e.name, ok1 = next()
		e.linkname, ok2 = next()
		e.data, ok3 = next()
		if !ok1 || !ok2 || !ok3 {
			break
		}
		entries = append(entries, e)
	}
	return overlay, entries
}

// fuzzTar writes entries as a tar stream. It fails for entries that
// archive/tar itself cannot write, such as names with a NUL byte.
func fuzzTar(entries []fuzzEntry) func(tw *tar.Writer) error {
	return func(tw *tar.Writer) error {
		for _, e := range entries {
			hdr := &tar.Header{
				Typeflag: e.typeflag, Name: e.name, Linkname: e.linkname,
				Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: time.Unix(1700000000, 0),
				Format: tar.FormatPAX,
			}
			if e.typeflag == tar.TypeReg {
				hdr.Size = int64(len(e.data))
			}
			if dev := fuzzDevices[e.device]; e.typeflag == tar.TypeChar {
				hdr.Devmajor, hdr.Devminor = dev[0], dev[1]
			}
			if name := fuzzXattrs[e.xattr]; name != "" {
				hdr.PAXRecords = map[string]string{"SCHILY.xattr." + name: "y"}
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if hdr.Size > 0 {
				if _, err := tw.Write([]byte(e.data)); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// fuzzSeeds are the hostile shapes every run of the test applies.
var fuzzSeeds = []struct {
	overlay bool
	entries []fuzzEntry
}{
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: "../escape", data: "x"}}},
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: "/escape", data: "x"}}},
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: "a/../../escape", data: "x"}}},
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: "../sentinel/file", data: "pwned"}}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeSymlink, name: "l", linkname: "../sentinel"},
		{typeflag: tar.TypeReg, name: "l/file", data: "pwned"},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeSymlink, name: "l", linkname: "/"},
		{typeflag: tar.TypeDir, name: "l/escape", mode: 0o755},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeSymlink, name: "l", linkname: "../../.."},
		{typeflag: tar.TypeReg, name: "l/escape", data: "x"},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeSymlink, name: "l", linkname: "."},
		{typeflag: tar.TypeReg, name: "l/l/l/file", data: "x"},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeSymlink, name: "a", linkname: "b"},
		{typeflag: tar.TypeSymlink, name: "b", linkname: "a"},
		{typeflag: tar.TypeReg, name: "a/x", data: "x"},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeLink, name: "h", linkname: "../sentinel/file"},
		{typeflag: tar.TypeReg, name: "h", data: "pwned"},
	}},
	{entries: []fuzzEntry{{typeflag: tar.TypeLink, name: "h", linkname: "/etc/passwd"}}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeSymlink, name: "l", linkname: "../sentinel/file"},
		{typeflag: tar.TypeLink, name: "h", linkname: "l"},
		{typeflag: tar.TypeReg, name: "h", data: "pwned"},
	}},
	{overlay: true, entries: []fuzzEntry{
		{typeflag: tar.TypeLink, name: "h", linkname: "file"},
		{typeflag: tar.TypeReg, name: "h", data: "pwned"},
	}},
	{overlay: true, entries: []fuzzEntry{
		{typeflag: tar.TypeLink, name: "h", linkname: "sub/file", mode: 0o4777},
	}},
	{overlay: true, entries: []fuzzEntry{
		{typeflag: tar.TypeReg, name: ".wh.file"},
		{typeflag: tar.TypeReg, name: "sub/.wh..wh..opq"},
		{typeflag: tar.TypeReg, name: "link/.wh.file"},
	}},
	{overlay: true, entries: []fuzzEntry{{typeflag: tar.TypeReg, name: "../sentinel/.wh.file"}}},
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: "../sentinel/.wh.file"}}},
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: ".wh..wh..opq"}}},
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: ".wh.."}}},
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: ".wh..."}}},
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: ".wh."}}},
	{entries: []fuzzEntry{{typeflag: tar.TypeReg, name: "d/.wh.../x"}}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeFifo, name: "p", mode: 0o644},
		{typeflag: tar.TypeReg, name: "p", data: "x"},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeChar, name: "null", device: 1, mode: 0o666},
		{typeflag: tar.TypeReg, name: "null", data: "x"},
		{typeflag: tar.TypeBlock, name: "blk", mode: 0o600},
		{typeflag: tar.TypeLink, name: "blk2", linkname: "blk"},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeDir, name: "locked", mode: 0},
		{typeflag: tar.TypeReg, name: "locked/file", mode: 0o4755, uid: 1000, data: "x"},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeDir, name: "d", mode: 0o755, xattr: 2},
		{typeflag: tar.TypeReg, name: "d/cap", mode: 0o755, xattr: 4, data: "x"},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeDir, name: ".", mode: 0o700},
		{typeflag: tar.TypeDir, name: "./", mode: 0o777},
		{typeflag: tar.TypeReg, name: "", data: "x"},
	}},
	{entries: []fuzzEntry{
		{typeflag: tar.TypeReg, name: "f", data: "x"},
		{typeflag: tar.TypeReg, name: "f/g", data: "x"},
		{typeflag: tar.TypeDir, name: "f", mode: 0o755},
	}},
}

// FuzzApply applies fuzzed layers into a target beside a sentinel
// directory. Whatever the layer contains, the apply returns within
// fuzzApplyTimeout without a panic, the sentinel is unchanged, nothing
// appears beside the target, and no child process is left.
func FuzzApply(f *testing.F) {
	relRequireRoot(f)
	for _, seed := range fuzzSeeds {
		f.Add(fuzzEncode(seed.overlay, seed.entries...))
	}
	store := relNewStore(f)

	f.Fuzz(func(t *testing.T, input []byte) {
		overlay, entries := fuzzDecode(input)
		var layer strings.Builder
		if err := fuzzTar(entries)(tar.NewWriter(&layer)); err != nil {
			t.Skipf("archive/tar cannot write these entries: %v", err)
		}
		desc := relWriteLayer(t, store, ocispec.MediaTypeImageLayer, fuzzTar(entries))

		dir := t.TempDir()
		parent := filepath.Join(dir, "parent")
		target := filepath.Join(parent, "target")
		sentinel := filepath.Join(parent, "sentinel")
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		relMakeSentinel(t, sentinel)
		mounts := relBindMounts(target)
		if overlay {
			work := filepath.Join(dir, "work")
			if err := os.Mkdir(work, 0o755); err != nil {
				t.Fatal(err)
			}
			mounts = []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
				"lowerdir=" + sentinel, "upperdir=" + target, "workdir=" + work}}}
		}
		wantSentinel := relManifest(t, sentinel)
		wantDir := relDirNames(t, dir)

		ctx, cancel := context.WithTimeout(context.Background(), fuzzApplyTimeout)
		defer cancel()
		_, err := applier.New(store).ApplyLayer(ctx, desc, mounts)
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			t.Errorf("apply did not return within %v: %v", fuzzApplyTimeout, err)
		}
		if err != nil && strings.Contains(err.Error(), "panic") {
			t.Errorf("the child panicked: %v", err)
		}

		if got := relManifest(t, sentinel); got != wantSentinel {
			t.Errorf("sentinel changed:\nbefore:\n%s\nafter:\n%s", wantSentinel, got)
		}
		if got := relDirNames(t, parent); !slices.Equal(got, []string{"sentinel", "target"}) {
			t.Errorf("entries beside the target: %q", got)
		}
		if got := relDirNames(t, dir); !slices.Equal(got, wantDir) {
			t.Errorf("entries of %s: before %q, after %q", dir, wantDir, got)
		}
		if fi, err := os.Lstat(target); err != nil || !fi.IsDir() {
			t.Errorf("target is no longer a directory: %v, %v", fi, err)
		}
		if children := relChildren(t); len(children) > 0 {
			t.Errorf("child processes left behind: %v", children)
		}
	})
}
