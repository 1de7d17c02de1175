package integration

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chroot-applier/containerd-chroot-applier/integration/harness"
	"github.com/chroot-applier/containerd-chroot-applier/internal/manifest"
)

// hostileCase is a single-layer image built to escape or break the applier.
type hostileCase struct {
	name string
	// entries builds the layer; sentinel is a host directory outside every
	// containerd root.
	entries func(sentinel string) []entry
	// mustFail is set when the applier has to reject the layer; otherwise
	// the pull may fail or succeed, but the sentinel must be untouched.
	mustFail bool
	// entry is the tar entry a failed pull's output may name instead of the
	// layer digest.
	entry string
}

var hostileCases = []hostileCase{
	{
		name: "whiteout of the parent directory is rejected",
		entries: func(string) []entry {
			return []entry{dir("data/", 0o755, 0), file("data/keep", "keep\n", 0o644, 0),
				whiteout("data/.wh..")}
		},
		mustFail: true,
		entry:    "data/.wh..",
	},
	{
		name: "device major beyond 32 bits is rejected",
		entries: func(string) []entry {
			dev := entry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/huge", Mode: 0o600,
				Devmajor: 1 << 32, Devminor: 1, Format: tar.FormatGNU}}
			return []entry{dir("dev/", 0o755, 0), dev}
		},
		mustFail: true,
		entry:    "dev/huge",
	},
	{
		name: "absolute symlink to a host directory stays in the snapshot",
		entries: func(sentinel string) []entry {
			return []entry{symlink("etc", sentinel), file("etc/pwned", "pwned\n", 0o644, 0)}
		},
		entry: "etc/pwned",
	},
	{
		name: "relative symlink climbing out stays in the snapshot",
		entries: func(sentinel string) []entry {
			up := strings.Repeat("../", 16) + strings.TrimPrefix(sentinel, "/")
			return []entry{dir("a/", 0o755, 0), symlink("a/escape", up),
				file("a/escape/pwned", "pwned\n", 0o644, 0)}
		},
		entry: "a/escape/pwned",
	},
	{
		name: "hardlink to a host file stays in the snapshot",
		entries: func(sentinel string) []entry {
			up := strings.Repeat("../", 16) + strings.TrimPrefix(sentinel, "/") + "/secret"
			return []entry{hardlink("stolen", up)}
		},
		entry: "stolen",
	},
}

func TestHostileLayers(t *testing.T) {
	e := setup(t)
	containerds := []struct {
		name string
		c    *harness.Containerd
		// applied reads the applier's "layer applied" lines.
		applied func() ([]harness.AppliedLayer, error)
	}{
		{"proxy", e.proxy, e.daemon.AppliedLayers},
		{"compiled-in", e.compiled, func() ([]harness.AppliedLayer, error) {
			return harness.AppliedLayersIn(e.compiled.Log)
		}},
	}
	for _, target := range containerds {
		t.Run(target.name, func(t *testing.T) {
			for i, hc := range hostileCases {
				t.Run(hc.name, func(t *testing.T) {
					tag := fmt.Sprintf("%s-%d", target.name, i)
					testHostileLayer(t, e, target.c, target.applied, tag, hc)
				})
			}
		})
	}
}

// testHostileLayer pulls the image of hc into c and checks that the host is
// untouched, that a failure is readable and leaves no snapshot, and that a
// good pull still works afterwards.
func testHostileLayer(t *testing.T, e *env, c *harness.Containerd,
	applied func() ([]harness.AppliedLayer, error), tag string, hc hostileCase) {
	const ns = "hostile"
	sentinel := e.sentinelDir(t)
	before := buildManifest(t, sentinel)
	layer := tarLayer(t, buildTar(t, hc.entries(sentinel)...), "gzip")
	img := e.push(t, "hostile", "hostile:"+tag, layer)
	digest, diffID := layerIDs(t, layer)

	out, pullErr := c.Ctr(ctxTimeout(t), ns, "image", "pull", "--plain-http", img.ref)
	switch {
	case pullErr != nil:
		msg := ctrError(pullErr.Error())
		t.Logf("pull failed as a hostile layer may: %s", msg)
		if !strings.Contains(msg, digest) && !strings.Contains(msg, hc.entry) {
			t.Errorf("ctr's error names neither the layer %s nor the entry %q: %s",
				digest, hc.entry, pullErr)
		}
	case hc.mustFail:
		t.Errorf("pull of a layer the applier must reject succeeded:\n%s", out)
	default:
		t.Logf("pull succeeded; the layer's names resolved inside the snapshot")
	}

	for _, d := range manifest.Diff(buildManifest(t, sentinel), before) {
		t.Errorf("hostile layer changed the host directory %s: %s", sentinel, d)
	}
	if _, err := os.Lstat(filepath.Join(sentinel, "pwned")); err == nil {
		t.Errorf("hostile layer created %s/pwned", sentinel)
	}

	snapshots, err := c.Ctr(ctxTimeout(t), ns, "snapshots", "--snapshotter", "overlayfs", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if pullErr != nil && strings.Contains(snapshots, diffID) {
		t.Errorf("a snapshot of the failed layer %s (chain ID %s) is left:\n%s",
			digest, diffID, snapshots)
	}

	// A good image not pulled before, so that its layer is applied.
	goodTar := buildTar(t, file("case", hc.name+"\n", 0o644, 0))
	good := e.push(t, "good", "after-hostile:"+tag, tarLayer(t, goodTar, "gzip"))
	if _, err := c.Ctr(ctxTimeout(t), ns, "image", "pull", "--plain-http", good.ref); err != nil {
		t.Fatalf("a good pull after the hostile layer failed: %v", err)
	}
	lines, err := applied()
	if err != nil {
		t.Fatal(err)
	}
	checkApplied(t, lines, ns, good.digests(t))
}

func buildManifest(t *testing.T, dir string) manifest.Manifest {
	t.Helper()
	m, err := manifest.Build(dir)
	if err != nil {
		t.Fatalf("failed to build the manifest of %s: %v", dir, err)
	}
	return m
}

// ctrError returns the lines of a failed ctr run that start with "ctr:",
// the message a user reads, or all of text when there are none.
func ctrError(text string) string {
	var lines []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "ctr: ") {
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		return text
	}
	return strings.Join(lines, "\n")
}
