package applier_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

func TestLargeChildResult(t *testing.T) {
	requireRoot(t)
	var warned []lt.Entry
	for i := range 120 {
		key := "trusted." + strings.Repeat("k", 12000)
		warned = append(warned, lt.File(fmt.Sprintf("f%d", i), "", lt.Xattr(key, "v")))
	}
	longName := strings.Repeat("x/", 300000) + "f"

	cases := []struct {
		name    string
		entries []lt.Entry
		// wantFiles is the number of entries left in the target, or -1
		// when the apply must fail.
		wantFiles int
	}{
		{"many long warnings still decode", warned, 120},
		{"error naming a huge entry still decodes", []lt.Entry{lt.File(longName, "")}, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := lt.NewStore(t)
			desc := lt.Layer(t, store, "", tc.entries...)
			mounts, dir, err := newStack(t, bindTarget).next()
			if err != nil {
				t.Fatal(err)
			}
			_, err = applier.New(store).Apply(context.Background(), desc, mounts)
			if tc.wantFiles >= 0 {
				if err != nil {
					t.Fatalf("apply failed: %v", err)
				}
				if m := buildManifest(t, dir); len(m.Entries) != tc.wantFiles+1 {
					t.Errorf("target has %d entries, want %d", len(m.Entries)-1, tc.wantFiles)
				}
				return
			}
			var childErr *applier.ChildError
			if !errors.As(err, &childErr) {
				t.Fatalf("error %v is not a ChildError, want the child's result decoded", err)
			}
			if !strings.HasPrefix(childErr.Entry, "x/x/x/") {
				t.Errorf("error names entry %.40q, want the long name", childErr.Entry)
			}
			if !strings.Contains(childErr.Entry, "(shortened)") {
				t.Errorf("entry %.40q... is not marked as shortened", childErr.Entry)
			}
			if !strings.HasSuffix(childErr.Entry, "x/x/f") {
				t.Errorf("entry %.40q... does not keep the end of the name", childErr.Entry)
			}
			if len(childErr.Message) > 4<<10 {
				t.Errorf("message takes %d bytes, want at most 4 KiB", len(childErr.Message))
			}
		})
	}
}
