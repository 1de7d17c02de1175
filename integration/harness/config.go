package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mode selects how a containerd under test applies layers.
type Mode int

const (
	// Reference is stock containerd with only the walking differ, the
	// behaviour the applier is compared against.
	Reference Mode = iota
	// Proxy is stock containerd with the applier daemon configured as the
	// proxy diff plugin "chroot", first in the diff service's order and the
	// differ of the transfer service's unpack configuration.
	Proxy
	// CompiledIn is containerd built with the chroot diff plugin compiled
	// in, configured like Proxy but without a proxy plugin.
	CompiledIn
)

// String returns the mode's name as it appears in logs.
func (m Mode) String() string {
	switch m {
	case Reference:
		return "reference"
	case Proxy:
		return "proxy"
	case CompiledIn:
		return "compiled-in"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// disabledPlugins are plugins the tests do not need and that would touch
// host paths or start exporters.
var disabledPlugins = []string{
	"io.containerd.nri.v1.nri",
	"io.containerd.internal.v1.tracing",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.blockfile",
	"io.containerd.snapshotter.v1.erofs",
	"io.containerd.differ.v1.erofs",
}

// writeConfig writes containerd's configuration (version 3) for c and the
// registry hosts directory that lets CRI pull from registryHost over plain
// HTTP, and returns the configuration file's path.
func writeConfig(c *Containerd, registryHost string) (string, error) {
	hostsDir := filepath.Join(c.Dir, "certs.d")
	if registryHost != "" {
		dir := filepath.Join(hostsDir, registryHost)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n",
			"http://"+registryHost, "http://"+registryHost)
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
			return "", err
		}
	}

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("version = 3")
	p("root = %q", c.Root)
	p("state = %q", c.State)
	p("disabled_plugins = [%s]", quoteList(disabledPlugins))
	p("")
	p("[grpc]\n  address = %q", c.Socket)
	p("[ttrpc]\n  address = %q", c.Socket+".ttrpc")
	p("[debug]\n  level = \"debug\"\n  format = \"json\"")
	p("")

	differs := []string{"walking"}
	unpackDiffer := "walking"
	if c.Mode != Reference {
		differs = []string{"chroot", "walking"}
		unpackDiffer = "chroot"
	}
	if c.Mode == Proxy {
		p("[proxy_plugins.chroot]\n  type = \"diff\"\n  address = %q\n", c.ProxySocket)
	}
	p("[plugins.\"io.containerd.service.v1.diff-service\"]\n  default = [%s]\n", quoteList(differs))
	p("[plugins.\"io.containerd.transfer.v1.local\"]\n  config_path = %q", hostsDir)
	p("[[plugins.\"io.containerd.transfer.v1.local\".unpack_config]]")
	p("  platform = \"linux/amd64\"\n  snapshotter = \"overlayfs\"\n  differ = %q\n", unpackDiffer)
	p("[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %q\n", filepath.Join(c.Dir, "opt"))
	p("[plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"overlayfs\"")
	p("[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = %q\n", hostsDir)
	p("[plugins.\"io.containerd.cri.v1.runtime\"]\n  netns_mounts_under_state_dir = true")

	path := filepath.Join(c.Dir, "config.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

func quoteList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(quoted, ", ")
}

// writeCrictlConfig points crictl at c's CRI endpoint, so that it never
// reads the host's /etc/crictl.yaml.
func writeCrictlConfig(c *Containerd) error {
	endpoint := "unix://" + c.Socket
	config := fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 300\n",
		endpoint, endpoint)
	return os.WriteFile(filepath.Join(c.Dir, "crictl.yaml"), []byte(config), 0o644)
}
