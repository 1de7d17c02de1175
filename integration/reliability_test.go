package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	diffproxy "github.com/containerd/containerd/v2/core/diff/proxy"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chroot-applier/containerd-chroot-applier/integration/harness"
	"github.com/chroot-applier/containerd-chroot-applier/internal/manifest"
	"github.com/chroot-applier/containerd-chroot-applier/internal/proctest"
)

// relDaemon is an applier daemon that a reliability test starts, kills and
// restarts itself, unlike the shared one of the environment.
type relDaemon struct {
	binary     string
	socket     string
	containerd string
	config     string
	log        string

	cmd  *exec.Cmd
	done <-chan struct{}
}

// relNewDaemon starts the applier daemon on socket with the configuration
// text config, reading blobs from the containerd at containerdSocket. The
// daemon is stopped by PID when t cleans up.
func relNewDaemon(t *testing.T, binary, socket, containerdSocket, config string) *relDaemon {
	t.Helper()
	dir := t.TempDir()
	d := &relDaemon{
		binary:     binary,
		socket:     socket,
		containerd: containerdSocket,
		config:     filepath.Join(dir, "config.toml"),
		log:        filepath.Join(dir, "applier.log"),
	}
	if err := os.WriteFile(d.config, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	t.Cleanup(d.stop)
	return d
}

// start starts the daemon process and waits for its socket.
func (d *relDaemon) start(t *testing.T) {
	t.Helper()
	logFile, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	d.cmd = exec.Command(d.binary, "serve",
		"--address", d.socket,
		"--containerd-address", d.containerd,
		"--config", d.config,
		"--log-level", "debug",
		"--log-format", "json")
	d.cmd.Stdout = logFile
	d.cmd.Stderr = logFile
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done, err := harness.StartKeepingThread(d.cmd)
	if err != nil {
		t.Fatalf("failed to start %s: %v", d.binary, err)
	}
	d.done = done

	err = harness.WaitSocket(context.Background(), d.socket, d.done, 30*time.Second)
	if err != nil {
		t.Fatalf("applier daemon did not listen on %s: %v\n%s", d.socket, err, harness.Tail(d.log))
	}
}

func (d *relDaemon) pid() int { return d.cmd.Process.Pid }

// kill sends SIGKILL to the daemon and waits until it has exited.
func (d *relDaemon) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("failed to kill applier daemon %d: %v", d.pid(), err)
	}
	<-d.done
}

// stop sends SIGTERM to the daemon, and SIGKILL if it has not exited
// within ten seconds.
func (d *relDaemon) stop() { harness.StopProcess(d.cmd.Process, d.done) }

// relChildrenOf returns the PIDs of the live processes whose parent is
// parent. Zombies are left out: they have exited and only wait to be reaped.
func relChildrenOf(parent int) []int {
	pids, _ := proctest.LiveChildren(parent)
	return pids
}

// relGzipFile writes the tar that build produces, gzip compressed, to path.
func relGzipFile(t *testing.T, path string, build func(tw *tar.Writer) error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(gz)
	if err := build(tw); err != nil {
		t.Fatalf("failed to write layer %s: %v", path, err)
	}
	for _, c := range []io.Closer{tw, gz, f} {
		if err := c.Close(); err != nil {
			t.Fatalf("failed to write layer %s: %v", path, err)
		}
	}
}

// relBigFiles files of relBigFileSize bytes make a 1 GiB layer that
// compresses to a few MiB, so that applying it takes seconds while the blob
// stays small.
const (
	relBigFiles    = 64
	relBigFileSize = 16 << 20
)

