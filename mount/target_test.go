package mount

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
)

func TestPlan(t *testing.T) {
	dir := t.TempDir()
	upper := filepath.Join(dir, "upper")
	lower1, lower2 := filepath.Join(dir, "l1"), filepath.Join(dir, "l2")
	for _, d := range []string{upper, lower1, lower2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	overlay := func(opts ...string) []mount.Mount {
		return []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
	}
	bind := func(src string, opts ...string) []mount.Mount {
		return []mount.Mount{{Type: "bind", Source: src, Options: opts}}
	}

	cases := []struct {
		name    string
		mounts  []mount.Mount
		want    Target
		wantErr error
	}{
		{
			name:   "overlay with lowerdirs in overlayfs order",
			mounts: overlay("workdir="+dir, "upperdir="+upper, "lowerdir="+lower1+":"+lower2),
			want:   Target{Kind: Overlay, Dir: upper, Lowerdirs: []string{lower1, lower2}},
		},
		{
			name:   "overlay without lowerdirs",
			mounts: overlay("upperdir=" + upper),
			want:   Target{Kind: Overlay, Dir: upper},
		},
		{
			name:   "read-only overlay is mounted",
			mounts: overlay("lowerdir=" + lower1 + ":" + lower2),
			want:   Target{Kind: Mounted, Mounts: overlay("lowerdir=" + lower1 + ":" + lower2)},
		},
		{
			name:   "writable bind",
			mounts: bind(upper, "rbind", "rw"),
			want:   Target{Kind: Bind, Dir: upper},
		},
		{
			name:   "bind by option",
			mounts: []mount.Mount{{Type: "none", Source: upper, Options: []string{"bind"}}},
			want:   Target{Kind: Bind, Dir: upper},
		},
		{
			name:   "read-only bind is mounted",
			mounts: bind(upper, "rbind", "ro"),
			want:   Target{Kind: Mounted, Mounts: bind(upper, "rbind", "ro")},
		},
		{
			name:   "other file system is mounted",
			mounts: []mount.Mount{{Type: "ext4", Source: "/dev/vdb"}},
			want: Target{Kind: Mounted,
				Mounts: []mount.Mount{{Type: "ext4", Source: "/dev/vdb"}}},
		},
		{name: "no mounts", wantErr: errdefs.ErrInvalidArgument},
		{
			name:    "missing upperdir",
			mounts:  overlay("upperdir=" + filepath.Join(dir, "nope")),
			wantErr: errdefs.ErrNotFound,
		},
		{
			name:    "missing lowerdir",
			mounts:  overlay("upperdir="+upper, "lowerdir="+dir+"/nope"),
			wantErr: errdefs.ErrNotFound,
		},
		{
			name:    "bind source is a file",
			mounts:  bind(file, "rbind", "rw"),
			wantErr: errdefs.ErrInvalidArgument,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Plan(tc.mounts)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Plan = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	names := map[Kind]string{Overlay: "overlay", Bind: "bind", Mounted: "mounted", 9: "kind(9)"}
	for kind, want := range names {
		if got := kind.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(kind), got, want)
		}
	}
}

func TestChooseScratch(t *testing.T) {
	dir, err := chooseScratch([]mount.Mount{{Type: "overlay", Source: "overlay",
		Options: []string{"lowerdir=/mnt/a:/mnt/b", "upperdir=/media/u"}}})
	if err != nil {
		t.Fatal(err)
	}
	if dir == "/mnt" || dir == "/media" {
		t.Errorf("chooseScratch = %s, which contains a mount path", dir)
	}
}
