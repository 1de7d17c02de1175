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

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"

	"github.com/chroot-applier/containerd-chroot-applier/internal/version"
)

func main() {
	raiseGOMAXPROCS()
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

// checkRoot fails unless the process runs as root: the applier's child
// creates a mount namespace and sets the owners the layer names, which
// otherwise fails later with a bare "operation not permitted".
func checkRoot(command string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s must run as root: it applies layers in a child that creates "+
			"a mount namespace and sets file owners: %w", command, errdefs.ErrFailedPrecondition)
	}
	return nil
}
