//go:build !amd64 || purego

package sha256pair

// accelerated is false where there is no assembly for the SHA extensions.
// It is a variable, as on amd64, so that the tests build everywhere.
var accelerated = false

// block hashes the whole blocks of p into h.
func block(h *[8]uint32, p []byte) {
	blockGeneric(h, p)
}

// blockPair hashes the whole blocks of pa into a and as many bytes of pb
// into b, one stream after the other.
func blockPair(a *[8]uint32, pa []byte, b *[8]uint32, pb []byte) {
	whole := len(pa) &^ (BlockSize - 1)
	blockGeneric(a, pa[:whole])
	blockGeneric(b, pb[:whole])
}
