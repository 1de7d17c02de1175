// Package config loads the daemon's TOML configuration file.
//
// The file is optional: a daemon started without one runs with Default.
// Keys the daemon does not know are an error, so that a misspelt setting is
// never silently ignored. Command-line flags are applied by the caller after
// Load and before Validate, so that they override the file.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
)

const (
	// DefaultPath is where the daemon looks for its configuration file.
	DefaultPath = "/etc/containerd-chroot-applier/config.toml"
	// DefaultAddress is the daemon's unix socket.
	DefaultAddress = "/run/containerd-chroot-applier/containerd-chroot-applier.sock"
	// DefaultContainerdAddress is containerd's gRPC socket.
	DefaultContainerdAddress = "/run/containerd/containerd.sock"
	// ContentRootAuto makes the daemon look up containerd's content root
	// in containerd's introspection service.
	ContentRootAuto = "auto"
)

// Config is the daemon's configuration. The TOML key of each field is in its
// tag, and contrib/config.toml documents every key with its default.
type Config struct {
	// Address is the path of the unix socket the daemon serves on.
	Address string `toml:"address"`
	// ContainerdAddress is the path of containerd's gRPC socket, used to
	// read layer blobs through containerd's content API.
	ContainerdAddress string `toml:"containerd_address"`
	// LogLevel is one of trace, debug, info, warn and error.
	LogLevel string `toml:"log_level"`
	// LogFormat is text or json.
	LogFormat string `toml:"log_format"`
	// MaxConcurrentApplies is the number of layers applied at the same
	// time. Further requests wait for a slot; they do not fail.
	MaxConcurrentApplies int `toml:"max_concurrent_applies"`
	// ContentRoot is containerd's content store directory, read directly
	// instead of streaming blobs through the content API: "" for never,
	// "auto" to ask containerd for it, or a path.
	ContentRoot string `toml:"content_root"`
	// DefaultNamespace is the containerd namespace assumed for a request
	// that carries none. When empty, such requests are rejected.
	DefaultNamespace string `toml:"default_namespace"`
	// ShutdownTimeout is how long running applies may go on after SIGTERM
	// or SIGINT before they are cancelled.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`
	// MetricsAddress is a host:port on which metrics are served in the
	// Prometheus text format. Empty turns the listener off.
	MetricsAddress string `toml:"metrics_address"`
	// StreamProcessors are external programs that turn one layer media
	// type into another, in containerd's format; they decrypt encrypted
	// layers. The map key is the processor's ID, which selects the
	// request payload the program receives.
	StreamProcessors map[string]StreamProcessor `toml:"stream_processors"`
}

// StreamProcessor is an external program in containerd's processor chain.
type StreamProcessor struct {
	// Accepts are the media types the program reads.
	Accepts []string `toml:"accepts"`
	// Returns is the media type the program writes.
	Returns string `toml:"returns"`
	// Path is the program, as a path or a name looked up in PATH.
	Path string `toml:"path"`
	// Args are the program's arguments.
	Args []string `toml:"args"`
	// Env are extra environment variables, as KEY=value.
	Env []string `toml:"env"`
}

// Default returns the configuration used for every key the file omits.
func Default() Config {
	return Config{
		Address:              DefaultAddress,
		ContainerdAddress:    DefaultContainerdAddress,
		LogLevel:             "info",
		LogFormat:            "text",
		MaxConcurrentApplies: 4,
		ContentRoot:          ContentRootAuto,
		ShutdownTimeout:      30 * time.Second,
	}
}

// Load reads the file at path over Default. A missing file is not an error
// unless explicit is set, which the caller does when the path was given on
// the command line. An unknown key is an error naming every such key. Load
// does not call Validate.
func Load(path string, explicit bool) (Config, error) {
	c := Default()
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return Default(), nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return Config{}, fmt.Errorf("config file %s: %w", path, errdefs.ErrNotFound)
		}
		return Config{}, fmt.Errorf("failed to load config file %s: %w", path, err)
	}

	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return Config{}, fmt.Errorf("config file %s: unknown keys %s: %w",
			path, strings.Join(keys, ", "), errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// Validate checks every setting and returns an error wrapping
// errdefs.ErrInvalidArgument that names every invalid one.
func (c Config) Validate() error {
	var problems []string
	if c.Address == "" {
		problems = append(problems, "address is empty")
	}
	if c.ContainerdAddress == "" {
		problems = append(problems, "containerd_address is empty")
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		problems = append(problems,
			fmt.Sprintf("log_level %q is not one of trace, debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		problems = append(problems, fmt.Sprintf("log_format %q is not text or json", c.LogFormat))
	}
	if c.MaxConcurrentApplies < 1 {
		problems = append(problems,
			fmt.Sprintf("max_concurrent_applies %d is less than 1", c.MaxConcurrentApplies))
	}
	if c.ShutdownTimeout < 0 {
		problems = append(problems,
			fmt.Sprintf("shutdown_timeout %s is negative", c.ShutdownTimeout))
	}
	if c.DefaultNamespace != "" {
		if err := identifiers.Validate(c.DefaultNamespace); err != nil {
			problems = append(problems, fmt.Sprintf("default_namespace: %v", err))
		}
	}
	problems = append(problems, c.streamProcessorProblems()...)

	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration: %s: %w",
			strings.Join(problems, "; "), errdefs.ErrInvalidArgument)
	}
	return nil
}
