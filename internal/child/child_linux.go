package child

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"

	"github.com/moby/sys/reexec"
	"golang.org/x/sys/unix"

	"github.com/chroot-applier/containerd-chroot-applier/extract"
	"github.com/chroot-applier/containerd-chroot-applier/mount"
)

func init() {
	reexec.Register(Name, childMain)
	// Dispatch here rather than in main, so that the child also works in a
	// binary whose main never calls reexec.Init, such as containerd's.
	reexec.Init()
}

// childMain is the entry point of the re-executed child. It never returns.
func childMain() {
	// Confinement (capabilities in particular) applies to the calling
	// thread, so the whole child runs on this one.
	runtime.LockOSThread()

	res := runChild()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "failed to write result: %v\n", err)
		os.Exit(2)
	}
	if res.Error != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild() Result {
	opts, err := readChildOptions()
	if err != nil {
		return failed("options", err)
	}

	lowers, err := openLowers(opts.Target.Lowerdirs)
	if err != nil {
		return failed("confine", err)
	}
	root, err := mount.Prepare(opts.Target)
	if err != nil {
		return failed("confine", err)
	}
	method, err := confine(root, opts.Target.Kind)
	if err != nil {
		return failed("confine", err)
	}

	res := Result{Root: method}
	whiteouts := extract.DeleteWhiteouts
	if opts.Target.Kind == mount.Overlay {
		whiteouts = extract.OverlayWhiteouts
	}
	stats, err := extract.Apply(context.Background(), os.Stdin, extract.Options{
		Root:        "/",
		Whiteouts:   whiteouts,
		Lowers:      lowers,
		SpliceBatch: SpliceBatch,
		Warn: func(entry, reason string) {
			if len(res.Warnings) < maxWarnings {
				res.Warnings = append(res.Warnings, Warning{
					Entry:  shortenField(entry),
					Reason: shortenField(reason),
				})
			} else {
				res.WarningsDropped++
			}
		},
	})
	if err != nil {
		return failed("extract", err)
	}

	// Read what follows the end-of-archive marker, so that the parent can
	// hash the whole stream without meeting a closed pipe.
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return failed("extract", fmt.Errorf("failed to read trailing data: %w", err))
	}
	if opts.SyncFs {
		if err := syncRoot(); err != nil {
			return failed("extract", err)
		}
	}
	res.Size, res.Entries = stats.Size, stats.Entries
	return res
}

func readChildOptions() (Options, error) {
	var opts Options
	f := os.NewFile(OptionsFD, "options")
	if f == nil {
		return opts, errors.New("options descriptor is not open")
	}
	defer f.Close()
	if err := json.NewDecoder(f).Decode(&opts); err != nil {
		return opts, fmt.Errorf("failed to decode options: %w", err)
	}
	return opts, nil
}

// openLowers opens each lowerdir before confinement. The descriptors are the
// child's only handles on anything outside its root; package extract reads
// through them with lookups scoped to each directory.
func openLowers(dirs []string) ([]*os.File, error) {
	var files []*os.File
	for _, dir := range dirs {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("failed to open lowerdir %s: %w", dir, err)
		}
		files = append(files, os.NewFile(uintptr(fd), dir))
	}
	return files, nil
}

func syncRoot() error {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("failed to open target for syncfs: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("failed to syncfs target: %w", err)
	}
	return nil
}

// failed turns err into the structured error the parent decodes.
func failed(stage string, err error) Result {
	ce := &Failure{Stage: stage, Message: shortenField(err.Error()), Kind: KindInternal}
	var entryErr *extract.EntryError
	if errors.As(err, &entryErr) {
		ce.Entry = shortenField(entryErr.Entry)
	}
	switch {
	case errors.Is(err, extract.ErrInvalidLayer):
		ce.Kind = KindInvalid
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		ce.Kind = KindNoSpace
	case errors.Is(err, syscall.EROFS):
		ce.Kind = KindReadOnly
		ce.Message = shortenField("target is read-only: " + err.Error())
	case errors.Is(err, syscall.ENOENT) && stage != "extract":
		ce.Kind = KindNotFound
	case errors.Is(err, syscall.ENODEV) && stage == "confine":
		// mount(2) returns ENODEV for a file system type the kernel has
		// neither built in nor can load as a module.
		ce.Kind = KindUnsupported
	}
	return Result{Error: ce}
}
