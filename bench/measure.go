package main

import (
	"context"
	"fmt"
	"os"
)

// caseResult holds the runs of both appliers on one input and target kind,
// in the order they ran: ours[i] ran just before walking[i].
type caseResult struct {
	Input   input
	Kind    string
	Ours    []applyResult
	Walking []applyResult
}

// measure applies in to fresh targets of kind: one warm-up of each applier,
// then runs timed pairs, ours first in each pair.
func measure(ctx context.Context, ws *workspace, in input, kind string, runs int) (caseResult, error) {
	res := caseResult{Input: in, Kind: kind}
	for i := -1; i < runs; i++ {
		for _, name := range []string{oursName, walkingName} {
			r, err := measureOne(ctx, ws, in, kind, name)
			if err != nil {
				return res, fmt.Errorf("%s on %s: %w", in.Name, kind, err)
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
			fmt.Fprintf(os.Stderr, "  %s %s run %d: ours %.3fs walking %.3fs\n",
				in.Name, kind, i+1, res.Ours[i].Seconds, res.Walking[i].Seconds)
		}
	}
	return res, nil
}

// measureOne creates a target, applies in to it in a subprocess and removes
// the target again, checking that the applier returned the input's diffID.
func measureOne(ctx context.Context, ws *workspace, in input, kind, applierName string) (applyResult, error) {
	t, err := ws.newTarget(kind)
	if err != nil {
		return applyResult{}, err
	}
	if err := ws.settle(); err != nil {
		return applyResult{}, err
	}
	res, err := runSubprocess(ctx, applyRequest{
		Applier: applierName,
		Store:   ws.store,
		Layer:   in.descriptor(),
		Mounts:  t.mounts,
	})
	if rmErr := ws.remove(t); err == nil && rmErr != nil {
		err = fmt.Errorf("failed to remove target %s: %w", t.dir, rmErr)
	}
	if err != nil {
		return res, err
	}
	if res.DiffID != in.DiffID || res.Size != in.Uncompressed {
		return res, fmt.Errorf("%s returned diffID %s size %d, expected %s size %d",
			applierName, res.DiffID, res.Size, in.DiffID, in.Uncompressed)
	}
	return res, nil
}
