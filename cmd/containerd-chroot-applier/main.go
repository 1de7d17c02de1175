// Command containerd-chroot-applier applies container image layers in a
// confined child process.
//
// "serve" runs the daemon that stock containerd 2.x uses as a proxy diff
// plugin, "apply" applies one layer file to a directory without containerd,
// and "version" prints the build's version. This package only parses flags,
// loads the configuration and sets up logging; the work is done in packages
// server, applier and blobfile.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/chroot-applier/containerd-chroot-applier/internal/version"
)

func main() {
	app := &cli.App{
		Name:    "containerd-chroot-applier",
		Usage:   "apply container image layers in a confined child process",
		Version: version.Version,
		Commands: []*cli.Command{
			serveCommand,
			applyCommand,
			versionCommand,
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", app.Name, err)
		os.Exit(1)
	}
}
