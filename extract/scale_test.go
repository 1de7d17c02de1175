package extract

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// scaleEntries is large enough that work quadratic in the entries of a layer
// takes many seconds, so a test that counts the work catches it.
const scaleEntries = 20000

// streamTar writes the headers that write produces as a tar stream.
func streamTar(write func(put func(tar.Header))) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		var err error
		write(func(h tar.Header) {
			if err != nil {
				return
			}
			h.ModTime = time.Unix(1700000000, 0)
			if h.Mode == 0 {
				h.Mode = 0o644
			}
			err = tw.WriteHeader(&h)
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func TestApplyWorkIsLinear(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("extraction sets owners, which needs root")
	}
	cases := []struct {
		name string
		// lower creates what the target contains before the layer.
		lower func(root string) error
		write func(put func(tar.Header))
		// want lists the names left in the target's top directory and
		// wantBig the number of entries left in big/, -1 for none.
		want    []string
		wantBig int
		// maxVisits bounds the directory records looked at while removing,
		// maxReads the directories read to remove lower entries.
		maxVisits, maxReads int
	}{
		{
			name: "files replacing directories forget only their own records",
			write: func(put func(tar.Header)) {
				for i := range scaleEntries {
					put(tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("x%d/", i)})
				}
				for i := range scaleEntries {
					put(tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("x%d", i)})
				}
			},
			want:      scaleNames(),
			wantBig:   -1,
			maxVisits: scaleEntries,
		},
		{
			name: "repeated whiteouts of an own directory read it once",
			lower: func(root string) error {
				if err := os.Mkdir(filepath.Join(root, "big"), 0o755); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(root, "big", "lower"), nil, 0o644)
			},
			write: func(put func(tar.Header)) {
				put(tar.Header{Typeflag: tar.TypeDir, Name: "big/", Mode: 0o755})
				for i := range scaleEntries {
					put(tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("big/f%d", i)})
				}
				for range scaleEntries {
					put(tar.Header{Typeflag: tar.TypeReg, Name: "big/../.wh.big"})
				}
			},
			want:     []string{"big"},
			wantBig:  scaleEntries,
			maxReads: 1,
		},
		{
			name: "repeated opaque markers read their directory once",
			lower: func(root string) error {
				if err := os.MkdirAll(filepath.Join(root, "big", "sub"), 0o755); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(root, "big", "lower"), nil, 0o644)
			},
			write: func(put func(tar.Header)) {
				put(tar.Header{Typeflag: tar.TypeDir, Name: "big/sub/", Mode: 0o755})
				for i := range scaleEntries {
					put(tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("big/f%d", i)})
				}
				for range scaleEntries {
					put(tar.Header{Typeflag: tar.TypeReg, Name: "big/.wh..wh..opq"})
					put(tar.Header{Typeflag: tar.TypeReg, Name: "big/sub/.wh..wh..opq"})
				}
			},
			want:     []string{"big"},
			wantBig:  scaleEntries + 1,
			maxReads: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.lower != nil {
				if err := tc.lower(root); err != nil {
					t.Fatal(err)
				}
			}
			a := newApplier(Options{Root: root})
			if _, err := a.apply(context.Background(), streamTar(tc.write)); err != nil {
				t.Fatal(err)
			}

			got, dirs, err := readNames(root)
			if err != nil {
				t.Fatal(err)
			}
			if !equalNames(got, tc.want) {
				t.Errorf("target contains %d names (%.3v), want %d", len(got), got, len(tc.want))
			}
			if tc.wantBig < 0 && dirs != 0 {
				t.Errorf("target contains %d directories, want only files", dirs)
			}
			if tc.wantBig >= 0 {
				big, _, err := readNames(filepath.Join(root, "big"))
				if err != nil {
					t.Fatal(err)
				}
				if len(big) != tc.wantBig {
					t.Errorf("big/ contains %d entries, want %d", len(big), tc.wantBig)
				}
				for _, name := range big {
					if name == "lower" {
						t.Errorf("big/lower of the lower layer is still there")
					}
				}
			}
			if a.exactDirs.visits > tc.maxVisits {
				t.Errorf("removals looked at %d directory records, want at most %d",
					a.exactDirs.visits, tc.maxVisits)
			}
			if a.dirReads > tc.maxReads {
				t.Errorf("whiteouts read %d directories, want at most %d",
					a.dirReads, tc.maxReads)
			}
		})
	}
}

func scaleNames() []string {
	names := make([]string, scaleEntries)
	for i := range names {
		names[i] = fmt.Sprintf("x%d", i)
	}
	sort.Strings(names)
	return names
}

// readNames returns the sorted names in dir and how many are directories.
func readNames(dir string) ([]string, int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	names := make([]string, len(entries))
	dirs := 0
	for i, e := range entries {
		names[i] = e.Name()
		if e.IsDir() {
			dirs++
		}
	}
	return names, dirs, nil
}

func equalNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
