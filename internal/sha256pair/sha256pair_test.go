package sha256pair

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// randomBytes returns n bytes from a seeded generator.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestDigestMatchesStandard(t *testing.T) {
	for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 1 << 16} {
		data := randomBytes(uint64(n), n)
		want := sha256.Sum256(data)
		d := New()
		d.Write(data)
		if got := d.Sum(nil); !bytes.Equal(got, want[:]) {
			t.Errorf("digest of %d bytes is %x, want %x", n, got, want)
		}
	}
}

func TestDigestInPieces(t *testing.T) {
	data := randomBytes(1, 10000)
	want := sha256.Sum256(data)
	rng := rand.New(rand.NewPCG(2, 0))
	d := New()
	for p := data; len(p) > 0; {
		n := min(len(p), rng.IntN(200))
		d.Write(p[:n])
		p = p[n:]
	}
	if got := d.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Errorf("digest written in pieces is %x, want %x", got, want)
	}
}

func TestSumLeavesDigest(t *testing.T) {
	d := New()
	d.Write([]byte("first"))
	d.Sum(nil)
	d.Write([]byte("second"))
	want := sha256.Sum256([]byte("firstsecond"))
	if got := d.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Errorf("digest after Sum and Write is %x, want %x", got, want)
	}
}

func TestResetClearsDigest(t *testing.T) {
	d := New()
	d.Write([]byte("discarded"))
	d.Reset()
	want := sha256.Sum256(nil)
	if got := d.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Errorf("digest after Reset is %x, want %x", got, want)
	}
}

// checkPairs writes two streams through WritePair in pieces of random sizes
// and compares both digests with crypto/sha256.
func checkPairs(t *testing.T, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	first := randomBytes(seed, rng.IntN(1<<18))
	second := randomBytes(seed+1000, rng.IntN(1<<18))
	wantFirst := sha256.Sum256(first)
	wantSecond := sha256.Sum256(second)

	a, b := New(), New()
	pa, pb := first, second
	for len(pa) > 0 || len(pb) > 0 {
		// Pieces are mostly whole blocks, as in the applier, with an
		// odd size now and then to move a digest off a block boundary.
		na := min(len(pa), BlockSize*rng.IntN(300))
		nb := min(len(pb), BlockSize*rng.IntN(300))
		if rng.IntN(4) == 0 {
			na = min(len(pa), rng.IntN(5000))
		}
		WritePair(a, pa[:na], b, pb[:nb])
		pa, pb = pa[na:], pb[nb:]
	}
	if got := a.Sum(nil); !bytes.Equal(got, wantFirst[:]) {
		t.Errorf("seed %d: first digest of %d bytes is %x, want %x",
			seed, len(first), got, wantFirst)
	}
	if got := b.Sum(nil); !bytes.Equal(got, wantSecond[:]) {
		t.Errorf("seed %d: second digest of %d bytes is %x, want %x",
			seed, len(second), got, wantSecond)
	}
}

func TestWritePairMatchesStandard(t *testing.T) {
	for seed := range uint64(50) {
		checkPairs(t, seed)
	}
}

func TestWritePairGeneric(t *testing.T) {
	if !accelerated {
		t.Skip("the generic code is what every other test runs here")
	}
	accelerated = false
	defer func() { accelerated = true }()
	for seed := range uint64(10) {
		checkPairs(t, seed)
	}
	TestDigestMatchesStandard(t)
}

func BenchmarkWritePair(b *testing.B) {
	first := randomBytes(1, 256<<10)
	second := randomBytes(2, 256<<10)
	x, y := New(), New()
	b.SetBytes(int64(len(first) + len(second)))
	for b.Loop() {
		WritePair(x, first, y, second)
	}
}

func BenchmarkWriteTwice(b *testing.B) {
	first := randomBytes(1, 256<<10)
	second := randomBytes(2, 256<<10)
	x, y := New(), New()
	b.SetBytes(int64(len(first) + len(second)))
	for b.Loop() {
		x.Write(first)
		y.Write(second)
	}
}

func BenchmarkStandardTwice(b *testing.B) {
	first := randomBytes(1, 256<<10)
	second := randomBytes(2, 256<<10)
	x, y := sha256.New(), sha256.New()
	b.SetBytes(int64(len(first) + len(second)))
	for b.Loop() {
		x.Write(first)
		y.Write(second)
	}
}
