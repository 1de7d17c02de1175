package harness

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Ctr runs ctr against c in namespace ns and returns its combined output.
// The error includes the command line and the output.
func (c *Containerd) Ctr(ctx context.Context, ns string, args ...string) (string, error) {
	return run(ctx, c.tools.Ctr, append([]string{"--address", c.Socket, "--namespace", ns}, args...)...)
}

// Crictl runs crictl against c's CRI endpoint, configured by the file
// StartContainerd writes, and returns its combined output. The error includes the command line and the output.
func (c *Containerd) Crictl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, c.tools.Crictl,
		append([]string{"--config", filepath.Join(c.Dir, "crictl.yaml")}, args...)...)
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
