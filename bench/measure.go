package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// caseResult holds the runs of both appliers on one input and target kind,
// in the order they ran: ours[i] ran just before walking[i].
type caseResult struct {
	Input   input
	Kind    string
	Via     string
	Ours    []applyResult
	Walking []applyResult
	// RoundTrips is, for each timed pair, the larger of the cross-core
	// round trips measured just before and just after it.
	RoundTrips []time.Duration
}

// runner applies an input once with the named applier to a fresh target of
// the given kind. The returned function removes the target.
type runner interface {
	via() string
	applyOnce(ctx context.Context, in input, kind, applierName string) (applyResult, func(), error)
}

// removalWaiter is a runner whose target removals finish after the removal
// functions return. waitRemovals waits for them, or until ctx is done.
type removalWaiter interface {
	waitRemovals(ctx context.Context) error
}

// measure applies in to fresh targets of kind: one warm-up of each applier,
// then runs timed pairs, ours first in each pair.
//
// No target is removed before the last run, because removing targets between
// runs would make every run pay for the one before. On ext4 without a
// journal, as on the machine of the published results, inode allocation
// skips an inode deleted less than 60 s ago, or 360 s ago while its inode
// table block is dirty (recently_deleted in fs/ext4/ialloc.c). Checking each
// such inode is slow. On the 100,000-file input, file creation was up to 30
// times slower in the run after a removal. It also hit one side and not the
// other, depending on which block groups the side's directories were given.
// Through the daemon, after earlier cases had been removed, ours took 2.0 to
// 3.9 s on Debian layers where the walking differ took 0.5 to 0.7 s.
// So measure removes the targets of an input with fewer than settleEntries
// entries when it is done, and returns those of larger inputs, for the
// caller to remove when no timed run follows.
func measure(ctx context.Context, rn runner, in input, kind string,
	runs int) (res caseResult, kept []func(), err error) {
	res = caseResult{Input: in, Kind: kind, Via: rn.via()}
	var removals []func()
	defer func() {
		if in.Entries >= settleEntries {
			kept = removals
			return
		}
		removeAll(ctx, rn, removals)
	}()
	for i := -1; i < runs; i++ {
		// The warm-up pair, i == -1, needs no round trip.
		var before time.Duration
		if i >= 0 {
			before = coreRoundTrip()
		}
		for _, name := range []string{oursName, walkingName} {
			r, remove, err := rn.applyOnce(ctx, in, kind, name)
			if remove != nil {
				removals = append(removals, remove)
			}
			if err == nil && (r.DiffID != in.DiffID || r.Size != in.Uncompressed) {
				err = fmt.Errorf("%s returned diffID %s size %d, expected %s size %d",
					name, r.DiffID, r.Size, in.DiffID, in.Uncompressed)
			}
			if err != nil {
				return res, nil, fmt.Errorf("%s on %s (%s): %w",
					in.Name, kind, rn.via(), err)
			}
			if i < 0 {
				continue
			}
			if name == oursName {
				res.Ours = append(res.Ours, r)
			} else {
				res.Walking = append(res.Walking, r)
			}
		}
		if i >= 0 {
			roundTrip := max(before, coreRoundTrip())
			res.RoundTrips = append(res.RoundTrips, roundTrip)
			fmt.Fprintf(os.Stderr, "  %s %s %s run %d: ours %.3fs walking %.3fs, "+
				"core round trip %d ns\n", rn.via(), in.Name, kind, i+1,
				res.Ours[i].Seconds, res.Walking[i].Seconds, roundTrip.Nanoseconds())
		}
	}
	return res, nil, nil
}

// removeAll runs removals, waits for the runner's removals to finish and
// writes back every file system.
func removeAll(ctx context.Context, rn runner, removals []func()) {
	for _, remove := range removals {
		remove()
	}
	if w, ok := rn.(removalWaiter); ok {
		if err := w.waitRemovals(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
	}
	settleAll()
}

// settleEntries is the smallest input, in tar entries, whose targets stay
// until no timed run follows.
const settleEntries = 1000

// Values of the table's "via" column.
const (
	viaProcess = "process"
	viaDaemon  = "daemon"
)

func (w *workspace) via() string { return viaProcess }

// applyOnce creates a target and applies in to it in a subprocess.
func (w *workspace) applyOnce(ctx context.Context, in input, kind, applierName string) (applyResult,
	func(), error) {
	t, err := w.newTarget(kind)
	if err != nil {
		return applyResult{}, nil, err
	}
	remove := func() {
		if err := os.RemoveAll(t.dir); err != nil {
			fmt.Fprintf(os.Stderr, "bench: failed to remove target %s: %v\n", t.dir, err)
		}
	}
	settleAll()
	if err := warmBlob(blobPath(w.store, in)); err != nil {
		return applyResult{}, remove, err
	}
	if err := warmMemory(ctx, in); err != nil {
		return applyResult{}, remove, err
	}
	res, err := runSubprocess(ctx, applyRequest{
		Applier: applierName,
		Store:   w.store,
		Layer:   in.descriptor(),
		Mounts:  t.mounts,
	})
	// Writing back the run's tree now keeps it from being written while
	// the next run is timed.
	settleAll()
	if err == nil {
		err = dropCache(t.dir)
	}
	return res, remove, err
}
