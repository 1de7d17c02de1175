// Command bench compares the wall time and memory of this repository's
// applier with containerd's walking differ (core/diff/apply), side by side
// in one run, and prints the ratio.
//
// Both appliers read the same blob from a containerd local content store in
// a temporary directory. They extract it into fresh targets of the same
// kind, which is a plain directory given as a bind mount or an overlay
// upperdir with two small lowerdirs. Each timed apply runs in a fresh subprocess of this
// binary, so that peak RSS is per run, and the runs alternate between the
// appliers after one warm-up of each. Only the Apply call is timed; each
// target is created before its run and removed after it, and the file system
// is synced before the next run starts.
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

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

func main() {
	// The content store warns about fsverity on every open; the
	// benchmark's own output goes to stdout and stderr directly.
	log.L.Logger.SetLevel(logrus.ErrorLevel)
	if len(os.Args) > 1 && os.Args[1] == applyCommand {
		runApplyCommand()
		return
	}

	var (
		inputs   = flag.String("inputs", strings.Join(inputNames, ","), "comma-separated inputs to apply")
		kinds    = flag.String("targets", kindDir+","+kindOverlay, "comma-separated target kinds: dir, overlay")
		runs     = flag.Int("runs", 5, "timed runs of each applier per input and target kind")
		cacheDir = flag.String("cache", "/var/cache/containerd-chroot-applier/bench",
			"directory that caches the generated input blobs")
		workDir  = flag.String("workdir", "/var/tmp", "directory for the content store and the targets")
		markdown = flag.String("markdown", "", "also write the table as Markdown to this file")
	)
	flag.Parse()
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs must be at least 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, config{
		inputs:   split(*inputs),
		kinds:    split(*kinds),
		runs:     *runs,
		cacheDir: *cacheDir,
		workDir:  *workDir,
		markdown: *markdown,
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

	var rows []summary
	for _, in := range inputs {
		for _, kind := range cfg.kinds {
			c, err := measure(ctx, ws, in, kind, cfg.runs)
			if err != nil {
				return err
			}
			rows = append(rows, summarize(c))
		}
	}

	var extra []checkLine
	rssOK := true
	for _, r := range rows {
		rssOK = rssOK && r.rssCheck()
	}
	extra = append(extra, checkLine{Name: "child peak RSS on every input", OK: rssOK,
		Detail: fmt.Sprintf("(<= %d MiB)", maxChildRSS/mib)})

	machine := describeMachine()
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
