// Package integration holds end-to-end tests of the chroot applier in real
// containerd daemons, as a proxy plugin and compiled in. The tests pull
// images from a loopback registry with ctr and crictl, and compare every
// unpacked snapshot with what containerd's walking differ produces.
//
// The tests need root and overlayfs. They build containerd v2.4.2, ctr and
// crictl with go install on first use (see package harness), and the Debian
// fixture with debootstrap.
package integration
