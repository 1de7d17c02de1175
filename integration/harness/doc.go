// Package harness runs real containerd daemons, the chroot applier daemon and
// a loopback OCI registry in a throwaway directory. The integration tests and
// the demo use it to pull images through the applier and to compare the
// snapshots it produces with those of containerd's walking differ.
//
// Every process the harness starts listens on a unix socket inside its own
// temporary directory or on 127.0.0.1, and is stopped by PID when the test or
// program that started it cleans up. Nothing touches the host's containerd.
package harness
