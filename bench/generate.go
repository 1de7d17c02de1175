package main

import (
	"archive/tar"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"strings"
	"time"
)

const (
	// smallFileCount files of 0 to smallFileMax bytes make the small input.
	smallFileCount = 100_000
	smallFileMax   = 4 << 10
	// smallFilesPerDir files share a leaf directory; the leaf directories
	// form a tree smallTreeDepth levels deep with smallTreeFanout branches.
	smallFilesPerDir = 16
	smallTreeDepth   = 5
	smallTreeFanout  = 8

	// largeFileCount files of largeFileSize bytes make the large input.
	largeFileCount = 4
	largeFileSize  = 256 << 20
)

// generatorTime is the modification time of every generated entry, so that
// the same seed always gives the same blob.
var generatorTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// words is the vocabulary of the small files' text, which makes them
// compress about as well as configuration files and scripts.
var words = strings.Fields(`layer snapshot overlay upperdir lowerdir whiteout
	opaque content digest manifest config index platform runtime container
	image mount namespace root chroot pivot extract apply diff tar gzip zstd
	0 1 2 3 4 5 6 7 8 9 = { } ; # / . - _ if then else fi for do done`)

// writeSmallFiles writes smallFileCount files of seeded random sizes and
// text content into a deep directory tree.
func writeSmallFiles(tw *tar.Writer) error {
	rng := rand.New(rand.NewPCG(1, 2))
	made := map[string]bool{}
	var buf []byte
	for i := range smallFileCount {
		dir := smallFileDir(i / smallFilesPerDir)
		if err := writeParents(tw, made, dir); err != nil {
			return err
		}
		size := rng.IntN(smallFileMax + 1)
		buf = appendText(buf[:0], rng, size)
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     path.Join(dir, fmt.Sprintf("file%05d.txt", i)),
			Mode:     0o644,
			Size:     int64(size),
			ModTime:  generatorTime,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// smallFileDir returns the leaf directory with index leaf: its path spells
// leaf in base smallTreeFanout, one digit per level.
func smallFileDir(leaf int) string {
	parts := []string{"usr", "share", "bench"}
	digits := make([]string, smallTreeDepth)
	for level := smallTreeDepth - 1; level >= 0; level-- {
		digits[level] = fmt.Sprintf("d%d", leaf%smallTreeFanout)
		leaf /= smallTreeFanout
	}
	return path.Join(append(parts, digits...)...)
}

// writeParents writes a directory entry for dir and each of its parents that
// has none yet, as image builders do.
func writeParents(tw *tar.Writer, made map[string]bool, dir string) error {
	if dir == "." || made[dir] {
		return nil
	}
	if err := writeParents(tw, made, path.Dir(dir)); err != nil {
		return err
	}
	made[dir] = true
	return tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeDir,
		Name:     dir + "/",
		Mode:     0o755,
		ModTime:  generatorTime,
		Format:   tar.FormatPAX,
	})
}

// appendText appends size bytes of lines made of words to buf.
func appendText(buf []byte, rng *rand.Rand, size int) []byte {
	for len(buf) < size {
		buf = append(buf, words[rng.IntN(len(words))]...)
		if rng.IntN(8) == 0 {
			buf = append(buf, '\n')
		} else {
			buf = append(buf, ' ')
		}
	}
	return buf[:size]
}

// writeLargeFiles writes largeFileCount files of seeded pseudo-random bytes,
// which gzip cannot compress.
func writeLargeFiles(tw *tar.Writer) error {
	if err := writeParents(tw, map[string]bool{}, "var/lib/bench"); err != nil {
		return err
	}
	for i := range largeFileCount {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     fmt.Sprintf("var/lib/bench/large%d.bin", i),
			Mode:     0o644,
			Size:     largeFileSize,
			ModTime:  generatorTime,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		var seed [32]byte
		seed[0] = byte(i)
		src := rand.NewChaCha8(seed)
		if _, err := io.CopyN(tw, src, largeFileSize); err != nil {
			return err
		}
	}
	return nil
}
