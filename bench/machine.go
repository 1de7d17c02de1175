package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// describeMachine returns one line naming the CPU count, CPU model, kernel,
// Go version and the external gzip decompressors found on PATH, all of which
// change the numbers.
func describeMachine() string {
	var uts unix.Utsname
	kernel := "unknown kernel"
	if err := unix.Uname(&uts); err == nil {
		kernel = unix.ByteSliceToString(uts.Release[:])
	}
	var tools []string
	for _, name := range []string{"igzip", "unpigz"} {
		if _, err := exec.LookPath(name); err == nil {
			tools = append(tools, name)
		}
	}
	gzipTools := "no igzip or unpigz on PATH"
	if len(tools) > 0 {
		gzipTools = strings.Join(tools, " and ") + " on PATH"
	}
	return fmt.Sprintf("%d CPUs (%s), kernel %s, %s, %s",
		runtime.NumCPU(), cpuModel(), kernel, runtime.Version(), gzipTools)
}

// loadAverage returns the 1, 5 and 15 minute load averages, which show
// whether other work shared the CPUs during the run.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
