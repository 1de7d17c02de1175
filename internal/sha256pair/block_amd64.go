//go:build amd64 && !purego

package sha256pair

import "golang.org/x/sys/cpu"

// accelerated reports whether the processor has the SHA extensions and the
// SSE versions the assembly uses besides them.
var accelerated = hasSHA() && cpu.X86.HasSSE41 && cpu.X86.HasSSSE3

// hasSHA reports whether CPUID lists the SHA extensions: leaf 7, subleaf 0,
// bit 29 of EBX.
func hasSHA() bool {
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 7 {
		return false
	}
	_, ebx, _, _ := cpuid(7, 0)
	return ebx&(1<<29) != 0
}

//go:noescape
func blockPair(a *[8]uint32, pa []byte, b *[8]uint32, pb []byte)

//go:noescape
func blockOne(h *[8]uint32, p []byte)

func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// block hashes the whole blocks of p into h.
func block(h *[8]uint32, p []byte) {
	if accelerated {
		blockOne(h, p)
		return
	}
	blockGeneric(h, p)
}
