package integration

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/chroot-applier/containerd-chroot-applier/integration/harness"
)

// pullPath is one way containerd can be made to unpack an image.
type pullPath struct {
	name string
	// containerd returns the daemon the path pulls into.
	containerd func(e *env) *harness.Containerd
	// ns is the namespace prefix; each image is pulled in ns-NAME, except
	// that CRI always pulls in k8s.io, which is emptied before each pull.
	ns   string
	pull func(t *testing.T, e *env, c *harness.Containerd, ns string, img pushed) (string, error)
	// applied returns the "layer applied" lines that prove the chroot
	// applier handled the layers.
	applied func(e *env, c *harness.Containerd) ([]harness.AppliedLayer, error)
}

func proxyContainerd(e *env) *harness.Containerd    { return e.proxy }
func compiledContainerd(e *env) *harness.Containerd { return e.compiled }

func daemonLines(e *env, _ *harness.Containerd) ([]harness.AppliedLayer, error) {
	return e.daemon.AppliedLayers()
}

// containerdLines reads the lines the compiled-in applier logs through
// containerd's own logger.
func containerdLines(_ *env, c *harness.Containerd) ([]harness.AppliedLayer, error) {
	return harness.AppliedLayersIn(c.Log)
}

type pullFunc = func(*testing.T, *env, *harness.Containerd, string, pushed) (string, error)

func ctrPull(extra ...string) pullFunc {
	return func(t *testing.T, _ *env, c *harness.Containerd, ns string,
		img pushed) (string, error) {
		args := append([]string{"image", "pull", "--plain-http"}, extra...)
		return c.Ctr(ctxTimeout(t), ns, append(args, img.ref)...)
	}
}

// ctrImport exports ref from the reference containerd as an OCI archive and
// imports it into c.
func ctrImport(t *testing.T, e *env, c *harness.Containerd, ns string, img pushed) (string, error) {
	e.pullReference(t, img)
	archive := filepath.Join(t.TempDir(), "image.tar")
	if _, err := e.reference.Ctr(ctxTimeout(t), referenceNS(img.name),
		"image", "export", "--platform", "linux/amd64", archive, img.ref); err != nil {
		t.Fatalf("failed to export %s from the reference containerd: %v", img.ref, err)
	}
	return c.Ctr(ctxTimeout(t), ns, "image", "import", archive)
}

// crictlPull empties CRI's namespace, so that an image sharing a diffID with
// an earlier one is unpacked again, and pulls img with crictl.
func crictlPull(t *testing.T, _ *env, c *harness.Containerd, ns string,
	img pushed) (string, error) {
	clearNamespace(t, c, ns)
	return c.Crictl(ctxTimeout(t), "pull", img.ref)
}

// clearNamespace removes every image of namespace ns with a synchronous
// garbage collection, and fails t if snapshots are left.
func clearNamespace(t *testing.T, c *harness.Containerd, ns string) {
	t.Helper()
	out, err := c.Ctr(ctxTimeout(t), ns, "image", "ls", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if names := strings.Fields(out); len(names) > 0 {
		args := append([]string{"image", "rm", "--sync"}, names...)
		if _, err := c.Ctr(ctxTimeout(t), ns, args...); err != nil {
			t.Fatal(err)
		}
	}
	snapshots, err := c.Ctr(ctxTimeout(t), ns, "snapshots", "--snapshotter", "overlayfs", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(snapshots), "\n"); len(lines) > 1 {
		t.Fatalf("snapshots left in namespace %s after removing its images:\n%s", ns, snapshots)
	}
}

var pullPaths = []pullPath{
	{"ctr pull through the transfer service", proxyContainerd, "transfer", ctrPull(), daemonLines},
	{"ctr pull --local through the diff service", proxyContainerd, "local", ctrPull("--local"),
		daemonLines},
	{"ctr import of an OCI archive", proxyContainerd, "import", ctrImport, daemonLines},
	{"crictl pull through CRI", proxyContainerd, "k8s.io", crictlPull, daemonLines},
	{"compiled-in containerd ctr pull", compiledContainerd, "compiled", ctrPull(), containerdLines},
}

func TestPullPaths(t *testing.T) {
	e := setup(t)
	imgs := e.goodImages(t)
	names := make([]string, 0, len(imgs))
	for name := range imgs {
		names = append(names, name)
	}
	sort.Strings(names)

	for _, p := range pullPaths {
		t.Run(p.name, func(t *testing.T) {
			c := p.containerd(e)
			for _, name := range names {
				img := imgs[name]
				t.Run(name, func(t *testing.T) {
					ns := p.ns + "-" + name
					if p.ns == "k8s.io" {
						ns = p.ns
					}
					out, err := p.pull(t, e, c, ns, img)
					if err != nil {
						t.Fatalf("pull failed: %v", err)
					}
					t.Logf("pull output:\n%s", lastLines(out, 5))
					lines, err := p.applied(e, c)
					if err != nil {
						t.Fatalf("failed to read the applier's log: %v", err)
					}
					checkApplied(t, lines, ns, img.digests(t))
					e.compareWithReference(t, c, ns, img)
					checkNotWalked(t, e, c, img.digests(t))
				})
			}
		})
	}
}

// checkApplied fails t unless every digest has a "layer applied" line. Lines
// that carry a namespace must carry ns.
func checkApplied(t *testing.T, lines []harness.AppliedLayer, ns string, digests []string) {
	t.Helper()
	for _, d := range digests {
		var found []harness.AppliedLayer
		for _, l := range lines {
			if l.Digest == d && (l.Namespace == "" || l.Namespace == ns) {
				found = append(found, l)
			}
		}
		if len(found) == 0 {
			t.Errorf("layer %s was not applied by the chroot applier in namespace %s", d, ns)
			continue
		}
		t.Logf("applied %s", describeApplied(found[len(found)-1]))
	}
}

// walkedDigests returns the layers c's log shows the walking differ
// applying: its one debug line per layer is "diff applied".
func walkedDigests(t *testing.T, c *harness.Containerd) map[string]bool {
	t.Helper()
	lines, err := harness.LogLines(c.Log)
	if err != nil {
		t.Fatalf("failed to read containerd's log: %v", err)
	}
	walked := map[string]bool{}
	for _, line := range lines {
		if d, ok := line["digest"].(string); ok && line["msg"] == "diff applied" {
			walked[d] = true
		}
	}
	return walked
}

// checkNotWalked fails t if c's log shows the walking differ applying any
// of digests. The reference containerd's log, which must show every layer,
// checks that the log line is still the one searched for.
func checkNotWalked(t *testing.T, e *env, c *harness.Containerd, digests []string) {
	t.Helper()
	walked := walkedDigests(t, c)
	reference := walkedDigests(t, e.reference)
	for _, d := range digests {
		if walked[d] {
			t.Errorf("the walking differ applied layer %s", d)
		}
		if !reference[d] {
			t.Errorf("the reference containerd's log has no walking differ line for layer %s", d)
		}
	}
}

// describeApplied renders every field of a "layer applied" line except the
// timestamp, for the test log.
func describeApplied(l harness.AppliedLayer) string {
	keys := make([]string, 0, len(l.Fields))
	for k := range l.Fields {
		if k != "time" && k != "msg" && k != "level" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, l.Fields[k])
	}
	return strings.Join(parts, " ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
