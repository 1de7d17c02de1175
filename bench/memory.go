package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// warmCommand is the hidden subcommand that touches memory and frees it.
const warmCommand = "__warm"

// warmMemory touches fresh anonymous memory and frees it again right before
// a timed apply of in, so that the apply writes its files into memory that
// the virtual machine's host backs at that moment. Both sides get the same.
//
// The machine of the published results reports freed memory to its host:
// its virtio-balloon device offers free page reporting, which Linux uses for
// free blocks of 2 MiB and more, 2 s after they are freed. The host can then
// release those pages, and the next touch of one costs a fault on the host.
// Writing 1 GiB with dd took 1.5 to 2.9 s on that machine into such memory
// and 0.30 to 0.41 s right after warming 3000 MiB. Without warming, the
// timing depended on how much of the page cache the kernel took from
// reported memory, and so on the size of its folios rather than on the
// applier: 1 MiB writes suffered more than 32 KiB writes.
//
// The memory is touched in a process of its own. A process started from one
// whose peak RSS is high inherits that peak in its own accounting, which
// would spoil the RSS of the apply subprocess and of our child.
func warmMemory(ctx context.Context, in input) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	size := warmSize(in)
	out, err := exec.CommandContext(ctx, self, warmCommand,
		strconv.FormatInt(size, 10)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("failed to warm %d bytes of memory: %v: %s", size, err, out)
	}
	return nil
}

// warmSize is the memory warmed before an apply of in: twice its
// uncompressed size, for the page cache of its files and what the applier
// allocates, plus 256 MiB for metadata. It is capped at half the free
// memory, so that warming never pushes the blob out of the page cache.
func warmSize(in input) int64 {
	size := 2*in.Uncompressed + 256<<20
	var info unix.Sysinfo_t
	if err := unix.Sysinfo(&info); err == nil {
		size = min(size, int64(info.Freeram)*int64(info.Unit)/2)
	}
	return size
}

// runWarmCommand is the body of the hidden subcommand: it maps the number of
// bytes given as its argument, touches every page and unmaps them.
func runWarmCommand(args []string) {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: %s BYTES\n", warmCommand)
		os.Exit(2)
	}
	size, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || size <= 0 {
		fmt.Fprintf(os.Stderr, "invalid size %q: want a positive number of bytes\n", args[0])
		os.Exit(2)
	}
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		fmt.Fprintf(os.Stderr, "failed to map %d bytes: %v\n", size, err)
		os.Exit(1)
	}
	if err := unix.Munmap(mem); err != nil {
		fmt.Fprintf(os.Stderr, "failed to unmap %d bytes: %v\n", size, err)
		os.Exit(1)
	}
}
