// Command demo shows the chroot applier at work end to end. It builds the
// daemon, starts a throwaway containerd with the daemon as its proxy diff
// plugin and a loopback registry, and pushes a Debian bookworm image. Then
// it pulls the image with ctr and prints each layer the applier applied and
// how long the pull took.
//
// Everything it starts lives in temporary directories and on 127.0.0.1, and
// is stopped and removed when the demo ends, also on Ctrl-C. It needs root.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/chroot-applier/containerd-chroot-applier/integration/harness"
	"github.com/chroot-applier/containerd-chroot-applier/internal/fixture"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cleanups := &harness.Cleanups{}
	err := run(ctx, cleanups)
	// stop cancels ctx too, so whether a signal arrived is read first.
	interrupted := ctx.Err() != nil
	stop()
	cleanups.Run()
	if interrupted {
		fmt.Fprintln(os.Stderr, "demo: interrupted; everything it started is stopped and removed")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cleanups *harness.Cleanups) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo needs root to run containerd and mount overlayfs")
	}
	step := func(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

	step("building containerd %s, ctr and crictl %s (cached in %s)",
		harness.ContainerdVersion, harness.CrictlVersion, harness.CacheDir())
	tools, err := harness.EnsureTools(ctx)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "cca-demo-")
	if err != nil {
		return err
	}
	cleanups.Cleanup(func() { os.RemoveAll(work) })
	step("building containerd-chroot-applier")
	daemonBinary, err := harness.BuildDaemon(ctx, filepath.Join(work, "bin"))
	if err != nil {
		return err
	}

	step("preparing the Debian bookworm layer (debootstrap on first use)")
	layerPath, err := fixture.DebianLayer("gzip")
	if err != nil {
		return err
	}
	registry, err := harness.StartRegistry(cleanups)
	if err != nil {
		return err
	}
	layer, err := harness.FileLayer(layerPath, "gzip")
	if err != nil {
		return err
	}
	ref, err := harness.PushImage(ctx, registry, "debian:bookworm", layer)
	if err != nil {
		return err
	}
	step("pushed %s", ref)

	c, err := harness.StartContainerd(ctx, cleanups, harness.Config{
		Mode: harness.Proxy, Binary: tools.Containerd, Tools: tools, RegistryHost: registry,
	})
	if err != nil {
		return err
	}
	daemon, err := harness.StartDaemon(ctx, cleanups, daemonBinary, c)
	if err != nil {
		return err
	}

	step("ctr image pull --plain-http %s", ref)
	start := time.Now()
	if _, err := c.Ctr(ctx, "demo", "image", "pull", "--plain-http", ref); err != nil {
		return err
	}
	elapsed := time.Since(start)

	layers, err := daemon.AppliedLayers()
	if err != nil {
		return err
	}
	if len(layers) == 0 {
		return fmt.Errorf("the pull succeeded but the applier logged no layer; see %s", daemon.Log)
	}
	step("applied by containerd-chroot-applier:")
	for _, l := range layers {
		fmt.Printf("    layer %s\n", l.Digest)
		fmt.Printf("      media type    %s\n", l.Media)
		fmt.Printf("      compressed    %s\n", byteSize(l.Size))
		fmt.Printf("      uncompressed  %s\n", byteSize(l.Uncompressed))
		fmt.Printf("      entries       %d\n", l.Entries)
		fmt.Printf("      target        %s\n", l.Target)
		fmt.Printf("      apply time    %s\n", duration(l.Duration))
	}
	step("pull and unpack took %s", elapsed.Round(time.Millisecond))
	return nil
}

// duration renders a logged "d" field, which is a number of nanoseconds or a
// string such as "1.5s".
func duration(raw json.RawMessage) string {
	var ns float64
	if json.Unmarshal(raw, &ns) == nil {
		return time.Duration(ns).Round(time.Millisecond).String()
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func byteSize(n int64) string {
	return fmt.Sprintf("%d bytes (%.1f MiB)", n, float64(n)/(1<<20))
}
