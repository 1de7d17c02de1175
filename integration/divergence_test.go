package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHardlinkToLowerLayer pins a case where the applier and the walking
// differ part ways: a layer that hardlinks to a file only a lower layer has.
// The walking differ links inside the upperdir alone, where the target does
// not exist, so the pull fails. The applier copies the target up and links
// to the copy, as extraction onto the merged overlay mount would.
func TestHardlinkToLowerLayer(t *testing.T) {
	e := setup(t)
	lower := buildTar(t, dir("etc/", 0o755, 0), file("etc/motd", "welcome\n", 0o644, 0))
	upper := buildTar(t, hardlink("etc/motd.link", "etc/motd"))
	img := e.push(t, "hardlink-lower", "hardlink-lower:1",
		tarLayer(t, lower, "gzip"), tarLayer(t, upper, "gzip"))

	_, err := e.reference.Ctr(ctxTimeout(t), referenceNS(img.name),
		"image", "pull", "--plain-http", img.ref)
	if err == nil {
		t.Log("the walking differ now applies a hardlink to a lower-layer file")
	} else {
		t.Logf("walking differ: %s", ctrError(err.Error()))
	}

	const ns = "hardlink-lower"
	_, err = e.proxy.Ctr(ctxTimeout(t), ns, "image", "pull", "--plain-http", img.ref)
	if err != nil {
		t.Fatalf("pull through the applier failed: %v", err)
	}
	snapshots, err := e.proxy.LayerSnapshots(ctxTimeout(t), ns, img.ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(snapshots) != 2 {
		t.Fatalf("got %d layer snapshots, want 2", len(snapshots))
	}
	upperDir := snapshots[1].Dir
	link := filepath.Join(upperDir, "etc/motd.link")
	target := filepath.Join(upperDir, "etc/motd")
	content, err := os.ReadFile(link)
	if err != nil {
		t.Fatalf("the upper layer's snapshot has no hardlink: %v", err)
	}
	if got := string(content); got != "welcome\n" {
		t.Errorf("hardlink content is %q, want the lower file's %q", got, "welcome\n")
	}
	linkInfo, err := os.Stat(link)
	if err != nil {
		t.Fatal(err)
	}
	targetInfo, err := os.Stat(target)
	if err != nil {
		t.Fatalf("the target was not copied up into the upper layer: %v", err)
	}
	if !os.SameFile(linkInfo, targetInfo) {
		t.Errorf("%s and its copied-up target are not the same inode",
			strings.TrimPrefix(link, upperDir))
	}
}
