package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Daemon is a running containerd-chroot-applier serving the diff API on the
// proxy socket of a Proxy containerd.
type Daemon struct {
	// Socket is the daemon's gRPC socket.
	Socket string
	// Log is the file that receives the daemon's JSON debug log.
	Log string

	cmd  *exec.Cmd
	done <-chan struct{}
}

// StartDaemon starts the applier daemon binary on c.ProxySocket, reading
// content from c, and waits for its socket. It is stopped by PID when tb
// cleans up, before c is.
func StartDaemon(ctx context.Context, tb TB, binary string, c *Containerd) (*Daemon, error) {
	if c.ProxySocket == "" {
		return nil, fmt.Errorf("containerd in %s mode has no proxy plugin", c.Mode)
	}
	d := &Daemon{
		Socket: c.ProxySocket,
		Log:    filepath.Join(c.Dir, "applier.log"),
	}
	logFile, err := os.Create(d.Log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	d.cmd = exec.Command(binary, "serve",
		"--address", d.Socket,
		"--containerd-address", c.Socket,
		"--log-level", "debug",
		"--log-format", "json")
	d.cmd.Stdout = logFile
	d.cmd.Stderr = logFile
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done, err := StartKeepingThread(d.cmd)
	if err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", binary, err)
	}
	d.done = done
	tb.Cleanup(func() { StopProcess(d.cmd.Process, d.done) })

	if err := WaitSocket(ctx, d.Socket, d.done, 30*time.Second); err != nil {
		return nil, fmt.Errorf("applier daemon did not start: %w\n%s", err, Tail(d.Log))
	}
	tb.Logf("applier daemon running on %s, pid %d", d.Socket, d.cmd.Process.Pid)
	return d, nil
}

// AppliedLayer is one "layer applied" log line.
type AppliedLayer struct {
	Digest       string `json:"digest"`
	Media        string `json:"media"`
	Size         int64  `json:"size"`
	Uncompressed int64  `json:"uncompressed"`
	Entries      int64  `json:"entries"`
	Target       string `json:"target"`
	Namespace    string `json:"namespace"`
	Lease        string `json:"lease"`
	// Duration is the "d" field as written: a number of nanoseconds or a
	// string, depending on the logger's formatter.
	Duration json.RawMessage `json:"d"`
	// Fields holds every field of the line, including those above.
	Fields map[string]any `json:"-"`
}

// AppliedLayers returns the "layer applied" lines of the daemon's log.
func (d *Daemon) AppliedLayers() ([]AppliedLayer, error) {
	return AppliedLayersIn(d.Log)
}

// AppliedLayersIn returns the "layer applied" lines of a JSON log file, such
// as the daemon's or the log of a containerd with the plugin compiled in.
func AppliedLayersIn(path string) ([]AppliedLayer, error) {
	lines, err := LogLines(path)
	if err != nil {
		return nil, err
	}
	var layers []AppliedLayer
	for _, line := range lines {
		if line["msg"] != "layer applied" {
			continue
		}
		raw, err := json.Marshal(line)
		if err != nil {
			return nil, err
		}
		var l AppliedLayer
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("invalid layer applied line %s: %w", raw, err)
		}
		l.Fields = line
		layers = append(layers, l)
	}
	return layers, nil
}

// LogLines returns every JSON object line of the log file at path; lines
// that are not JSON objects are skipped.
func LogLines(path string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []map[string]any
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for s.Scan() {
		var line map[string]any
		if json.Unmarshal(s.Bytes(), &line) == nil {
			lines = append(lines, line)
		}
	}
	return lines, s.Err()
}
