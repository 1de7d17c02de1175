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

	"github.com/chroot-applier/containerd-chroot-applier/internal/child"
	targetmount "github.com/chroot-applier/containerd-chroot-applier/mount"
)

const (
	// pipeSize is the capacity asked for the tar pipe, so that the parent
	// can decompress ahead while the child writes.
	pipeSize = 1 << 20
	// stageBufferSize and stageBuffers are the size and number of the
	// buffers of each pipeline stage. A pipe of pipeSize and the child's
	// staging pipe of child.SpliceBatch bytes keep at most two buffers
	// besides the one being written, which leaves two for the stage.
	stageBufferSize = 1 << 20
	stageBuffers    = 5
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

	hashes := newLayerHashes(desc.Digest.Algorithm())
	blob := &countingReader{
		r:        content.NewReader(ra),
		hashes:   hashes,
		progress: config.Progress,
		maxRead:  blobReadSize(ra),
	}
	dec, err := newDecoder(ctx, desc.MediaType, blob, config.ProcessorPayloads)
	if err != nil {
		if errdefs.IsNotImplemented(err) {
			return Result{}, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		return Result{}, streamFailure(desc, blob, "failed to decode", "", err)
	}
	// An uncompressed blob is its own tar, so its verified digest is the
	// diffID and hashing it twice would only cost time.
	sameDigest := passesBlob(dec) && desc.Digest.Algorithm() == digest.Canonical
	if !sameDigest {
		hashes.hashTar(readsInRead(dec))
	}
	// The stage reads the decoder, so it stops before the decoder closes.
	p := newPipeline()
	defer func() {
		p.close()
		dec.Close()
	}()
	// Reading, decoding and hashing the blob run in the stage. This
	// goroutine hands the tar to the child, and hashes it unless the stage
	// hashes it in pairs with the blob.
	stream := &tarStream{hash: hashes.sentTar()}
	layer := &layerStream{tar: dec, blob: blob, dec: dec, hashes: hashes}
	tarStage := p.stage(layer, stageBufferSize, stageBuffers, hashes.release)

	// The kernel sends Pdeathsig when the thread that forked the child
	// exits, not the process, and Go ends a thread whose goroutine exits
	// while locked to it. Keeping this goroutine on its thread until the
	// child is reaped means that thread cannot be one that ends early.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	opts := child.Options{Layer: desc.Digest.String(), Target: target, SyncFs: config.SyncFs}
	c, err := startChild(ctx, opts)
	if err != nil {
		return Result{}, fmt.Errorf("failed to start child for layer %s: %w", desc.Digest, err)
	}

	copyErr := stream.send(tarStage, c.stdin)
	c.stdin.Close()
	cres, waitErr := c.wait()
	// Stopping the stage makes what its readers recorded safe to read.
	p.close()

	if ctx.Err() != nil {
		return Result{}, fmt.Errorf("apply of layer %s stopped: %w", desc.Digest, ctx.Err())
	}
	// A broken blob (a truncated or corrupt stream) makes the child fail
	// too, with a less useful message, so the read error comes first. The
	// error names the entry the child was applying when the stream ended.
	if copyErr != nil && stream.err == nil {
		entry := ""
		var ce *ChildError
		if errors.As(waitErr, &ce) {
			entry = ce.Entry
		}
		return Result{}, streamFailure(desc, blob, "failed to read", entry, copyErr)
	}
	if waitErr != nil {
		var ce *ChildError
		if errors.As(waitErr, &ce) {
			ce.Layer = desc.Digest
			return Result{}, waitErr
		}
		return Result{}, fmt.Errorf("failed to apply layer %s: %w", desc.Digest, waitErr)
	}
	if copyErr != nil {
		return Result{}, fmt.Errorf("failed to send layer %s to child: %w", desc.Digest, copyErr)
	}
	if err := blob.verify(desc); err != nil {
		return Result{}, err
	}
	diffID := desc.Digest
	if !sameDigest {
		diffID = digest.NewDigest(digest.Canonical, hashes.tar)
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
			Digest:    diffID,
			Size:      stream.n,
		},
		Entries: cres.Entries,
		Root:    cres.Root,
	}, nil
}

// streamFailure returns the error of a layer whose stream failed with err,
// once the stage has stopped. entry, when not empty, is the tar entry in
// which the child met the end of the stream. A failure of the provider is
// not a fault of the layer's content, so it keeps its own kind. Any other
// failure, such as a corrupt or truncated compressed stream, is invalid
// content.
func streamFailure(desc ocispec.Descriptor, blob *countingReader, failed, entry string,
	err error) error {
	where := ""
	if entry != "" {
		where = fmt.Sprintf(" in entry %q", entry)
	}
	if blob.err != nil && blob.err != io.EOF {
		return fmt.Errorf("failed to read blob of layer %s%s: %w", desc.Digest, where, blob.err)
	}
	return fmt.Errorf("%s layer %s%s: %v: %w", failed, desc.Digest, where, err,
		errdefs.ErrInvalidArgument)
}

