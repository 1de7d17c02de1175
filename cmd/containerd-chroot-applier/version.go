package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/chroot-applier/containerd-chroot-applier/internal/version"
)

var versionCommand = &cli.Command{
	Name:  "version",
	Usage: "print the version and commit of this build",
	Action: func(c *cli.Context) error {
		_, err := fmt.Fprintf(c.App.Writer, "%s %s\ncommit: %s\ngo: %s\n",
			c.App.Name, version.Version, version.Commit, runtime.Version())
		return err
	},
}
