package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/log"
	"github.com/urfave/cli/v2"

	"github.com/chroot-applier/containerd-chroot-applier/config"
	"github.com/chroot-applier/containerd-chroot-applier/server"
)

var serveCommand = &cli.Command{
	Name:  "serve",
	Usage: "serve containerd's Diff service on a unix socket, for use as a proxy diff plugin",
	Flags: []cli.Flag{
		&cli.StringFlag{
			Name:  "address",
			Usage: "path of the unix socket to serve on",
			Value: config.DefaultAddress,
		},
		&cli.StringFlag{
			Name:  "containerd-address",
			Usage: "path of containerd's gRPC socket, used to read layer blobs",
			Value: config.DefaultContainerdAddress,
		},
		&cli.StringFlag{
			Name:  "config",
			Usage: "path of the TOML configuration file, which may be missing unless given",
			Value: config.DefaultPath,
		},
		&cli.StringFlag{
			Name:  "log-level",
			Usage: "log level: trace, debug, info, warn or error",
			Value: "info",
		},
		&cli.StringFlag{
			Name:  "log-format",
			Usage: "log format: text or json",
			Value: "text",
		},
	},
	Action: serve,
}

func serve(c *cli.Context) error {
	if err := checkRoot("serve"); err != nil {
		return err
	}
	configFile := c.String("config")
	cfg, err := config.Load(configFile, c.IsSet("config"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(configFile); err != nil {
		configFile = ""
	}

	if c.IsSet("address") {
		cfg.Address = c.String("address")
	}
	if c.IsSet("containerd-address") {
		cfg.ContainerdAddress = c.String("containerd-address")
	}
	if c.IsSet("log-level") {
		cfg.LogLevel = c.String("log-level")
	}
	if c.IsSet("log-format") {
		cfg.LogFormat = c.String("log-format")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}

	if err := log.SetLevel(cfg.LogLevel); err != nil {
		return err
	}
	if err := log.SetFormat(log.OutputFormat(cfg.LogFormat)); err != nil {
		return err
	}
	cfg.RegisterStreamProcessors()

	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return server.Run(ctx, cfg, configFile)
}
