// Package sha256pair computes SHA-256 digests of two streams at once.
//
// On x86-64 processors with the SHA extensions, one SHA-256 stream is bound
// by the latency of the round instruction rather than by its throughput.
// WritePair interleaves the blocks of two digests in one loop, which hashes
// both in less time than hashing them one after the other. The parent of an
// apply hashes both the compressed blob and the tar it decodes from it, so
// it has two such streams.
package sha256pair

import (
	"encoding/binary"
	"hash"
)

const (
	// Size is the size of a SHA-256 digest in bytes.
	Size = 32
	// BlockSize is the block size of SHA-256 in bytes.
	BlockSize = 64
)

// initial is the state of SHA-256 before any block (FIPS 180-4, section
// 5.3.3).
var initial = [8]uint32{
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

// Digest is a SHA-256 hash that WritePair can update together with another.
// It implements hash.Hash.
type Digest struct {
	h [8]uint32
	// block holds the bytes of an incomplete block, nx of them.
	block [BlockSize]byte
	nx    int
	// length is the number of bytes written.
	length uint64
}

var _ hash.Hash = (*Digest)(nil)

// New returns a SHA-256 digest of nothing written yet.
func New() *Digest {
	d := &Digest{}
	d.Reset()
	return d
}

// Reset discards everything written.
func (d *Digest) Reset() {
	d.h = initial
	d.nx = 0
	d.length = 0
}

// Size returns the size of the digest, 32 bytes.
func (d *Digest) Size() int { return Size }

// BlockSize returns the block size of SHA-256, 64 bytes.
func (d *Digest) BlockSize() int { return BlockSize }

// Write adds p to the hashed stream. It never fails.
func (d *Digest) Write(p []byte) (int, error) {
	n := len(p)
	p = d.fill(p)
	if whole := len(p) &^ (BlockSize - 1); whole > 0 {
		block(&d.h, p[:whole])
		d.length += uint64(whole)
		p = p[whole:]
	}
	d.keep(p)
	return n, nil
}

// fill adds the start of p to an incomplete block, hashes the block once it
// is complete, and returns the rest of p.
func (d *Digest) fill(p []byte) []byte {
	if d.nx == 0 {
		return p
	}
	n := copy(d.block[d.nx:], p)
	d.nx += n
	if d.nx == BlockSize {
		block(&d.h, d.block[:])
		d.length += BlockSize
		d.nx = 0
	}
	return p[n:]
}

// keep stores p, which is shorter than a block, as the incomplete block.
func (d *Digest) keep(p []byte) {
	if len(p) > 0 {
		d.nx = copy(d.block[:], p)
	}
}

// Sum appends the digest of what was written to b. It does not change d.
func (d *Digest) Sum(b []byte) []byte {
	c := *d
	total := c.length + uint64(c.nx)
	// The padding is a one bit, zeros up to 8 bytes before the end of a
	// block, and the length in bits as a big-endian 64-bit number.
	var pad [2 * BlockSize]byte
	pad[0] = 0x80
	n := 1 + (BlockSize-(c.nx+1+8)%BlockSize)%BlockSize
	binary.BigEndian.PutUint64(pad[n:], total*8)
	c.Write(pad[:n+8])

	for _, w := range c.h {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	return b
}

// WritePair adds pa to a and pb to b. Where both digests are at a block
// boundary, it hashes the blocks of pa and pb together, one of each at a
// time, and hashes what is left of the longer input alone.
func WritePair(a *Digest, pa []byte, b *Digest, pb []byte) {
	if !accelerated {
		a.Write(pa)
		b.Write(pb)
		return
	}
	pa = a.fill(pa)
	pb = b.fill(pb)
	if a.nx == 0 && b.nx == 0 {
		whole := min(len(pa), len(pb)) &^ (BlockSize - 1)
		if whole > 0 {
			blockPair(&a.h, pa[:whole], &b.h, pb[:whole])
			a.length += uint64(whole)
			b.length += uint64(whole)
			pa, pb = pa[whole:], pb[whole:]
		}
	}
	a.Write(pa)
	b.Write(pb)
}

// Accelerated reports whether WritePair hashes two streams at once on this
// processor. Where it does not, crypto/sha256 is faster than a Digest.
func Accelerated() bool {
	return accelerated
}