// relBigLayer writes the large layer. The bytes are not zero, so that no
// extractor can skip them as holes.
func relBigLayer(tw *tar.Writer) error {
	chunk := bytes.Repeat([]byte{'x'}, 1<<20)
	if err := tw.WriteHeader(&tar.Header{Name: "big/", Typeflag: tar.TypeDir, Mode: 0o755,
		ModTime: time.Unix(1700000000, 0)}); err != nil {
		return err
	}
	for i := range relBigFiles {
		hdr := &tar.Header{Name: fmt.Sprintf("big/%02d", i), Typeflag: tar.TypeReg,
			Mode: 0o644, Size: relBigFileSize, ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		for range relBigFileSize / len(chunk) {
			if _, err := tw.Write(chunk); err != nil {
				return err
			}
		}
	}
	return nil
}

// relCheckBigSnapshot fails t unless dir holds exactly the large layer.
func relCheckBigSnapshot(t *testing.T, dir string) {
	t.Helper()
	m, err := manifest.Build(dir)
	if err != nil {
		t.Fatalf("failed to build manifest of %s: %v", dir, err)
	}
	sum := sha256.Sum256(bytes.Repeat([]byte{'x'}, relBigFileSize))
	want := hex.EncodeToString(sum[:])
	files := 0
	for _, e := range m.Entries {
		switch {
		case e.Path == "." || e.Path == "big":
			if e.Type != "dir" {
				t.Errorf("%s is a %s, want a directory", e.Path, e.Type)
			}
		case strings.HasPrefix(e.Path, "big/"):
			files++
			if e.Type != "file" || e.Size != relBigFileSize || e.SHA256 != want {
				t.Errorf("%s: %s of %d bytes, sha256 %s; want a file of %d bytes, sha256 %s",
					e.Path, e.Type, e.Size, e.SHA256, relBigFileSize, want)
			}
		default:
			t.Errorf("unexpected path %s (%s) in the snapshot", e.Path, e.Type)
		}
	}
	if files != relBigFiles {
		t.Errorf("snapshot holds %d files of the large layer, want %d", files, relBigFiles)
	}
}

func relStartProxyContainerd(t *testing.T, e *env) *harness.Containerd {
	t.Helper()
	c, err := harness.StartContainerd(context.Background(), t, harness.Config{
		Mode: harness.Proxy, Binary: e.tools.Containerd, Tools: e.tools, RegistryHost: e.registry,
	})
	if err != nil {
		t.Fatalf("failed to start containerd: %v", err)
	}
	return c
}

// TestRelDaemonKilledDuringPull kills the daemon while containerd unpacks a
// large layer through it, then restarts it and pulls again.
func TestRelDaemonKilledDuringPull(t *testing.T) {
	e := setup(t)
	c := relStartProxyContainerd(t, e)
	d := relNewDaemon(t, e.products.Daemon, c.ProxySocket, c.Socket, "")

	layerPath := filepath.Join(t.TempDir(), "big.tar.gz")
	relGzipFile(t, layerPath, relBigLayer)
	layer, err := harness.FileLayer(layerPath, "gzip")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := harness.PushImage(ctxTimeout(t), e.registry, "reliability/big:1", layer)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "reliability-kill"
	pull := func() (string, error) {
		return c.Ctr(ctxTimeout(t), ns, "image", "pull", "--plain-http", ref)
	}

	type outcome struct {
		out string
		err error
	}
	pulled := make(chan outcome, 1)
	go func() {
		out, err := pull()
		pulled <- outcome{out, err}
	}()

	var child int
	deadline := time.Now().Add(2 * time.Minute)
	for child == 0 && time.Now().Before(deadline) {
		if pids := relChildrenOf(d.pid()); len(pids) > 0 {
			child = pids[0]
			break
		}
		select {
		case o := <-pulled:
			t.Fatalf("pull ended before the daemon started a child: %v\n%s", o.err, o.out)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if child == 0 {
		t.Fatalf("the daemon started no child within 2 minutes:\n%s", harness.Tail(d.log))
	}
	// Let the child write part of the layer before the daemon dies.
	time.Sleep(300 * time.Millisecond)
	d.kill(t)

	exited := false
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		if state, _, ok := proctest.Stat(child); !ok || state == "Z" {
			exited = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !exited {
		t.Errorf("child %d of the killed daemon still runs 5s later", child)
	}

	o := <-pulled
	if o.err == nil {
		t.Fatalf("pull succeeded although the daemon was killed during the unpack:\n%s", o.out)
	}
	// ctr prints progress tables before the error; the error is the line
	// that starts with "ctr:".
	var pullErr string
	for _, line := range strings.Split(o.err.Error(), "\n") {
		if strings.HasPrefix(line, "ctr: ") {
			pullErr = line
		}
	}
	t.Logf("pull while the daemon was killed failed: %s", pullErr)
	layerDigest, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"failed to extract layer", layerDigest.String()} {
		if !strings.Contains(pullErr, want) {
			t.Errorf("pull error %q does not contain %q", pullErr, want)
		}
	}

	d.start(t)
	if out, err := pull(); err != nil {
		t.Fatalf("pull after the daemon restarted failed: %v\n%s", err, out)
	}
	out, err := c.Ctr(ctxTimeout(t), ns, "image", "check")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "complete") {
		t.Errorf("image is not complete after the second pull:\n%s", out)
	}
	snapshots, err := c.LayerSnapshots(ctxTimeout(t), ns, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(snapshots) != 1 {
		t.Fatalf("image has %d layer snapshots, want 1", len(snapshots))
	}
	relCheckBigSnapshot(t, snapshots[0].Dir)
}

// TestRelSocketRejectsNonRoot connects to the daemon's socket with ctr as
// uid 65534 (nobody), and as root for comparison.
func TestRelSocketRejectsNonRoot(t *testing.T) {
	e := setup(t)
	// A directory that everyone may traverse, so that only the socket's
	// own mode keeps other users out.
	dir, err := os.MkdirTemp("", "cca-rel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "applier.sock")
	relNewDaemon(t, e.products.Daemon, socket, e.proxy.Socket, "")

	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("socket mode = %v, want 0600", mode)
	}

	connect := func(credential *syscall.Credential) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, e.tools.Ctr, "--address", socket,
			"--connect-timeout", "5s", "version")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: credential}
		cmd.Env = []string{"HOME=/", "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := connect(&syscall.Credential{Uid: 65534, Gid: 65534})
	t.Logf("ctr as uid 65534: %s", out)
	if err == nil {
		t.Errorf("ctr as uid 65534 reached the daemon:\n%s", out)
	}
	if !strings.Contains(out, "permission denied") {
		t.Errorf("ctr as uid 65534 did not fail with permission denied:\n%s", out)
	}

	out, _ = connect(nil)
	t.Logf("ctr as root: %s", out)
	if strings.Contains(out, "permission denied") {
		t.Errorf("ctr as root was denied too, so the check above proves nothing:\n%s", out)
	}
}

// Settings of the concurrency test.
const (
	relConcurrentClients = 16
	relMaxApplies        = 4
	relConcurrencyNS     = "reliability-concurrency"
	// relRSSTolerance is how far the daemon's resident set may stay above
	// its level before the load: the Go runtime returns freed heap to the
	// kernel only gradually.
	relRSSTolerance = 32 << 20
	// relGoroutineTolerance is how many goroutines may stay above the level
	// before the load. gRPC and net/http start some on demand (a stream's
	// second reader, a metrics connection the test opened) and keep them
	// for a while; a leak per apply would add thousands after this load.
	relGoroutineTolerance = 2
)

// relConcurrencyDuration is how long the concurrency test keeps the daemon
// busy: two minutes, or ten seconds with -short.
func relConcurrencyDuration() time.Duration {
	if testing.Short() {
		return 10 * time.Second
	}
	return 2 * time.Minute
}

// relLayer is a layer blob in containerd's content store with the tree
// containerd's own archive.Apply makes of it.
type relLayer struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
	want   manifest.Manifest
}

// relSmallLayer builds layer i: directories, regular files of varied size,
// mode and owner, a symlink, a hardlink, a fifo and an xattr. Every
// directory is named, so that no parent is implied.
func relSmallLayer(i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 0))
	mtime := time.Unix(1700000000+int64(i)*100, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(hdr *tar.Header, data []byte) {
		hdr.ModTime = mtime
		hdr.Size = int64(len(data))
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			panic(err)
		}
		if _, err := tw.Write(data); err != nil {
			panic(err)
		}
	}

	root := fmt.Sprintf("layer%02d/", i)
	write(&tar.Header{Name: root, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	write(&tar.Header{Name: root + "sub/", Typeflag: tar.TypeDir, Mode: 0o750,
		Uid: 1000, Gid: 1000}, nil)

	modes := []int64{0o644, 0o600, 0o755, 0o4755}
	for f := range 8 {
		data := make([]byte, rng.IntN(256<<10))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		write(&tar.Header{Name: fmt.Sprintf("%sf%d", root, f), Typeflag: tar.TypeReg,
			Mode: modes[f%len(modes)], Uid: f * 100, Gid: f * 10}, data)
	}

	write(&tar.Header{Name: root + "sub/data", Typeflag: tar.TypeReg, Mode: 0o640,
		PAXRecords: map[string]string{"SCHILY.xattr.user.reliability": strconv.Itoa(i)}},
		[]byte("xattr\n"))
	write(&tar.Header{Name: root + "link", Typeflag: tar.TypeSymlink, Linkname: "f0"}, nil)
	write(&tar.Header{Name: root + "hard", Typeflag: tar.TypeLink, Linkname: root + "f1"}, nil)
	write(&tar.Header{Name: root + "fifo", Typeflag: tar.TypeFifo, Mode: 0o600}, nil)

	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// relWriteLayers writes n small layers, gzip compressed, to cs and builds
// each one's expected tree with archive.Apply.
func relWriteLayers(ctx context.Context, t *testing.T, cs content.Store, n int) []relLayer {
	t.Helper()
	var layers []relLayer
	for i := range n {
		tarData := relSmallLayer(i)
		var blob bytes.Buffer
		gz := gzip.NewWriter(&blob)
		gz.Write(tarData)
		if err := gz.Close(); err != nil {
			t.Fatal(err)
		}
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip,
			Digest: digest.FromBytes(blob.Bytes()), Size: int64(blob.Len())}
		ref := "reliability-" + desc.Digest.Encoded()
		if err := content.WriteBlob(ctx, cs, ref, bytes.NewReader(blob.Bytes()), desc); err != nil {
			t.Fatalf("failed to write layer %d to containerd: %v", i, err)
		}

		dir := t.TempDir()
		if _, err := archive.Apply(ctx, dir, bytes.NewReader(tarData)); err != nil {
			t.Fatalf("archive.Apply of layer %d failed: %v", i, err)
		}
		want, err := manifest.Build(dir)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, relLayer{desc: desc, diffID: digest.FromBytes(tarData), want: want})
	}
	return layers
}

