package harness

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Ctr runs ctr against c in namespace ns and returns its standard output.
// The error includes the command line and both outputs.
func (c *Containerd) Ctr(ctx context.Context, ns string, args ...string) (string, error) {
	return run(ctx, c.tools.Ctr, append([]string{"--address", c.Socket, "--namespace", ns}, args...)...)
}

// Crictl runs crictl against c's CRI endpoint, configured by the file
// StartContainerd writes, and returns its standard output. The error
// includes the command line and both outputs.
func (c *Containerd) Crictl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, c.tools.Crictl,
		append([]string{"--config", filepath.Join(c.Dir, "crictl.yaml")}, args...)...)
}

// run runs name with args and returns its standard output. Standard error,
// where ctr writes warnings and its error message, goes into the error.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstdout:\n%s\nstderr:\n%s",
			name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}
