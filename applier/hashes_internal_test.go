package applier

import (
	"bytes"
	"math/rand/v2"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/chroot-applier/containerd-chroot-applier/internal/sha256pair"
)

// TestLayerHashesPairs feeds layerHashes blob and tar bytes the way a stage
// does: tar bytes decoded into a few reused buffers, blob bytes read in
// between. Each buffer is overwritten right after release, so a tar byte
// hashed later than that would change the diffID. Where the tar is not
// hashed in pairs, the test hashes each filled buffer as the sending
// goroutine does.
func TestLayerHashesPairs(t *testing.T) {
	for _, sameGoroutine := range []bool{true, false} {
		rng := rand.New(rand.NewPCG(1, 2))
		blob := make([]byte, 3<<20+17)
		tar := make([]byte, 5<<20+3)
		for i := range blob {
			blob[i] = byte(rng.Uint32())
		}
		for i := range tar {
			tar[i] = byte(rng.Uint32())
		}

		h := newLayerHashes(digest.SHA256)
		h.hashTar(sameGoroutine)
		sent := h.sentTar()
		if paired := sameGoroutine && sha256pair.Accelerated(); paired != (sent == nil) {
			t.Errorf("same goroutine %v: tar hashed in pairs is %v, want %v",
				sameGoroutine, !paired, paired)
		}
		buffers := [][]byte{make([]byte, 64<<10), make([]byte, 64<<10), make([]byte, 64<<10)}
		next := 0
		blobLeft, tarLeft := blob, tar
		for len(tarLeft) > 0 {
			buf := buffers[next%len(buffers)]
			next++
			h.release(buf)
			for i := range buf {
				buf[i] = 0xff
			}
			filled := 0
			for filled < len(buf) && len(tarLeft) > 0 {
				n := min(len(buf)-filled, len(tarLeft), 1+rng.IntN(20000))
				copy(buf[filled:], tarLeft[:n])
				h.tarDecoded(buf[filled : filled+n])
				filled += n
				tarLeft = tarLeft[n:]
				if len(blobLeft) > 0 && rng.IntN(2) == 0 {
					m := min(len(blobLeft), 1+rng.IntN(30000))
					h.blobRead(blobLeft[:m])
					blobLeft = blobLeft[m:]
				}
			}
			if sent != nil {
				sent.Write(buf[:filled])
			}
		}
		h.blobRead(blobLeft)
		h.finish()

		got, want := digest.NewDigest(digest.SHA256, h.blob), digest.FromBytes(blob)
		if got != want {
			t.Errorf("same goroutine %v: blob digest is %s, want %s", sameGoroutine, got, want)
		}
		if got, want := digest.NewDigest(digest.SHA256, h.tar), digest.FromBytes(tar); got != want {
			t.Errorf("same goroutine %v: tar digest is %s, want %s", sameGoroutine, got, want)
		}
		if len(h.pending) != 0 {
			t.Errorf("same goroutine %v: %d tar slices still pending after finish",
				sameGoroutine, len(h.pending))
		}
	}
}

// TestLayerHashesOtherAlgorithm checks a blob digest that is not SHA-256,
// which is hashed apart from the tar.
func TestLayerHashesOtherAlgorithm(t *testing.T) {
	blob := bytes.Repeat([]byte("blob"), 5000)
	tar := bytes.Repeat([]byte("tar!"), 7000)
	h := newLayerHashes(digest.SHA512)
	h.hashTar(true)
	h.blobRead(blob[:100])
	h.tarDecoded(tar)
	h.blobRead(blob[100:])
	h.finish()
	sent := h.sentTar()
	if sent == nil {
		t.Fatal("tar of a SHA-512 blob is hashed in pairs, want by the sending goroutine")
	}
	sent.Write(tar)
	got, want := digest.NewDigest(digest.SHA512, h.blob), digest.SHA512.FromBytes(blob)
	if got != want {
		t.Errorf("blob digest is %s, want %s", got, want)
	}
	if got, want := digest.NewDigest(digest.SHA256, h.tar), digest.FromBytes(tar); got != want {
		t.Errorf("tar digest is %s, want %s", got, want)
	}
}
