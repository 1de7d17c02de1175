package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	full := `
address = "/tmp/x/applier.sock"
containerd_address = "/tmp/x/containerd.sock"
log_level = "debug"
log_format = "json"
max_concurrent_applies = 2
content_root = ""
default_namespace = "k8s.io"
shutdown_timeout = "5s"
metrics_address = "127.0.0.1:9101"

[stream_processors."io.containerd.ocicrypt.decoder.v1.tar"]
accepts = ["application/vnd.oci.image.layer.v1.tar+encrypted"]
returns = "application/vnd.oci.image.layer.v1.tar"
path = "ctd-decoder"
args = ["--decryption-keys-path", "/etc/keys"]
env = ["A=b"]
`
	want := Config{
		Address:              "/tmp/x/applier.sock",
		ContainerdAddress:    "/tmp/x/containerd.sock",
		LogLevel:             "debug",
		LogFormat:            "json",
		MaxConcurrentApplies: 2,
		ContentRoot:          "",
		DefaultNamespace:     "k8s.io",
		ShutdownTimeout:      5 * time.Second,
		MetricsAddress:       "127.0.0.1:9101",
	}

	c, err := Load(writeConfig(t, full), true)
	if err != nil {
		t.Fatal(err)
	}
	p := c.StreamProcessors["io.containerd.ocicrypt.decoder.v1.tar"]
	c.StreamProcessors = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load() = %+v, want %+v", c, want)
	}
	if p.Path != "ctd-decoder" || p.Returns != "application/vnd.oci.image.layer.v1.tar" ||
		len(p.Accepts) != 1 || len(p.Args) != 2 || len(p.Env) != 1 {
		t.Errorf("stream processor = %+v", p)
	}
}

func TestLoadDefaults(t *testing.T) {
	tests := []struct {
		name     string
		path     func(t *testing.T) string
		explicit bool
	}{
		{"missing default file gives defaults", func(t *testing.T) string {
			return filepath.Join(t.TempDir(), "absent.toml")
		}, false},
		{"empty file gives defaults", func(t *testing.T) string {
			return writeConfig(t, "")
		}, true},
		{"omitted keys keep their defaults", func(t *testing.T) string {
			return writeConfig(t, "# comment only\n")
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path(t), tt.explicit)
			if err != nil {
				t.Fatal(err)
			}
			if c.Address != DefaultAddress || c.ContentRoot != ContentRootAuto ||
				c.MaxConcurrentApplies != 4 || c.ShutdownTimeout != 30*time.Second {
				t.Errorf("Load() = %+v, want the defaults %+v", c, Default())
			}
			if err := c.Validate(); err != nil {
				t.Errorf("defaults do not validate: %v", err)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		explicit bool
		missing  bool
		kind     func(error) bool
		contains []string
	}{
		{name: "missing explicit file is an error", missing: true, explicit: true,
			kind: errdefs.IsNotFound, contains: []string{"absent.toml"}},
		{name: "unknown keys are named", text: "adress = \"/x\"\n[metrics]\nport = 1\n",
			kind: errdefs.IsInvalidArgument, contains: []string{"adress", "metrics.port"}},
		{name: "unknown stream processor key is named",
			text: "[stream_processors.x]\npath = \"p\"\nreturn = \"t\"\n",
			kind: errdefs.IsInvalidArgument, contains: []string{"stream_processors.x.return"}},
		{name: "bad duration is an error", text: "shutdown_timeout = \"soon\"\n",
			kind: func(error) bool { return true }, contains: []string{"soon"}},
		{name: "wrong type is an error", text: "max_concurrent_applies = \"four\"\n",
			kind: func(error) bool { return true }, contains: []string{"max_concurrent_applies"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.toml")
			if !tt.missing {
				path = writeConfig(t, tt.text)
			}
			_, err := Load(path, tt.explicit)
			if err == nil {
				t.Fatal("Load() succeeded, want an error")
			}
			if !tt.kind(err) {
				t.Errorf("Load() error %v has the wrong errdefs kind", err)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Load() error %q does not name %q", err, s)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		names  string
	}{
		{"empty address", func(c *Config) { c.Address = "" }, "address"},
		{"unknown log level", func(c *Config) { c.LogLevel = "verbose" }, "log_level"},
		{"unknown log format", func(c *Config) { c.LogFormat = "xml" }, "log_format"},
		{"zero concurrency", func(c *Config) { c.MaxConcurrentApplies = 0 },
			"max_concurrent_applies"},
		{"negative timeout", func(c *Config) { c.ShutdownTimeout = -time.Second },
			"shutdown_timeout"},
		{"invalid namespace", func(c *Config) { c.DefaultNamespace = "no spaces" },
			"default_namespace"},
		{"processor without path", func(c *Config) {
			c.StreamProcessors = map[string]StreamProcessor{
				"p": {Accepts: []string{"a"}, Returns: "b"}}
		}, "path is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Validate() = %v, want an invalid argument error", err)
			}
			if !strings.Contains(err.Error(), tt.names) {
				t.Errorf("Validate() error %q does not name %q", err, tt.names)
			}
		})
	}
}

func TestContribConfigIsDefault(t *testing.T) {
	c, err := Load(filepath.Join("..", "contrib", "config.toml"), true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("contrib/config.toml gives %+v, want the defaults %+v", c, Default())
	}
}
