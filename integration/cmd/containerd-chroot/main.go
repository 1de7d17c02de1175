// Command containerd-chroot is containerd v2.4.2 with the chroot diff plugin
// compiled in: containerd's own main, plus a blank import of the plugin
// package.
//
// Its main never calls reexec.Init. The applier's confined child still
// starts from this binary, because the applier package dispatches it from its
// own init function. The integration tests pull images through this binary
// to prove that.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/cmd/containerd/command"

	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins"

	_ "github.com/chroot-applier/containerd-chroot-applier/plugin"
)

func main() {
	if err := command.App().Run(context.Background(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "containerd:", err)
		os.Exit(1)
	}
}
