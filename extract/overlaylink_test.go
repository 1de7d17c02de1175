package extract_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chroot-applier/containerd-chroot-applier/extract"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

func TestOverlayHardlinkToWhiteout(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name    string
		entries []lt.Entry
		link    string
	}{
		{"hardlink to a whiteout of the layer is not found",
			[]lt.Entry{lt.Whiteout("", "etc"), lt.Link("y", "etc")}, "y"},
		{"hardlink from a new parent to a whiteout is not found",
			[]lt.Entry{lt.Dir("d"), lt.Whiteout("d", "w"), lt.Link("p/y", "d/w")}, "p/y"},
		{"hardlink to a 0:0 device entry is not found",
			[]lt.Entry{lt.Char("c", 0, 0), lt.Link("y", "c")}, "y"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			_, err := extract.Apply(context.Background(),
				bytes.NewReader(mustTar(t, tc.entries...)),
				extract.Options{Root: root, Whiteouts: extract.OverlayWhiteouts})
			var entryErr *extract.EntryError
			if !errors.As(err, &entryErr) {
				t.Fatalf("error %v is not an *EntryError", err)
			}
			if entryErr.Entry != tc.link {
				t.Errorf("Entry = %q, want %q", entryErr.Entry, tc.link)
			}
			if !errors.Is(err, extract.ErrInvalidLayer) {
				t.Errorf("error %v does not wrap ErrInvalidLayer", err)
			}
			if !strings.Contains(err.Error(), "hardlink target") ||
				!strings.Contains(err.Error(), "not found") {
				t.Errorf("error %v does not say the hardlink target is not found", err)
			}
			if _, err := os.Lstat(filepath.Join(root, tc.link)); err == nil {
				t.Errorf("%s was created, want no second whiteout", tc.link)
			}
		})
	}
}
