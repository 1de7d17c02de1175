package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/diff/apply"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
)

// applyCommand is the hidden subcommand that runs one timed apply in a
// process of its own, so that its peak RSS is that of one run only.
const applyCommand = "__apply"

// Appliers on the command line and in the table.
const (
	oursName    = "ours"
	walkingName = "walking"
)

// applyRequest is the request the benchmark sends the subprocess on its stdin.
type applyRequest struct {
	Applier string             `json:"applier"`
	Store   string             `json:"store"`
	Layer   ocispec.Descriptor `json:"layer"`
	Mounts  []mount.Mount      `json:"mounts"`
}

// applyResult is the outcome of one apply, written by the subprocess on its
// stdout.
type applyResult struct {
	// Seconds is the wall time of the Apply call alone.
	Seconds float64 `json:"seconds"`
	// SelfRSS is the peak RSS of the subprocess in bytes.
	SelfRSS int64 `json:"selfRSS"`
	// ChildRSS is the largest peak RSS of the subprocess's waited-for
	// children in bytes: our confined child, or an unpigz the walking
	// differ started.
	ChildRSS int64         `json:"childRSS"`
	DiffID   digest.Digest `json:"diffID"`
	Size     int64         `json:"size"`
	Error    string        `json:"error,omitempty"`
}

// runApplyCommand is the body of the hidden subcommand.
func runApplyCommand() {
	var req applyRequest
	res := applyResult{}
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		res.Error = fmt.Sprintf("failed to decode request: %v", err)
	} else {
		res = applyOnce(req)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		os.Exit(2)
	}
}

func applyOnce(req applyRequest) applyResult {
	ctx := context.Background()
	cs, err := local.NewStore(req.Store)
	if err != nil {
		return applyResult{Error: err.Error()}
	}
	var a diff.Applier
	switch req.Applier {
	case oursName:
		a = applier.New(cs)
	case walkingName:
		a = apply.NewFileSystemApplier(cs)
	default:
		return applyResult{Error: fmt.Sprintf("unknown applier %q", req.Applier)}
	}

	start := time.Now()
	desc, err := a.Apply(ctx, req.Layer, req.Mounts)
	seconds := time.Since(start).Seconds()
	if err != nil {
		return applyResult{Error: err.Error()}
	}

	var self, children unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &self)
	unix.Getrusage(unix.RUSAGE_CHILDREN, &children)
	return applyResult{
		Seconds:  seconds,
		SelfRSS:  self.Maxrss << 10,
		ChildRSS: children.Maxrss << 10,
		DiffID:   desc.Digest,
		Size:     desc.Size,
	}
}

// runSubprocess runs one apply in a fresh subprocess of this binary. The
// subprocess gets a private mount namespace, so that a temporary mount of
// the walking differ can never outlive it on the host.
func runSubprocess(ctx context.Context, req applyRequest) (applyResult, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return applyResult{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return applyResult{}, err
	}
	cmd := exec.CommandContext(ctx, self, applyCommand)
	cmd.Stdin = bytes.NewReader(data)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS,
		Pdeathsig:    syscall.SIGKILL,
	}
	// Pdeathsig follows the forking thread (see harness.StartKeepingThread),
	// and pin ends threads, so this keeps its thread until the run is reaped.
	runtime.LockOSThread()
	runErr := cmd.Run()
	runtime.UnlockOSThread()

	var res applyResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("%s apply subprocess failed: %v (%v): %s",
			req.Applier, runErr, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if res.Error != "" {
		return res, fmt.Errorf("%s apply failed: %s", req.Applier, res.Error)
	}
	return res, nil
}
