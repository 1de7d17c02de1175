package server

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestListen(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "run", "applier.sock")
	l, err := Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{filepath.Dir(socket): 0o700, socket: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %o, want %o", path, fi.Mode().Perm(), want)
		}
	}

	// A second daemon on the same address must not take the socket away.
	if _, err := Listen(socket); !errdefs.IsAlreadyExists(err) {
		t.Errorf("Listen on a served socket = %v, want an already exists error", err)
	}
	l.Close()
	if _, err := os.Lstat(socket); err == nil {
		t.Error("socket is still present after Close")
	}
}

func TestListenStaleSocket(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "applier.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	l, err := Listen(socket)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer l.Close()
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatalf("new socket does not accept connections: %v", err)
	}
	conn.Close()
}

func TestListenKeepsOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "applier.sock")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); !errdefs.IsAlreadyExists(err) {
		t.Errorf("Listen on a regular file = %v, want an already exists error", err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "data" {
		t.Errorf("regular file was changed: %q, %v", data, err)
	}
}