// layerStream is the decoded tar of a layer, read by the stage into its
// buffers. It hands what it reads to hashes. At the end of the tar it reads
// the rest of the blob, because bytes after the compressed stream (gzip
// junk) still count for the blob digest, and reports an error the decoder
// found only after the tar ended.
type layerStream struct {
	tar    io.Reader
	blob   io.Reader
	dec    decoder
	hashes *layerHashes
}

func (l *layerStream) Read(p []byte) (int, error) {
	n, err := l.tar.Read(p)
	l.hashes.tarDecoded(p[:n])
	if err == io.EOF {
		if _, derr := io.Copy(io.Discard, l.blob); derr != nil {
			return n, derr
		}
		l.hashes.finish()
		if derr := l.dec.Err(); derr != nil {
			return n, derr
		}
	}
	return n, err
}

// tarStream is the layer's tar on its way to the child. It hashes the tar
// for the diffID unless hash is nil, counts it, and records the first error
// of the pipe.
type tarStream struct {
	hash hash.Hash
	n    int64
	err  error
}

// send moves the stage's buffers into w, the write end of the child's stdin
// pipe, as they fill. It returns nil at the end of the stream, the stage's
// error when reading failed and the pipe's when writing did.
func (t *tarStream) send(s *stage, w *os.File) error {
	// Leaving the stage two buffers lets it fill one while the other waits.
	size := int64(s.size)
	pipe, err := newTarPipe(w, s.give, size, child.SpliceBatch, size*int64(cap(s.free)-2))
	if err != nil {
		t.err = err
		return err
	}
	for {
		buf, err := s.take()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if t.hash != nil {
			t.hash.Write(buf)
		}
		if err := pipe.write(buf); err != nil {
			t.err = err
			return err
		}
		t.n += int64(len(buf))
	}
}

// localReadSize is the largest read of a blob in a local file in one call.
// There are two likely reasons why smaller reads help, not measured apart.
// A read of 1 MiB fills a core's 1 MiB L2 cache before the hash and the
// decoder get to its bytes. It also lasts longer than the 20 us after which
// Go's scheduler takes the processor from a goroutine in a system call when
// no other processor is idle, which costs a hand-off per read. 1 GiB of
// poorly compressible gzip was applied in process with GOMAXPROCS=2 on the
// benchmark's two cores, each time right after the files of the apply
// before had been deleted. Reads of at most 256 KiB took 1.12 to 1.19 s
// there, and reads of 1 MiB 1.21 to 1.43 s, with the two CPUs close (a
// cross-core round trip of 60 to 80 ns). In the benchmark, which keeps
// those files until the case ends, both took 1.10 to 1.18 s. Reads of
// 64 KiB and 128 KiB were no faster than 256 KiB.
const localReadSize = 256 << 10

// blobReadSize returns the largest read countingReader requests from ra's
// reader in one call. That is localReadSize when ra reads a local file, and
// no limit otherwise, because a read through containerd's content API is a
// round trip per call. containerd's local content store offers a Reader
// method, which content.NewReader uses, and blobfile's readers are open
// files.
func blobReadSize(ra content.ReaderAt) int {
	switch ra.(type) {
	case interface{ Reader() io.Reader }, interface{ Fd() uintptr }:
		return localReadSize
	}
	return 0
}

// countingReader counts what is read through it and hands it to hashes.
type countingReader struct {
	r        io.Reader
	hashes   *layerHashes
	n        int64
	progress func(int64)
	// maxRead, when above 0, is the largest read requested from r in one
	// call.
	maxRead int
	// err is the first error of the underlying reader, io.EOF included.
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.maxRead > 0 && len(p) > c.maxRead {
		p = p[:c.maxRead]
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.hashes.blobRead(p[:n])
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
	if got := digest.NewDigest(desc.Digest.Algorithm(), c.hashes.blob); got != desc.Digest {
		return fmt.Errorf("layer %s: blob digest is %s: %w",
			desc.Digest, got, errdefs.ErrInvalidArgument)
	}
	return nil
}

// childProcess is a running child.
type childProcess struct {
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *boundedBuffer
	stderr *boundedBuffer
	done   chan struct{}
}

// startChild starts the child in a new mount namespace and sends it opts.
// The child is killed when ctx is done and when the parent dies.
func startChild(ctx context.Context, opts child.Options) (*childProcess, error) {
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
	// size is kept when the kernel refuses. Fd would put the descriptor in
	// blocking mode, which the parent's writes must not have.
	if conn, err := tarW.SyscallConn(); err == nil {
		conn.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}

	c := &childProcess{
		cmd:    reexec.Command(child.Name),
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
func (c *childProcess) wait() (child.Result, error) {
	err := c.cmd.Wait()
	close(c.done)

	var res child.Result
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

func (c *childProcess) stderrTail() string {
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
