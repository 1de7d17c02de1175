package applier_test

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

func TestDescriptorSize(t *testing.T) {
	requireRoot(t)
	blob := sampleTar(t)
	cases := []struct {
		name    string
		size    int64
		wantErr bool
	}{
		{"negative size is rejected", -1, true},
		{"size 0 is checked by digest only", 0, false},
		{"exact size is accepted", int64(len(blob)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := lt.NewStore(t)
			desc := lt.WriteBlob(t, store, ocispec.MediaTypeImageLayer, blob)
			desc.Size = tc.size
			mounts, dir, err := newStack(t, bindTarget).next()
			if err != nil {
				t.Fatal(err)
			}
			_, err = applier.New(store).Apply(context.Background(), desc, mounts)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("apply failed: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v, want errdefs.ErrInvalidArgument", err)
			}
			var childErr *applier.ChildError
			if errors.As(err, &childErr) {
				t.Errorf("error %v comes from a child, want the parent to reject it", err)
			}
			if m := buildManifest(t, dir); len(m.Entries) != 1 {
				t.Errorf("target has %v, want it empty", m.Paths())
			}
		})
	}
}
