package main

import (
	"encoding/json"
	"fmt"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	"github.com/urfave/cli/v2"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	"github.com/chroot-applier/containerd-chroot-applier/blobfile"
)

var applyCommand = &cli.Command{
	Name:      "apply",
	Usage:     "apply a layer file to a directory or an overlay upperdir",
	ArgsUsage: "LAYER",
	Description: "Applies LAYER with the daemon's code path and prints the result as JSON.\n" +
		"   With --target the layer is applied to a directory holding the lower layers, so\n" +
		"   whiteouts delete. With --upperdir it is applied to an overlay upperdir, " +
		"so whiteouts\n" +
		"   become overlay whiteouts and --lowerdir supplies the lower layers.",
	Flags: []cli.Flag{
		&cli.StringFlag{
			Name:  "media-type",
			Usage: "media type of LAYER (default: detected as gzip, zstd or tar)",
		},
		&cli.StringFlag{
			Name:  "target",
			Usage: "directory to apply the layer to",
		},
		&cli.StringFlag{
			Name:  "upperdir",
			Usage: "overlay upperdir to apply the layer to",
		},
		&cli.StringFlag{
			Name:  "lowerdir",
			Usage: "overlay lowerdirs below --upperdir, colon-separated, uppermost first",
		},
		&cli.StringFlag{
			Name:  "log-level",
			Usage: "log level on stderr: trace, debug, info, warn or error",
			Value: "warn",
		},
	},
	Action: apply,
}

// applyOutput is the apply command's JSON result.
type applyOutput struct {
	// Digest is the digest of the layer file.
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	// DiffID is the digest of the uncompressed tar.
	DiffID           digest.Digest `json:"diffID"`
	Size             int64         `json:"size"`
	UncompressedSize int64         `json:"uncompressedSize"`
	Entries          int64         `json:"entries"`
	// Duration is the apply's wall time in Go's duration format.
	Duration string `json:"duration"`
	// Root is the child's confinement method: pivot_root or chroot.
	Root string `json:"root"`
	// Target is the kind of target: bind or overlay.
	Target string `json:"target"`
}

func apply(c *cli.Context) error {
	if err := checkRoot("apply"); err != nil {
		return err
	}
	if c.NArg() != 1 {
		return fmt.Errorf("apply takes one LAYER argument, got %d: %w",
			c.NArg(), errdefs.ErrInvalidArgument)
	}
	if err := log.SetLevel(c.String("log-level")); err != nil {
		return err
	}
	mounts, err := applyMounts(c.String("target"), c.String("upperdir"), c.String("lowerdir"))
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	layer, err := blobfile.OpenLayer(ctx, c.Args().First(), c.String("media-type"))
	if err != nil {
		return err
	}
	desc := layer.Descriptor()
	res, err := applier.New(layer).ApplyLayer(ctx, desc, mounts)
	if err != nil {
		return err
	}

	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(applyOutput{
		Digest:           desc.Digest,
		MediaType:        desc.MediaType,
		DiffID:           res.Diff.Digest,
		Size:             desc.Size,
		UncompressedSize: res.Diff.Size,
		Entries:          res.Entries,
		Duration:         res.Duration.String(),
		Root:             res.Root,
		Target:           res.Target,
	})
}

// applyMounts returns the mounts containerd would pass for the target: a
// bind mount of a directory, or an overlay mount with upperdir and lowerdir
// options.
func applyMounts(target, upperdir, lowerdir string) ([]mount.Mount, error) {
	switch {
	case target != "" && upperdir != "":
		return nil, fmt.Errorf("give either --target or --upperdir, not both: %w",
			errdefs.ErrInvalidArgument)
	case target == "" && upperdir == "":
		return nil, fmt.Errorf("give --target or --upperdir: %w", errdefs.ErrInvalidArgument)
	case target != "" && lowerdir != "":
		return nil, fmt.Errorf("--lowerdir needs --upperdir: %w", errdefs.ErrInvalidArgument)
	}

	if target != "" {
		dir, err := filepath.Abs(target)
		if err != nil {
			return nil, err
		}
		return []mount.Mount{{Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}}, nil
	}
	upper, err := filepath.Abs(upperdir)
	if err != nil {
		return nil, err
	}
	options := []string{"upperdir=" + upper}
	if lowerdir != "" {
		var lowers []string
		for _, dir := range strings.Split(lowerdir, ":") {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return nil, err
			}
			lowers = append(lowers, abs)
		}
		options = append(options, "lowerdir="+strings.Join(lowers, ":"))
	}
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: options}}, nil
}
