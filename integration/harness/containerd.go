package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Config describes a containerd to start.
type Config struct {
	// Mode selects which differs the containerd uses.
	Mode Mode
	// Binary is the containerd executable: stock containerd for Reference
	// and Proxy, the build with the plugin compiled in for CompiledIn.
	Binary string
	// Tools supplies ctr and crictl.
	Tools Tools
	// RegistryHost is the host:port of a loopback registry that CRI pulls
	// from over plain HTTP, or "" for none.
	RegistryHost string
}

// Containerd is a running containerd in its own temporary directory.
type Containerd struct {
	// Mode is the mode the containerd was started in.
	Mode Mode
	// Dir is the temporary directory holding everything below.
	Dir string
	// Root and State are containerd's root and state directories.
	Root, State string
	// Socket is containerd's gRPC socket, which also serves CRI.
	Socket string
	// ProxySocket is the socket the proxy diff plugin dials, in Proxy mode.
	ProxySocket string
	// Log is the file that receives containerd's JSON debug log.
	Log string

	tools Tools
	cmd   *exec.Cmd
	done  <-chan struct{}
}

// StartContainerd starts a containerd for cfg and waits until its socket
// accepts connections. The process is stopped, anything still mounted under
// its root is unmounted and its directory is removed when tb cleans up.
func StartContainerd(ctx context.Context, tb TB, cfg Config) (*Containerd, error) {
	// A short directory name keeps socket paths within the 108 bytes a unix
	// socket address allows.
	dir, err := os.MkdirTemp("", "cca-")
	if err != nil {
		return nil, err
	}
	c := &Containerd{
		Mode:        cfg.Mode,
		Dir:         dir,
		Root:        filepath.Join(dir, "root"),
		State:       filepath.Join(dir, "state"),
		Socket:      filepath.Join(dir, "c.sock"),
		ProxySocket: filepath.Join(dir, "applier.sock"),
		Log:         filepath.Join(dir, "containerd.log"),
		tools:       cfg.Tools,
	}
	if cfg.Mode != Proxy {
		c.ProxySocket = ""
	}
	config, err := writeConfig(c, cfg.RegistryHost)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("failed to write containerd config: %w", err)
	}
	if err := writeCrictlConfig(c); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("failed to write crictl config: %w", err)
	}
	logFile, err := os.Create(c.Log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()

	c.cmd = exec.Command(cfg.Binary, "--config", config)
	c.cmd.Stdout = logFile
	c.cmd.Stderr = logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done, err := StartKeepingThread(c.cmd)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("failed to start %s: %w", cfg.Binary, err)
	}
	c.done = done
	tb.Cleanup(func() { c.stop(tb) })

	if err := WaitSocket(ctx, c.Socket, c.done, 60*time.Second); err != nil {
		return nil, fmt.Errorf("containerd (%s) did not start: %w\n%s", c.Mode, err, Tail(c.Log))
	}
	tb.Logf("containerd (%s) running in %s, pid %d", c.Mode, dir, c.cmd.Process.Pid)
	return c, nil
}

// stop ends the containerd by PID: SIGTERM, then SIGKILL after ten seconds.
func (c *Containerd) stop(tb TB) {
	StopProcess(c.cmd.Process, c.done)
	if err := unmountUnder(c.Root); err != nil {
		tb.Logf("keeping %s: %v", c.Dir, err)
		return
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		tb.Logf("failed to remove %s: %v", c.Dir, err)
	}
}

// StopProcess sends SIGTERM to p, and SIGKILL if it has not exited (done is
// closed) within ten seconds.
func StopProcess(p *os.Process, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.Kill()
		<-done
	}
}

// WaitSocket waits until a connection to the unix socket path succeeds,
// exited is closed or timeout passes.
func WaitSocket(ctx context.Context, path string, exited <-chan struct{},
	timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.Dial("unix", path)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("process exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, path)
		}
	}
}

// Tail returns the last 4 KiB of the file at path, for error messages.
func Tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}
