package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthapi "google.golang.org/grpc/health/grpc_health_v1"
)

// notifySocket is a NOTIFY_SOCKET that records the states a daemon sends.
type notifySocket struct {
	path   string
	conn   *net.UnixConn
	states chan string
}

func newNotifySocket(t *testing.T, dir string) *notifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, conn: conn, states: make(chan string, 16)}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.states)
				return
			}
			n.states <- string(buf[:k])
		}
	}()
	return n
}

func (n *notifySocket) expect(t *testing.T, state string) {
	t.Helper()
	select {
	case got := <-n.states:
		if got != state {
			t.Errorf("notify socket received %q, want %q", got, state)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("notify socket received nothing within 10s, want %q", state)
	}
}

// daemon is a serve process started by startServe.
type daemon struct {
	cmd    *exec.Cmd
	output *bytes.Buffer
	// done is closed when the process has exited, and err is then its
	// exit status.
	done chan struct{}
	err  error
}

func startServe(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{output: &bytes.Buffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(binary, append([]string{"serve"}, args...)...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.output, d.output
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

func (d *daemon) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-d.done:
		return d.err
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		t.Fatalf("serve did not exit within 20s\n%s", d.output.Bytes())
		return nil
	}
}

func waitForSocket(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.Dial("unix", path); err == nil {
			conn.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing accepts connections on %s", path)
}

func TestServeLifecycle(t *testing.T) {
	if _, err := os.Stat("/etc/containerd-chroot-applier/config.toml"); err == nil {
		t.Skip("the default config file exists on this host, and this test needs it absent")
	}
	dir := t.TempDir()
	socket := filepath.Join(dir, "run", "applier.sock")
	notify := newNotifySocket(t, dir)

	d := startServe(t, []string{"NOTIFY_SOCKET=" + notify.path},
		"--address", socket, "--containerd-address", filepath.Join(dir, "containerd.sock"),
		"--log-format", "json")
	notify.expect(t, "READY=1")

	for path, want := range map[string]os.FileMode{filepath.Dir(socket): 0o700, socket: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %o, want %o", path, fi.Mode().Perm(), want)
		}
	}
	waitForSocket(t, socket)
	checkHealth(t, socket)

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	notify.expect(t, "STOPPING=1")
	if err := d.wait(t); err != nil {
		t.Errorf("serve exited with %v after SIGTERM, want 0\n%s", err, d.output.Bytes())
	}
	if _, err := os.Lstat(socket); err == nil {
		t.Error("socket is still present after exit")
	}
	logs := d.output.String()
	for _, want := range []string{`"msg":"serving diff service"`, `"version":"v9.8.7"`,
		`"address":"` + socket + `"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log does not contain %s\n%s", want, logs)
		}
	}
}

func TestServeReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "applier.sock")
	// A socket left by a daemon that was killed: nothing listens on it.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(socket); err != nil {
		t.Fatalf("stale socket was not left behind: %v", err)
	}
	config := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	d := startServe(t, nil, "--address", socket, "--config", config,
		"--containerd-address", filepath.Join(dir, "containerd.sock"))
	waitForSocket(t, socket)
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(t); err != nil {
		t.Errorf("serve exited with %v, want 0\n%s", err, d.output.Bytes())
	}
}

func TestServeConfigFile(t *testing.T) {
	dir := t.TempDir()
	fileSocket := filepath.Join(dir, "from-file.sock")
	flagSocket := filepath.Join(dir, "from-flag.sock")
	config := filepath.Join(dir, "config.toml")
	text := "address = \"" + fileSocket + "\"\n" +
		"containerd_address = \"" + filepath.Join(dir, "containerd.sock") + "\"\n" +
		"log_level = \"debug\"\nlog_format = \"json\"\n"
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	notify := newNotifySocket(t, dir)

	d := startServe(t, []string{"NOTIFY_SOCKET=" + notify.path},
		"--config", config, "--address", flagSocket)
	notify.expect(t, "READY=1")
	waitForSocket(t, flagSocket)
	if _, err := os.Lstat(fileSocket); err == nil {
		t.Error("serve listens on the file's address, want the flag's")
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.wait(t)

	logs := d.output.String()
	// Only log_level = "debug" from the file lets this line through.
	if !strings.Contains(logs, `"msg":"notified systemd"`) {
		t.Errorf("log has no debug line, so log_level from the file was not used\n%s", logs)
	}
	if !strings.Contains(logs, `"config":"`+config+`"`) {
		t.Errorf("log does not name the config file\n%s", logs)
	}
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.toml")
	if err := os.WriteFile(unknown, []byte("adress = \"/x.sock\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badLevel := filepath.Join(dir, "level.toml")
	if err := os.WriteFile(badLevel, []byte("log_level = \"loud\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "applier.sock")

	tests := []struct {
		name     string
		args     []string
		contains string
	}{
		{"unknown key is named", []string{"--config", unknown}, "adress"},
		{"missing explicit config file", []string{"--config", filepath.Join(dir, "absent.toml")},
			"absent.toml: not found"},
		{"invalid log level from the file", []string{"--config", badLevel}, "log_level \"loud\""},
		{"invalid log format from a flag", []string{"--config", badLevel, "--log-level", "info",
			"--log-format", "yaml"}, "log_format \"yaml\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startServe(t, nil, append(tt.args, "--address", socket)...)
			if err := d.wait(t); err == nil {
				t.Fatal("serve exited 0, want an error")
			}
			if !strings.Contains(d.output.String(), tt.contains) {
				t.Errorf("output %q does not contain %q", d.output.String(), tt.contains)
			}
			if _, err := os.Lstat(socket); err == nil {
				t.Error("serve created its socket despite the error")
			}
		})
	}
}

// checkHealth fails the test unless the gRPC health service on socket
// reports SERVING.
func checkHealth(t *testing.T, socket string) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthapi.NewHealthClient(conn).Check(ctx, &healthapi.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	if resp.Status != healthapi.HealthCheckResponse_SERVING {
		t.Errorf("health status = %s, want SERVING", resp.Status)
	}
}
