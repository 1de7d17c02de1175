package plugin

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	bolt "go.etcd.io/bbolt"
)

func TestRegistration(t *testing.T) {
	var found bool
	for _, r := range registry.Graph(func(*plugin.Registration) bool { return false }) {
		if r.Type != plugins.DiffPlugin || r.ID != ID {
			continue
		}
		found = true
		if r.URI() != "io.containerd.differ.v1.chroot" {
			t.Errorf("URI = %s, want io.containerd.differ.v1.chroot", r.URI())
		}
		if !requires(r.Requires, plugins.MetadataPlugin) {
			t.Errorf("Requires = %v, want %s among them", r.Requires, plugins.MetadataPlugin)
		}
		cfg, ok := r.Config.(*Config)
		if !ok {
			t.Fatalf("Config is %T, want *Config", r.Config)
		}
		if !cfg.UseMountManager {
			t.Error("use_mount_manager defaults to false, want true")
		}
		if r.InitFn == nil {
			t.Error("InitFn is nil")
		}
	}
	if !found {
		t.Fatalf("no %s plugin with ID %q is registered", plugins.DiffPlugin, ID)
	}
}

func requires(types []plugin.Type, want plugin.Type) bool {
	for _, ty := range types {
		if ty == want {
			return true
		}
	}
	return false
}

func TestInitWithMetadata(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cs, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	mdb := metadata.NewDB(db, cs, nil)

	set := plugin.NewPluginSet()
	metadataPlugin := plugin.Registration{
		Type:   plugins.MetadataPlugin,
		ID:     "bolt",
		InitFn: func(*plugin.InitContext) (any, error) { return mdb, nil },
	}
	metadataContext := plugin.NewContext(context.Background(), set, nil)
	if err := set.Add(metadataPlugin.Init(metadataContext)); err != nil {
		t.Fatal(err)
	}

	ic := plugin.NewContext(context.Background(), set, nil)
	ic.Config = &Config{UseMountManager: true}
	instance, err := initApplier(ic)
	if err != nil {
		t.Fatalf("init without a mount manager: %v", err)
	}
	// containerd's diff service rejects a differ that is not both.
	if _, ok := instance.(diff.Applier); !ok {
		t.Errorf("instance %T is not a diff.Applier", instance)
	}
	if _, ok := instance.(diff.Comparer); !ok {
		t.Errorf("instance %T is not a diff.Comparer", instance)
	}
	if len(ic.Meta.Platforms) == 0 {
		t.Error("no platform is declared")
	}
}
