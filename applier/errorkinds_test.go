package applier_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

// manyXattrs returns options adding more user xattrs than one ext4 block
// of 4 KiB holds.
func manyXattrs() []lt.Option {
	var opts []lt.Option
	for i := range 100 {
		opts = append(opts, lt.Xattr(fmt.Sprintf("user.x%03d", i), strings.Repeat("v", 64)))
	}
	return opts
}

func TestErrorKinds(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name    string
		entries []lt.Entry
		// readOnly mounts the target read-only.
		readOnly bool
		// ext4 marks a case that needs the target on ext4.
		ext4    bool
		kind    error
		entry   string
		message string
	}{
		{name: "hardlink to a directory is invalid",
			entries: []lt.Entry{lt.Dir("d"), lt.Link("l", "d")},
			kind:    errdefs.ErrInvalidArgument, entry: "l", message: "hardlink to a directory"},
		{name: "hardlink to dot-dot is invalid",
			entries: []lt.Entry{lt.Link("l", "..")},
			kind:    errdefs.ErrInvalidArgument, entry: "l", message: "hardlink to a directory"},
		{name: "hardlink to the root is invalid",
			entries: []lt.Entry{lt.Link("l", "/")},
			kind:    errdefs.ErrInvalidArgument, entry: "l", message: "hardlink to a directory"},
		{name: "xattr value over 64 KiB is invalid",
			entries: []lt.Entry{lt.File("f", "",
				lt.Xattr("user.big", strings.Repeat("v", 200<<10)))},
			kind: errdefs.ErrInvalidArgument, entry: "f", message: "too large"},
		{name: "name longer than PATH_MAX is invalid",
			entries: []lt.Entry{lt.File(strings.Repeat("d/", 2100)+"f", "")},
			kind:    errdefs.ErrInvalidArgument, entry: "d/d/d/", message: "file name too long"},
		{name: "component longer than NAME_MAX is invalid",
			entries: []lt.Entry{lt.File(strings.Repeat("n", 300), "")},
			kind:    errdefs.ErrInvalidArgument, entry: "nnn", message: "file name too long"},
		{name: "too many xattrs for one file are invalid",
			entries: []lt.Entry{lt.File("f", "", manyXattrs()...)}, ext4: true,
			kind: errdefs.ErrInvalidArgument, entry: "f", message: "xattrs of entry do not fit"},
		{name: "read-only target is a failed precondition",
			entries: []lt.Entry{lt.File("f", "x")}, readOnly: true,
			kind: errdefs.ErrFailedPrecondition, entry: "f", message: "target is read-only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := lt.NewStore(t)
			desc := lt.Layer(t, store, "", tc.entries...)
			mounts, dir, err := newStack(t, bindTarget).next()
			if err != nil {
				t.Fatal(err)
			}
			if tc.ext4 {
				var st unix.Statfs_t
				if err := unix.Statfs(dir, &st); err != nil {
					t.Fatal(err)
				}
				if st.Type != unix.EXT4_SUPER_MAGIC {
					t.Skip("the xattr space of one file is only known for ext4, " +
						"and the temporary directory is on another file system")
				}
			}
			if tc.readOnly {
				mounts = []mount.Mount{
					{Type: "bind", Source: dir, Options: []string{"rbind", "ro"}}}
			}
			_, err = applier.New(store).Apply(context.Background(), desc, mounts)
			if err == nil {
				t.Fatal("apply succeeded, want an error")
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %.300q does not wrap %v", err, tc.kind)
			}
			var childErr *applier.ChildError
			if !errors.As(err, &childErr) {
				t.Fatalf("error %.300q is not a ChildError", err)
			}
			if !strings.HasPrefix(childErr.Entry, tc.entry) {
				t.Errorf("error names entry %.40q, want %q", childErr.Entry, tc.entry)
			}
			if !strings.Contains(childErr.Message, tc.message) {
				t.Errorf("message %.300q does not contain %q", childErr.Message, tc.message)
			}
		})
	}
}