// relTargetDir returns the directory that mounts of a fresh snapshot write
// to: a bind mount's source or an overlay's upperdir.
func relTargetDir(mounts []mount.Mount) (string, error) {
	if len(mounts) == 1 && mounts[0].Type == "bind" {
		return mounts[0].Source, nil
	}
	if len(mounts) == 1 && mounts[0].Type == "overlay" {
		for _, o := range mounts[0].Options {
			if upper, ok := strings.CutPrefix(o, "upperdir="); ok {
				return upper, nil
			}
		}
	}
	return "", fmt.Errorf("no target directory in mounts %v", mounts)
}

// relDaemonStats are the leak counters of a daemon process.
type relDaemonStats struct {
	fds, threads, children, goroutines int
	rss                                int64
	// fdTargets lists the descriptors as "FD -> TARGET".
	fdTargets []string
}

func (s relDaemonStats) String() string {
	return fmt.Sprintf("descriptors %d, goroutines %d, threads %d, children %d, RSS %d KiB",
		s.fds, s.goroutines, s.threads, s.children, s.rss>>10)
}

// relReadStats reads the counters of process pid from /proc and its
// goroutine count from the go_goroutines metric at metricsAddress.
func relReadStats(t *testing.T, pid int, metricsAddress string) relDaemonStats {
	t.Helper()
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	fds, err := os.ReadDir(filepath.Join(proc, "fd"))
	if err != nil {
		t.Fatalf("failed to list descriptors of %d: %v", pid, err)
	}
	s := relDaemonStats{fds: len(fds), children: len(relChildrenOf(pid))}
	for _, fd := range fds {
		link, _ := os.Readlink(filepath.Join(proc, "fd", fd.Name()))
		s.fdTargets = append(s.fdTargets, fd.Name()+" -> "+link)
	}

	status, err := os.ReadFile(filepath.Join(proc, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, value, _ := strings.Cut(line, ":")
		fields := strings.Fields(value)
		switch {
		case key == "Threads" && len(fields) == 1:
			s.threads, _ = strconv.Atoi(fields[0])
		case key == "VmRSS" && len(fields) == 2:
			kib, _ := strconv.ParseInt(fields[0], 10, 64)
			s.rss = kib << 10
		}
	}

	// Without keep-alive, no connection of this scrape is open at the
	// next one and counted among the daemon's descriptors.
	scraper := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := scraper.Get("http://" + metricsAddress + "/metrics")
	if err != nil {
		t.Fatalf("failed to read the daemon's metrics: %v", err)
	}
	defer resp.Body.Close()
	scanner := bufio.NewScanner(resp.Body)
	for scanner.Scan() {
		if v, ok := strings.CutPrefix(scanner.Text(), "go_goroutines "); ok {
			s.goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if s.goroutines == 0 {
		t.Fatalf("the daemon's metrics have no go_goroutines line")
	}
	return s
}

// relFreeLoopbackAddress returns a 127.0.0.1 address with a port that was
// free a moment ago.
func relFreeLoopbackAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRelConcurrentApplies keeps relConcurrentClients applies running
// against a daemon configured for relMaxApplies at once, through the Diff
// gRPC API onto fresh overlayfs snapshots of a real containerd, and checks
// every tree, the limit and the daemon's resources afterwards.
func TestRelConcurrentApplies(t *testing.T) {
	e := setup(t)
	c := relStartProxyContainerd(t, e)
	metricsAddress := relFreeLoopbackAddress(t)
	d := relNewDaemon(t, e.products.Daemon, c.ProxySocket, c.Socket, fmt.Sprintf(
		"max_concurrent_applies = %d\nmetrics_address = %q\n", relMaxApplies, metricsAddress))

	ctx := namespaces.WithNamespace(context.Background(), relConcurrencyNS)
	client, err := containerd.New(c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, releaseLease, err := client.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseLease(context.WithoutCancel(ctx))
	layers := relWriteLayers(ctx, t, client.ContentStore(), relConcurrentClients)

	// Snapshots on an empty parent get overlay mounts, those without a
	// parent a bind mount, so both kinds of target are exercised.
	sn := client.SnapshotService("overlayfs")
	if _, err := sn.Prepare(ctx, "reliability-base-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "reliability-base", "reliability-base-active"); err != nil {
		t.Fatal(err)
	}

	conn, err := grpc.NewClient("unix://"+d.socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	differ := diffproxy.NewDiffApplier(diffapi.NewDiffClient(conn)).(diff.Applier)

	var seq atomic.Int64
	applyOne := func(l relLayer, parent string) error {
		key := fmt.Sprintf("reliability-%d", seq.Add(1))
		mounts, err := sn.Prepare(ctx, key, parent)
		if err != nil {
			return fmt.Errorf("failed to prepare snapshot %s: %w", key, err)
		}
		defer sn.Remove(context.WithoutCancel(ctx), key)
		dir, err := relTargetDir(mounts)
		if err != nil {
			return err
		}
		applied, err := differ.Apply(ctx, l.desc, mounts)
		if err != nil {
			return fmt.Errorf("apply of layer %s onto %s failed: %w", l.desc.Digest, key, err)
		}
		if applied.Digest != l.diffID {
			return fmt.Errorf("layer %s: diffID %s, want %s",
				l.desc.Digest, applied.Digest, l.diffID)
		}
		got, err := manifest.Build(dir)
		if err != nil {
			return err
		}
		// The snapshot's root directory is the snapshotter's, not the layer's.
		if diffs := manifest.Diff(relWithoutRoot(got), relWithoutRoot(l.want)); len(diffs) > 0 {
			return fmt.Errorf("layer %s onto %s differs from archive.Apply's tree: %s",
				l.desc.Digest, key, strings.Join(diffs, "; "))
		}
		return nil
	}

	// One apply first, so that connections and pools the daemon sets up
	// once are part of the starting level.
	if err := applyOne(layers[0], ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	before := relReadStats(t, d.pid(), metricsAddress)
	t.Logf("daemon before the load: %v", before)

	stopWatch := make(chan struct{})
	maxChildren := make(chan int, 1)
	go func() {
		maxSeen := 0
		for {
			maxSeen = max(maxSeen, len(relChildrenOf(d.pid())))
			select {
			case <-stopWatch:
				maxChildren <- maxSeen
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	deadline := time.Now().Add(relConcurrencyDuration())
	var (
		wg       sync.WaitGroup
		applies  atomic.Int64
		failures atomic.Int64
		errMu    sync.Mutex
		firstErr []error
	)
	for w := range relConcurrentClients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				parent := ""
				if (w+i)%2 == 1 {
					parent = "reliability-base"
				}
				err := applyOne(layers[(w+i)%len(layers)], parent)
				applies.Add(1)
				if err != nil {
					failures.Add(1)
					errMu.Lock()
					if len(firstErr) < 5 {
						firstErr = append(firstErr, err)
					}
					errMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(stopWatch)
	maxSeen := <-maxChildren

	after := relReadStats(t, d.pid(), metricsAddress)
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); {
		if after.goroutines <= before.goroutines+relGoroutineTolerance &&
			after.fds <= before.fds && after.children == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
		after = relReadStats(t, d.pid(), metricsAddress)
	}
	t.Logf("%d applies by %d clients in %v, %d failed, at most %d children at once",
		applies.Load(), relConcurrentClients, relConcurrencyDuration(), failures.Load(), maxSeen)
	t.Logf("daemon after the load:  %v", after)

	for _, err := range firstErr {
		t.Errorf("apply failed: %v", err)
	}
	if maxSeen > relMaxApplies {
		t.Errorf("the daemon ran %d children at once, more than max_concurrent_applies = %d",
			maxSeen, relMaxApplies)
	}
	if maxSeen < 2 {
		t.Errorf("at most %d child ran at a time, so the test never loaded the daemon", maxSeen)
	}
	if after.fds > before.fds {
		t.Errorf("open descriptors grew from %d to %d: before %q, after %q",
			before.fds, after.fds, before.fdTargets, after.fdTargets)
	}
	if after.goroutines > before.goroutines+relGoroutineTolerance {
		t.Errorf("goroutines grew from %d to %d, more than the tolerance of %d",
			before.goroutines, after.goroutines, relGoroutineTolerance)
	}
	if after.children != 0 {
		t.Errorf("%d child processes left after the load", after.children)
	}
	if after.rss > before.rss+relRSSTolerance {
		t.Errorf("RSS grew from %d KiB to %d KiB, more than the %d MiB tolerance",
			before.rss>>10, after.rss>>10, relRSSTolerance>>20)
	}
}

// relWithoutRoot returns m without its root entry.
func relWithoutRoot(m manifest.Manifest) manifest.Manifest {
	var out manifest.Manifest
	for _, e := range m.Entries {
		if e.Path != "." {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}
