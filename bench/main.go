// Command bench compares the wall time and memory of this repository's
// applier with containerd's walking differ (core/diff/apply), side by side
// in one run, and prints the ratio.
//
// Both appliers read the same blob from a containerd local content store in
// a temporary directory. They extract it into fresh targets of the same
// kind, which is a plain directory given as a bind mount or an overlay
// upperdir with two small lowerdirs. Each timed apply runs in a fresh subprocess of this
// binary, so that peak RSS is per run, and the runs alternate between the
// appliers after one warm-up of each. Only the Apply call is timed. Each
// target is created before its run, the file systems are synced before and
// after each run, and the targets are removed once the last run of an input
// and target kind is done.
//
// Usage:
//
//	go run ./bench [-inputs debian-gzip,small,...] [-targets dir,overlay]
//	    [-runs 5] [-markdown FILE]
//
// Generated inputs are cached in -cache, so reruns skip generating them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"

	"github.com/chroot-applier/containerd-chroot-applier/integration/harness"
)

func main() {
	// The content store warns about fsverity on every open; the
	// benchmark's own output goes to stdout and stderr directly.
	log.L.Logger.SetLevel(logrus.ErrorLevel)
	if len(os.Args) > 1 && os.Args[1] == applyCommand {
		runApplyCommand()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == warmCommand {
		runWarmCommand(os.Args[2:])
		return
	}

	var (
		inputs = flag.String("inputs", strings.Join(inputNames, ","),
			"comma-separated inputs to apply")
		kinds = flag.String("targets", kindDir+","+kindOverlay,
			"comma-separated target kinds: dir, overlay")
		runs     = flag.Int("runs", 5, "timed runs of each applier per input and target kind")
		cacheDir = flag.String("cache", "/var/cache/containerd-chroot-applier/bench",
			"directory that caches the generated input blobs")
		workDir = flag.String("workdir", "/var/tmp",
			"directory for the content store and the targets")
		markdown = flag.String("markdown", "", "also write the table as Markdown to this file")
		daemon   = flag.Bool("daemon", true,
			"also apply through our daemon and through a containerd with the walking differ")
		settle = flag.Duration("settle", 365*time.Second,
			"wait between the in-process and the daemon cases after removing the "+
				"targets, so that ext4 without a journal reuses their inodes freely")
		concurrent = flag.Int("concurrent", 4,
			"concurrent applies through the daemon for its peak RSS, 0 to skip")
	)
	flag.Parse()
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs must be at least 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, config{
		inputs:     split(*inputs),
		kinds:      split(*kinds),
		runs:       *runs,
		cacheDir:   *cacheDir,
		workDir:    *workDir,
		markdown:   *markdown,
		daemon:     *daemon,
		settle:     *settle,
		concurrent: *concurrent,
	}); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	inputs, kinds     []string
	runs              int
	cacheDir, workDir string
	markdown          string
	daemon            bool
	concurrent        int
	settle            time.Duration
}

func run(ctx context.Context, cfg config) error {
	ws, err := newWorkspace(cfg.workDir)
	if err != nil {
		return err
	}
	defer ws.close()

	// Prepare every input first, so that a cold cache fails or fills
	// before the first timed run.
	var inputs []input
	for _, name := range cfg.inputs {
		fmt.Fprintf(os.Stderr, "preparing input %s\n", name)
		in, err := loadInput(cfg.cacheDir, name)
		if err != nil {
			return err
		}
		if err := ws.ingest(ctx, in); err != nil {
			return err
		}
		inputs = append(inputs, in)
	}

	loadBefore := loadAverage()
	// The daemon's cases follow the in-process ones, so the removal of the
	// in-process targets is waited out.
	var settle time.Duration
	if cfg.daemon {
		settle = cfg.settle
	}
	rows, err := measureAll(ctx, ws, inputs, cfg, settle)
	if err != nil {
		return err
	}
	var extra []checkLine
	if cfg.daemon {
		daemonRows, daemonChecks, err := measureDaemon(ctx, inputs, cfg)
		if err != nil {
			return err
		}
		rows = append(rows, daemonRows...)
		extra = append(extra, daemonChecks...)
	}

	rssOK := true
	for _, r := range rows {
		rssOK = rssOK && r.rssCheck()
	}
	extra = append(extra, checkLine{Name: "child peak RSS on every input", OK: rssOK,
		Detail: fmt.Sprintf("(<= %d MiB)", maxChildRSS/mib)})

	machine := fmt.Sprintf("%s, load average %s before and %s after",
		describeMachine(), loadBefore, loadAverage())
	fmt.Println(machine)
	if err := writeText(os.Stdout, rows, extra); err != nil {
		return err
	}
	if cfg.markdown == "" {
		return nil
	}
	f, err := os.Create(cfg.markdown)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "Command: `%s`\n\nMachine: %s\n\n", commandLine(), machine)
	writeMarkdown(f, rows, extra)
	return f.Close()
}

// measureAll measures every input on every target kind with rn. It removes
// the targets that measure kept once every case is done. When settle is not
// zero, it then waits that long or until ctx is done, so that a later
// phase's timed runs do not meet the removed inodes.
func measureAll(ctx context.Context, rn runner, inputs []input, cfg config,
	settle time.Duration) ([]summary, error) {
	var rows []summary
	var kept []func()
	defer func() {
		if len(kept) == 0 {
			return
		}
		removeAll(ctx, rn, kept)
		if settle > 0 {
			fmt.Fprintf(os.Stderr, "removed the targets, waiting %s\n", settle)
			select {
			case <-ctx.Done():
			case <-time.After(settle):
			}
		}
	}()
	for _, in := range inputs {
		for _, kind := range cfg.kinds {
			c, removals, err := measure(ctx, rn, in, kind, cfg.runs)
			kept = append(kept, removals...)
			if err != nil {
				return nil, err
			}
			rows = append(rows, summarize(c))
		}
	}
	return rows, nil
}

// measureDaemon measures every input through the sockets, then the peak
// RSS of our daemon while it serves cfg.concurrent applies at once.
func measureDaemon(ctx context.Context, inputs []input,
	cfg config) ([]summary, []checkLine, error) {
	cleanups := &harness.Cleanups{}
	defer cleanups.Run()
	fmt.Fprintln(os.Stderr, "starting containerd and the daemon")
	b, err := startDaemonBench(ctx, cleanups, inputs)
	if err != nil {
		return nil, nil, err
	}
	rows, err := measureAll(ctx, b, inputs, cfg, 0)
	if err != nil || cfg.concurrent < 1 || len(inputs) == 0 {
		return rows, nil, err
	}

	// The Debian layer is the realistic one; without it, the first input.
	in := inputs[0]
	for _, i := range inputs {
		if i.Name == "debian-gzip" {
			in = i
		}
	}
	peak, err := b.concurrentPeak(in, cfg.concurrent)
	if err != nil {
		return rows, nil, err
	}
	return rows, []checkLine{{
		Name: fmt.Sprintf("daemon peak RSS, %d concurrent applies of %s",
			cfg.concurrent, in.Name),
		OK:     peak <= maxDaemonRSS,
		Detail: fmt.Sprintf("%s MiB (<= %d MiB)", mibString(peak), maxDaemonRSS/mib),
	}}, nil
}

func split(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// commandLine returns the command that ran the benchmark, as it would be
// typed in the repository's root.
func commandLine() string {
	return strings.TrimSpace("go run ./bench " + strings.Join(os.Args[1:], " "))
}
