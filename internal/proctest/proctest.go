// Package proctest finds a process's children through /proc, for tests that
// check that no child process is left behind.
package proctest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat returns the state (such as "R", "S" or "Z") and the parent PID of
// process pid, read from /proc/PID/stat. ok is false when the process is
// gone or its stat cannot be parsed.
func Stat(pid int) (state string, ppid int, ok bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, false
	}
	// The command name in parentheses may contain spaces, so the fields are
	// counted from its closing parenthesis: state, then the parent PID.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return "", 0, false
	}
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0], ppid, err == nil
}

// Children returns the PIDs of the processes whose parent is ppid, zombies
// included: a zombie is a child its parent has not reaped yet.
func Children(ppid int) ([]int, error) {
	return children(ppid, true)
}

// LiveChildren returns the PIDs of the processes whose parent is ppid,
// without zombies.
func LiveChildren(ppid int) ([]int, error) {
	return children(ppid, false)
}

func children(ppid int, zombies bool) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, parent, ok := Stat(pid)
		if ok && parent == ppid && (zombies || state != "Z") {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
