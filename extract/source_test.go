package extract_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/chroot-applier/containerd-chroot-applier/extract"
	"github.com/chroot-applier/containerd-chroot-applier/internal/child"
	lt "github.com/chroot-applier/containerd-chroot-applier/internal/layertest"
)

// applyFromPipe applies data read from a pipe, as the child reads its stdin,
// so that large contents take the splice path, through a staging pipe when
// batch is not zero.
func applyFromPipe(t *testing.T, data []byte, root string, batch int) error {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		w.Write(data)
		w.Close()
	}()
	_, err = extract.Apply(context.Background(), r, extract.Options{Root: root, SpliceBatch: batch})
	return err
}

func randomContent(seed uint64, n int) string {
	b := make([]byte, n)
	rnd := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return string(b)
}

// batches are the SpliceBatch values the splice tests run with: none, one
// smaller than a pipe's default capacity and the child's.
var batches = []int{0, 16 << 10, child.SpliceBatch}

// TestSpliceFromPipe checks contents around and above the splice threshold,
// mixed with small files, against the same layer applied from memory.
func TestSpliceFromPipe(t *testing.T) {
	requireRoot(t)
	for _, batch := range batches {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) { testSpliceFromPipe(t, batch) })
	}
}

func testSpliceFromPipe(t *testing.T, batch int) {
	sizes := []int{256<<10 - 1, 256 << 10, 256<<10 + 1, 3<<20 + 7, 10, 1<<20 + 511, 0, 5 << 20}
	var entries []lt.Entry
	want := map[string]string{}
	for i, size := range sizes {
		name := fmt.Sprintf("f%d", i)
		want[name] = randomContent(uint64(i), size)
		entries = append(entries, lt.File(name, want[name]))
		entries = append(entries, lt.Symlink(fmt.Sprintf("l%d", i), name))
	}
	data := mustTar(t, entries...)

	fromPipe := t.TempDir()
	if err := applyFromPipe(t, data, fromPipe, batch); err != nil {
		t.Fatal(err)
	}
	fromMemory := t.TempDir()
	if _, err := extract.Apply(context.Background(), bytes.NewReader(data),
		extract.Options{Root: fromMemory}); err != nil {
		t.Fatal(err)
	}
	for name, content := range want {
		for _, root := range []string{fromPipe, fromMemory} {
			got, err := os.ReadFile(filepath.Join(root, name))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != content {
				t.Errorf("%s in %s: %d bytes differ from the %d written", name, root,
					len(got), len(content))
			}
		}
		if target, err := os.Readlink(filepath.Join(fromPipe, "l"+name[1:])); err != nil ||
			target != name {
			t.Errorf("link to %s = %q, %v", name, target, err)
		}
	}
}

// TestSpliceTruncated checks that a stream cut inside a spliced content fails
// as invalid content naming the entry.
func TestSpliceTruncated(t *testing.T) {
	requireRoot(t)
	data := mustTar(t, lt.File("small", "x"), lt.File("big", randomContent(1, 4<<20)))
	for _, batch := range batches {
		err := applyFromPipe(t, data[:3<<20], t.TempDir(), batch)
		var entryErr *extract.EntryError
		if !errors.As(err, &entryErr) || entryErr.Entry != "big" {
			t.Fatalf("batch %d: err = %v, want an error naming entry big", batch, err)
		}
		if !errors.Is(err, extract.ErrInvalidLayer) {
			t.Errorf("batch %d: err = %v, want ErrInvalidLayer", batch, err)
		}
	}
}
