package harness

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Ctr runs ctr against c in namespace ns and returns its standard output.
// The error includes the command line and both outputs.
func (c *Containerd) Ctr(ctx context.Context, ns string, args ...string) (string, error) {
	return run(ctx, c.tools.Ctr,
		append([]string{"--address", c.Socket, "--namespace", ns}, args...)...)
}

// Crictl runs crictl against c's CRI endpoint, configured by the file
// StartContainerd writes, and returns its standard output. The error
// includes the command line and both outputs.
func (c *Containerd) Crictl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, c.tools.Crictl,
		append([]string{"--config", filepath.Join(c.Dir, "crictl.yaml")}, args...)...)
}

// run runs name with args and returns its standard output. On failure the
// error contains the last lines of standard output (ctr's progress display
// repeats itself) and all of standard error, where ctr writes its message.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstdout:\n%s\nstderr:\n%s",
			name, strings.Join(args, " "), err, lastLines(stdout.String(), 20), stderr.String())
	}
	return stdout.String(), nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// StartKeepingThread starts cmd, whose SysProcAttr may set Pdeathsig, and
// returns a channel that is closed once cmd has exited and been waited for.
// The kernel sends Pdeathsig when the thread that forked the process ends,
// not when the Go process does. Go ends any thread but the main one when a
// goroutine exits while locked to it, as the benchmark's CPU pinning does.
// So cmd is started and waited for by a goroutine that keeps its thread.
func StartKeepingThread(cmd *exec.Cmd) (<-chan struct{}, error) {
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}
