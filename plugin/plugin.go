// Package plugin registers the chroot applier as a containerd diff plugin,
// for containerd builds that compile it in.
//
// Importing the package for its side effect is enough:
//
//	import _ "github.com/chroot-applier/containerd-chroot-applier/plugin"
//
// The plugin has the type io.containerd.differ.v1 and the ID "chroot". It
// reads blobs from containerd's metadata content store, so every request is
// served in its own namespace, and it uses the mount manager when containerd
// has one. Select it in the containerd configuration, for example with
// default = ["chroot", "walking"] in the diff service's settings.
package plugin

import (
	"errors"

	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/platforms"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
)

// ID is the plugin's ID, the name by which containerd's configuration
// refers to it.
const ID = "chroot"

// Config is the plugin's configuration, in the [plugins."io.containerd.differ.v1.chroot"]
// table of containerd's configuration file.
type Config struct {
	// UseMountManager activates mount lists of more than one mount through
	// containerd's mount manager before applying, as the walking differ
	// does. It defaults to true and has no effect when containerd has no
	// mount manager.
	UseMountManager bool `toml:"use_mount_manager"`
}

func init() {
	registry.Register(&plugin.Registration{
		Type: plugins.DiffPlugin,
		ID:   ID,
		Requires: []plugin.Type{
			plugins.MetadataPlugin,
			plugins.MountManagerPlugin,
		},
		Config: &Config{UseMountManager: true},
		InitFn: initApplier,
	})
}

func initApplier(ic *plugin.InitContext) (any, error) {
	md, err := ic.GetSingle(plugins.MetadataPlugin)
	if err != nil {
		return nil, err
	}
	cfg := ic.Config.(*Config)

	var opts []applier.Option
	if cfg.UseMountManager {
		mm, err := ic.GetSingle(plugins.MountManagerPlugin)
		switch {
		case err == nil:
			opts = append(opts, applier.WithMountManager(mm.(mount.Manager)))
		case !errors.Is(err, plugin.ErrPluginNotFound):
			return nil, err
		}
	}

	ic.Meta.Platforms = append(ic.Meta.Platforms, platforms.DefaultSpec())
	return applier.New(md.(*metadata.DB).ContentStore(), opts...), nil
}
