package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/chroot-applier/containerd-chroot-applier/integration/harness"
)

const (
	// benchNamespace is the containerd namespace of the daemon benchmark.
	benchNamespace = "bench"
	// snapshotter prepares the targets of the daemon benchmark.
	snapshotter = "overlayfs"
)

// daemonSide is one applier reached over a socket: the walking differ
// through a containerd's diff service, or our daemon's Diff API.
type daemonSide struct {
	// ctx carries the namespace and a lease of the side's containerd.
	ctx     context.Context
	client  *containerd.Client
	applier diff.Applier
	// pid is the process whose VmHWM is the side's peak RSS.
	pid int
	// content is the root of the content store of the side's containerd.
	content string
	// snapshots is the directory of the overlayfs snapshots of the side's
	// containerd, lowerSnapshots the number of its entries that are lower
	// snapshots, and active the number of run snapshots not yet removed.
	snapshots      string
	lowerSnapshots int
	active         int
	// lower is the committed snapshot that overlay targets have as parent.
	lower string
}

// snapshotsDir is the directory of the overlayfs snapshots under
// containerd's root directory.
const snapshotsDir = "io.containerd.snapshotter.v1.overlayfs/snapshots"

// removalTimeout bounds the wait for containerd to delete removed snapshots.
const removalTimeout = 10 * time.Minute

