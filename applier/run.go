package applier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/moby/sys/reexec"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	targetmount "github.com/chroot-applier/containerd-chroot-applier/mount"
)

const (
	// pipeSize is the capacity asked for the tar pipe, so that the parent
	// can decompress ahead while the child writes.
	pipeSize = 1 << 20
	// copyBufferSize is the size of the parent's copy buffer.
	copyBufferSize = 1 << 20
	// waitDelay bounds how long the parent waits for the child's output
	// after the child has exited or been killed.
	waitDelay = 5 * time.Second
)

// run streams the layer into a child and collects its result.
func (a *Applier) run(ctx context.Context, desc ocispec.Descriptor, target targetmount.Target,
	config diff.ApplyConfig) (Result, error) {
	ra, err := a.provider.ReaderAt(ctx, desc)
	if err != nil {
		return Result{}, fmt.Errorf("failed to open blob of layer %s: %w", desc.Digest, err)
	}
	defer ra.Close()

	blob := &countingReader{
		r:        content.NewReader(ra),
		hash:     desc.Digest.Algorithm().Hash(),
		progress: config.Progress,
	}
	dec, err := newDecoder(ctx, desc.MediaType, blob, config.ProcessorPayloads)
	if err != nil {
		if errdefs.IsNotImplemented(err) {
			return Result{}, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		return Result{}, fmt.Errorf("failed to decode layer %s: %v: %w",
			desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	defer dec.Close()

	// The kernel sends Pdeathsig when the thread that forked the child
	// exits, not the process, and Go ends a thread whose goroutine exits
	// while locked to it. Keeping this goroutine on its thread until the
	// child is reaped means that thread cannot be one that ends early.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	opts := childOptions{Layer: desc.Digest.String(), Target: target, SyncFs: config.SyncFs}
	c, err := startChild(ctx, opts)
	if err != nil {
		return Result{}, fmt.Errorf("failed to start child for layer %s: %w", desc.Digest, err)
	}

	tarStream := &countingReader{r: dec, hash: digest.Canonical.Hash()}
	_, copyErr := io.CopyBuffer(c.stdin, tarStream, make([]byte, copyBufferSize))
	c.stdin.Close()
	cres, waitErr := c.wait()

	if ctx.Err() != nil {
		return Result{}, fmt.Errorf("apply of layer %s stopped: %w", desc.Digest, ctx.Err())
	}
	// A broken blob (a truncated or corrupt stream) makes the child fail
	// too, with a less useful message, so the read error comes first.
	if tarStream.err != nil && tarStream.err != io.EOF {
		return Result{}, fmt.Errorf("failed to read layer %s: %v: %w",
			desc.Digest, tarStream.err, errdefs.ErrInvalidArgument)
	}
	if waitErr != nil {
		var ce *ChildError
		if errors.As(waitErr, &ce) {
			ce.Layer = desc.Digest
			return Result{}, waitErr
		}
		return Result{}, fmt.Errorf("failed to apply layer %s: %w", desc.Digest, waitErr)
	}
	if copyErr == nil {
		// Bytes after the compressed stream (gzip junk) still count for the
		// blob digest.
		_, copyErr = io.Copy(io.Discard, blob)
	}
	if copyErr == nil {
		copyErr = dec.Err()
	}
	if copyErr != nil {
		return Result{}, fmt.Errorf("failed to read layer %s: %v: %w",
			desc.Digest, copyErr, errdefs.ErrInvalidArgument)
	}
	if err := blob.verify(desc); err != nil {
		return Result{}, err
	}

	for _, w := range cres.Warnings {
		log.G(ctx).WithFields(log.Fields{"digest": desc.Digest, "entry": w.Entry}).Warn(w.Reason)
	}
	if cres.WarningsDropped > 0 {
		log.G(ctx).WithFields(log.Fields{"digest": desc.Digest, "count": cres.WarningsDropped}).
			Warn("more entries were skipped or changed than are logged")
	}
	return Result{
		Diff: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageLayer,
			Digest:    digest.NewDigest(digest.Canonical, tarStream.hash),
			Size:      tarStream.n,
		},
		Entries: cres.Entries,
		Root:    cres.Root,
	}, nil
}

// countingReader counts and hashes what is read through it.
type countingReader struct {
	r        io.Reader
	hash     hash.Hash
	n        int64
	progress func(int64)
	// err is the first error of the underlying reader, io.EOF included.
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.hash.Write(p[:n])
		c.n += int64(n)
		if c.progress != nil {
			c.progress(c.n)
		}
	}
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// verify fails unless what was read matches the descriptor's size and digest.
func (c *countingReader) verify(desc ocispec.Descriptor) error {
	if desc.Size > 0 && c.n != desc.Size {
		return fmt.Errorf("layer %s: read %d bytes, descriptor size is %d: %w",
			desc.Digest, c.n, desc.Size, errdefs.ErrInvalidArgument)
	}
	if got := digest.NewDigest(desc.Digest.Algorithm(), c.hash); got != desc.Digest {
		return fmt.Errorf("layer %s: blob digest is %s: %w",
			desc.Digest, got, errdefs.ErrInvalidArgument)
	}
	return nil
}

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *boundedBuffer
	stderr *boundedBuffer
	done   chan struct{}
}

// startChild starts the child in a new mount namespace and sends it opts.
// The child is killed when ctx is done and when the parent dies.
func startChild(ctx context.Context, opts childOptions) (*child, error) {
	optsR, optsW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer optsR.Close()
	tarR, tarW, err := os.Pipe()
	if err != nil {
		optsW.Close()
		return nil, err
	}
	defer tarR.Close()
	// A larger pipe lets the parent run ahead of the child; the default
	// size is kept when the kernel refuses.
	unix.FcntlInt(tarW.Fd(), unix.F_SETPIPE_SZ, pipeSize)

	c := &child{
		cmd:    reexec.Command(childName),
		stdin:  tarW,
		stdout: &boundedBuffer{max: 1 << 20},
		stderr: &boundedBuffer{max: 64 << 10, keepTail: true},
		done:   make(chan struct{}),
	}
	c.cmd.Stdin = tarR
	c.cmd.Stdout = c.stdout
	c.cmd.Stderr = c.stderr
	c.cmd.ExtraFiles = []*os.File{optsR}
	c.cmd.WaitDelay = waitDelay
	c.cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	c.cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := c.cmd.Start(); err != nil {
		optsW.Close()
		tarW.Close()
		return nil, err
	}

	go func() {
		select {
		case <-ctx.Done():
			c.cmd.Process.Kill()
		case <-c.done:
		}
	}()

	err = json.NewEncoder(optsW).Encode(opts)
	optsW.Close()
	if err != nil {
		// The child exits when its options pipe yields nothing; wait
		// reports why.
		log.G(ctx).WithError(err).Debug("failed to send options to child")
	}
	return c, nil
}

// wait waits for the child and decodes its result.
func (c *child) wait() (childResult, error) {
	err := c.cmd.Wait()
	close(c.done)

	var res childResult
	decodeErr := json.Unmarshal(bytes.TrimSpace(c.stdout.Bytes()), &res)
	if decodeErr == nil && res.Error != nil {
		e := res.Error
		return res, &ChildError{Stage: e.Stage, Entry: e.Entry, Message: e.Message, Kind: e.Kind}
	}
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return res, fmt.Errorf("child was killed by signal %s%s",
					ws.Signal(), c.stderrTail())
			}
		}
		return res, fmt.Errorf("child failed: %w%s", err, c.stderrTail())
	}
	if decodeErr != nil {
		return res, fmt.Errorf("failed to decode child result: %w%s", decodeErr, c.stderrTail())
	}
	return res, nil
}

func (c *child) stderrTail() string {
	s := strings.TrimSpace(string(c.stderr.Bytes()))
	if s == "" {
		return ""
	}
	return ": " + s
}

// boundedBuffer keeps at most max bytes: the first ones, or the last ones
// when keepTail is set.
type boundedBuffer struct {
	buf      []byte
	max      int
	keepTail bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		if b.keepTail {
			b.buf = b.buf[len(b.buf)-b.max:]
		} else {
			b.buf = b.buf[:b.max]
		}
	}
	return len(p), nil
}

func (b *boundedBuffer) Bytes() []byte { return b.buf }
