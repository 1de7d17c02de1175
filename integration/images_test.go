package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chroot-applier/containerd-chroot-applier/integration/harness"
	"github.com/chroot-applier/containerd-chroot-applier/internal/fixture"
)

// entryTime is the modification time of every entry the tests build, well
// before any test runs, so that it never compares as a pull-time time.
var entryTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// entry is one tar entry: a header and, for regular files, the content.
type entry struct {
	hdr  tar.Header
	body string
}

func dir(name string, mode int64, uid int) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid}}
}

func file(name, body string, mode int64, uid int) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: uid, Gid: uid},
		body: body}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name,
		Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

func whiteout(name string) entry { return file(name, "", 0o644, 0) }

// buildTar writes entries as a tar stream. Entries keep their own format
// where they set one, so that a device number beyond the octal fields can
// be written in GNU base-256.
func buildTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for _, e := range entries {
		hdr := e.hdr
		hdr.ModTime = entryTime
		hdr.Size = int64(len(e.body))
		if hdr.Format == tar.FormatUnknown {
			hdr.Format = tar.FormatPAX
		}
		if err := w.WriteHeader(&hdr); err != nil {
			t.Fatalf("failed to write tar header %s: %v", hdr.Name, err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pushed is an image in the loopback registry.
type pushed struct {
	// name is the image's short name, usable in a namespace name.
	name   string
	ref    string
	layers []v1.Layer
}

// digests returns the compressed digest of every layer, lowest first.
func (p pushed) digests(t *testing.T) []string {
	t.Helper()
	var ds []string
	for _, l := range p.layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d.String())
	}
	return ds
}

func (e *env) push(t *testing.T, name, repoTag string, layers ...v1.Layer) pushed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	ref, err := harness.PushImage(ctx, e.registry, repoTag, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return pushed{name: name, ref: ref, layers: layers}
}

var (
	imagesOnce sync.Once
	images     map[string]pushed
)

// goodImages pushes, once, the images every pull path is checked with: the
// Debian rootfs as gzip and as zstd, and a layered image with whiteouts, an
// opaque directory, hardlinks across layers and ownership changes.
func (e *env) goodImages(t *testing.T) map[string]pushed {
	t.Helper()
	imagesOnce.Do(func() {
		images = map[string]pushed{}
		for _, comp := range []string{"gzip", "zstd"} {
			path, err := fixture.DebianLayer(comp)
			if err != nil {
				t.Fatalf("failed to build the Debian layer: %v", err)
			}
			layer, err := harness.FileLayer(path, comp)
			if err != nil {
				t.Fatal(err)
			}
			images["debian-"+comp] = e.push(t, "debian-"+comp, "debian:"+comp, layer)
		}
		images["layered"] = e.push(t, "layered", "layered:1", layeredLayers(t)...)
	})
	if len(images) != 3 {
		t.Fatal("pushing the test images failed in an earlier test")
	}
	return images
}

// layeredLayers returns three layers whose combination exercises whiteouts,
// an opaque directory, hardlinks that span layers and changed ownership.
func layeredLayers(t *testing.T) []v1.Layer {
	xattr := file("etc/labelled", "xattr\n", 0o644, 0)
	xattr.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.comment": "from the layer"}
	fifo := entry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o600}}
	device := entry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666,
		Devmajor: 1, Devminor: 3}}

	base := buildTar(t,
		dir("etc/", 0o755, 0),
		file("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644, 0),
		xattr,
		dir("usr/", 0o755, 0),
		dir("usr/bin/", 0o755, 0),
		file("usr/bin/tool", "tool v1\n", 0o755, 0),
		hardlink("usr/bin/tool-alias", "usr/bin/tool"),
		file("usr/bin/su", "setuid\n", 0o4755, 0),
		symlink("bin", "usr/bin"),
		dir("opt/", 0o755, 0),
		dir("opt/data/", 0o750, 0),
		file("opt/data/a", "a\n", 0o644, 0),
		file("opt/data/b", "b\n", 0o644, 0),
		dir("var/", 0o755, 0),
		dir("var/log/", 0o755, 0),
		file("var/log/old.log", "old\n", 0o640, 0),
		dir("home/", 0o755, 0),
		dir("home/user/", 0o700, 1000),
		file("home/user/.profile", "PS1='$ '\n", 0o644, 1000),
		dir("run/", 0o755, 0),
		fifo,
		dir("dev/", 0o755, 0),
		device,
		dir("tmp/", 0o1777, 0),
	)

	changes := buildTar(t,
		// A hardlink set rewritten in an upper layer: both names carry the
		// new content, as a diff of a changed hardlinked file would.
		file("usr/bin/tool", "tool v2\n", 0o755, 0),
		hardlink("usr/bin/tool-alias", "usr/bin/tool"),
		hardlink("usr/bin/tool-new", "usr/bin/tool"),
		whiteout("var/log/.wh.old.log"),
		dir("opt/data/", 0o755, 0),
		whiteout("opt/data/.wh..wh..opq"),
		file("opt/data/c", "c\n", 0o644, 0),
		dir("home/user/", 0o750, 2000),
		file("home/user/.profile", "PS1='# '\n", 0o600, 2000),
		file("etc/passwd", "root:x:0:0::/root:/bin/sh\nuser:x:2000:2000::/home/user:/bin/sh\n",
			0o644, 0),
	)

	// Entries without their parent directories: the implied parents come
	// from the lower layers or are created.
	implied := buildTar(t,
		whiteout("usr/bin/.wh.su"),
		file("etc/app/app.conf", "key = value\n", 0o644, 0),
		file("srv/www/index.html", "<p>hi</p>\n", 0o644, 33),
		whiteout(".wh.run"),
	)
	var layers []v1.Layer
	for _, l := range []struct {
		tar  []byte
		comp string
	}{{base, "gzip"}, {changes, "zstd"}, {implied, "gzip"}} {
		layers = append(layers, tarLayer(t, l.tar, l.comp))
	}
	return layers
}

func tarLayer(t *testing.T, b []byte, comp string) v1.Layer {
	t.Helper()
	l, err := harness.TarLayer(b, comp)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// layerIDs returns the compressed digest and the diffID of l.
func layerIDs(t *testing.T, l v1.Layer) (digest, diffID string) {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	id, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), id.String()
}