// waitRemovals waits until both containerds have deleted the directories of
// the removed snapshots, so that only the lower snapshots and the active
// ones are left. containerd deletes them when its garbage collector next
// runs, after Remove returns. Deleting the 600,000 files of one small-files
// case then overlapped the next case: the first runs of both sides took six
// to eight times as long as the later ones. It stops early when ctx is done.
func (b *daemonBench) waitRemovals(ctx context.Context) error {
	deadline := time.Now().Add(removalTimeout)
	for _, side := range b.sides {
		for {
			entries, err := os.ReadDir(side.snapshots)
			if err != nil {
				return err
			}
			if len(entries) <= side.lowerSnapshots+side.active {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d removed snapshots still in %s after %s",
					len(entries)-side.lowerSnapshots-side.active, side.snapshots,
					removalTimeout)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("stopped waiting for removed snapshots in %s: %w",
					side.snapshots, ctx.Err())
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// contentPlugin is the directory of containerd's content store under its
// root directory.
const contentPlugin = "io.containerd.content.v1.content"

// daemonBench applies layers through a stock containerd with the walking
// differ only and through our daemon, which reads its blobs from a second
// containerd in proxy mode. Each run gets a snapshot prepared by the
// containerd of its side.
type daemonBench struct {
	sides map[string]*daemonSide
	runs  int
}

func (b *daemonBench) via() string { return viaDaemon }

// startDaemonBench starts both containerds and our daemon, ingests inputs
// into both content stores and commits the lower snapshots. Everything is
// stopped and removed when cleanups run.
func startDaemonBench(ctx context.Context, cleanups *harness.Cleanups,
	inputs []input) (*daemonBench, error) {
	tools, err := harness.EnsureTools(ctx)
	if err != nil {
		return nil, err
	}
	reference, err := harness.StartContainerd(ctx, cleanups,
		harness.Config{Mode: harness.Reference, Binary: tools.Containerd, Tools: tools})
	if err != nil {
		return nil, err
	}
	proxy, err := harness.StartContainerd(ctx, cleanups,
		harness.Config{Mode: harness.Proxy, Binary: tools.Containerd, Tools: tools})
	if err != nil {
		return nil, err
	}
	binDir := filepath.Join(proxy.Dir, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		return nil, err
	}
	daemonBinary, err := harness.BuildDaemon(ctx, binDir)
	if err != nil {
		return nil, err
	}
	daemon, err := harness.StartDaemon(ctx, cleanups, daemonBinary, proxy)
	if err != nil {
		return nil, err
	}

	walking, err := newDaemonSide(ctx, cleanups, reference.Socket)
	if err != nil {
		return nil, err
	}
	walking.applier = walking.client.DiffService()
	walking.content = filepath.Join(reference.Root, contentPlugin)
	walking.snapshots = filepath.Join(reference.Root, snapshotsDir)
	if walking.pid, err = findChild(tools.Containerd, reference.Dir); err != nil {
		return nil, err
	}
	ours, err := newDaemonSide(ctx, cleanups, proxy.Socket)
	if err != nil {
		return nil, err
	}
	ours.content = filepath.Join(proxy.Root, contentPlugin)
	ours.snapshots = filepath.Join(proxy.Root, snapshotsDir)
	if ours.applier, err = dialDiff(daemon.Socket); err != nil {
		return nil, err
	}
	if ours.pid, err = findChild(daemonBinary, daemon.Socket); err != nil {
		return nil, err
	}

	b := &daemonBench{sides: map[string]*daemonSide{oursName: ours, walkingName: walking}}
	for _, side := range b.sides {
		for _, in := range inputs {
			if err := side.ingest(in); err != nil {
				return nil, err
			}
		}
		if err := side.commitLowers(); err != nil {
			return nil, err
		}
		entries, err := os.ReadDir(side.snapshots)
		if err != nil {
			return nil, err
		}
		side.lowerSnapshots = len(entries)
	}
	return b, nil
}

func newDaemonSide(ctx context.Context, cleanups *harness.Cleanups,
	socket string) (*daemonSide, error) {
	client, err := containerd.New(socket, containerd.WithDefaultNamespace(benchNamespace))
	if err != nil {
		return nil, fmt.Errorf("failed to connect to %s: %w", socket, err)
	}
	cleanups.Cleanup(func() { client.Close() })
	// The lease keeps containerd's garbage collector from removing the
	// ingested blobs, which nothing else refers to.
	ctx, done, err := client.WithLease(namespaces.WithNamespace(ctx, benchNamespace))
	if err != nil {
		return nil, fmt.Errorf("failed to create a lease on %s: %w", socket, err)
	}
	cleanups.Cleanup(func() { done(context.WithoutCancel(ctx)) })
	return &daemonSide{ctx: ctx, client: client}, nil
}

func (s *daemonSide) ingest(in input) error {
	f, err := os.Open(in.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = content.WriteBlob(s.ctx, s.client.ContentStore(), "bench-"+in.Digest.Encoded(),
		bufio.NewReaderSize(f, 1<<20), in.descriptor())
	if err != nil {
		return fmt.Errorf("failed to ingest %s into containerd: %w", in.Name, err)
	}
	return nil
}

// commitLowers commits one snapshot per entry of lowerLayers, each the child
// of the one before, so that a snapshot prepared on the last one is an
// overlay with as many lowerdirs.
func (s *daemonSide) commitLowers() error {
	sn := s.client.SnapshotService(snapshotter)
	parent := ""
	for i := len(lowerLayers) - 1; i >= 0; i-- {
		key := fmt.Sprintf("bench-lower%d-active", i+1)
		mounts, err := sn.Prepare(s.ctx, key, parent)
		if err != nil {
			return fmt.Errorf("failed to prepare lower snapshot: %w", err)
		}
		if err := writeTree(snapshotDir(mounts), lowerLayers[i]); err != nil {
			return err
		}
		name := fmt.Sprintf("bench-lower%d", i+1)
		if err := sn.Commit(s.ctx, name, key); err != nil {
			return fmt.Errorf("failed to commit lower snapshot: %w", err)
		}
		parent = name
	}
	s.lower = parent
	return nil
}

// applyOnce prepares a snapshot and applies in to it through the side's
// socket. The peak RSS is the side's process VmHWM, reset before the apply.
func (b *daemonBench) applyOnce(ctx context.Context, in input,
	kind, applierName string) (applyResult,
	func(), error) {
	side := b.sides[applierName]
	sn := side.client.SnapshotService(snapshotter)
	b.runs++
	key := fmt.Sprintf("bench-run%d", b.runs)
	parent := ""
	if kind == kindOverlay {
		parent = side.lower
	}
	mounts, err := sn.Prepare(side.ctx, key, parent)
	if err != nil {
		return applyResult{}, nil, fmt.Errorf("failed to prepare snapshot: %w", err)
	}
	side.active++
	remove := func() {
		removeSnapshot(side.ctx, sn, key)
		side.active--
	}
	settleAll()
	if err := warmBlob(blobPath(side.content, in)); err != nil {
		return applyResult{}, remove, err
	}
	if err := resetPeakRSS(side.pid); err != nil {
		return applyResult{}, remove, err
	}
	if err := warmMemory(ctx, in); err != nil {
		return applyResult{}, remove, err
	}

	start := time.Now()
	desc, err := side.applier.Apply(side.ctx, in.descriptor(), mounts)
	seconds := time.Since(start).Seconds()
	settleAll()
	if err != nil {
		return applyResult{}, remove, err
	}
	if err := dropCache(snapshotDir(mounts)); err != nil {
		return applyResult{}, remove, err
	}
	peak, err := peakRSS(side.pid)
	if err != nil {
		return applyResult{}, remove, err
	}
	res := applyResult{Seconds: seconds, SelfRSS: peak, DiffID: desc.Digest, Size: desc.Size}
	return res, remove, nil
}

// snapshotDir returns the directory of an active snapshot's own files: the
// source of its bind mount or the upperdir of its overlay.
func snapshotDir(mounts []mount.Mount) string {
	if mounts[0].Type == "overlay" {
		return optionValue(mounts[0].Options, "upperdir")
	}
	return mounts[0].Source
}

func removeSnapshot(ctx context.Context, sn snapshots.Snapshotter, key string) {
	if err := sn.Remove(ctx, key); err != nil {
		fmt.Fprintf(os.Stderr, "bench: failed to remove snapshot %s: %v\n", key, err)
	}
}

// concurrentPeak applies in to n snapshots at once through our daemon and
// returns the daemon's peak RSS over the n applies.
func (b *daemonBench) concurrentPeak(in input, n int) (int64, error) {
	side := b.sides[oursName]
	sn := side.client.SnapshotService(snapshotter)
	var keys []string
	defer func() {
		for _, key := range keys {
			removeSnapshot(side.ctx, sn, key)
		}
		settleAll()
	}()
	var targets [][]mount.Mount
	for i := range n {
		key := fmt.Sprintf("bench-concurrent%d", i)
		mounts, err := sn.Prepare(side.ctx, key, "")
		if err != nil {
			return 0, fmt.Errorf("failed to prepare snapshot: %w", err)
		}
		keys = append(keys, key)
		targets = append(targets, mounts)
	}
	settleAll()
	if err := resetPeakRSS(side.pid); err != nil {
		return 0, err
	}

	errs := make(chan error, n)
	for _, mounts := range targets {
		go func() {
			_, err := side.applier.Apply(side.ctx, in.descriptor(), mounts)
			errs <- err
		}()
	}
	for range targets {
		if err := <-errs; err != nil {
			return 0, fmt.Errorf("concurrent apply of %s failed: %w", in.Name, err)
		}
	}
	return peakRSS(side.pid)
}
