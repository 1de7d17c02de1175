//go:build amd64 && !purego

#include "textflag.h"

// The SHA-NI round instruction SHA256RNDS2 runs two rounds and waits on the
// result of the two before, so one stream leaves most of the unit idle.
// blockPair interleaves the rounds of two independent streams so that each
// fills the wait of the other. Each stream keeps its state as two registers
// in the order the instruction uses: A, B, E, F and C, D, G, H.

// LOAD puts the 16 bytes at off(data) into m as four big-endian words.
#define LOAD(off, data, m) \
	MOVOU off(data), m; \
	PSHUFB X15, m

// SCHEDULE computes the next four message words into m0 from the previous
// sixteen: m0 holds the oldest four, m3 the newest, and t is scratch.
#define SCHEDULE(m0, m1, m2, m3, t) \
	SHA256MSG1 m1, m0; \
	MOVO m3, t; \
	PALIGNR $4, m2, t; \
	PADDD t, m0; \
	SHA256MSG2 m3, m0

// ROUNDS runs four rounds with the message words m and the round constants
// at off(AX). Each instruction leaves the new A, B, E, F in its destination,
// and the old A, B, E, F are the new C, D, G, H, so two swap the roles back.
#define ROUNDS(off, m, abef, cdgh) \
	MOVO m, X0; \
	PADDD off(AX), X0; \
	SHA256RNDS2 X0, abef, cdgh; \
	PSHUFD $0x0e, X0, X0; \
	SHA256RNDS2 X0, cdgh, abef

// STATE_IN loads the eight state words at h into abef and cdgh.
#define STATE_IN(h, abef, cdgh, t) \
	MOVOU (h), abef; \
	MOVOU 16(h), cdgh; \
	PSHUFD $0xb1, abef, abef; \
	PSHUFD $0x1b, cdgh, cdgh; \
	MOVO abef, t; \
	PALIGNR $8, cdgh, abef; \
	PBLENDW $0xf0, t, cdgh

// STATE_OUT stores abef and cdgh back as the eight state words at h.
#define STATE_OUT(h, abef, cdgh, t) \
	PSHUFD $0x1b, abef, abef; \
	PSHUFD $0xb1, cdgh, cdgh; \
	MOVO abef, t; \
	PBLENDW $0xf0, cdgh, abef; \
	PALIGNR $8, t, cdgh; \
	MOVOU abef, (h); \
	MOVOU cdgh, 16(h)

// ADD_SAVED adds the state saved at off(SP) to s.
#define ADD_SAVED(off, s, t) \
	MOVOU off(SP), t; \
	PADDD t, s

#define PAIR_LOAD(off, a, b) \
	LOAD(off, SI, a); \
	LOAD(off, R9, b); \
	ROUNDS(off, a, X1, X2); \
	ROUNDS(off, b, X7, X8)

#define PAIR_NEXT(off, a0, a1, a2, a3, b0, b1, b2, b3) \
	SCHEDULE(a0, a1, a2, a3, X13); \
	SCHEDULE(b0, b1, b2, b3, X14); \
	ROUNDS(off, a0, X1, X2); \
	ROUNDS(off, b0, X7, X8)

#define ONE_LOAD(off, a) \
	LOAD(off, SI, a); \
	ROUNDS(off, a, X1, X2)

#define ONE_NEXT(off, a0, a1, a2, a3) \
	SCHEDULE(a0, a1, a2, a3, X13); \
	ROUNDS(off, a0, X1, X2)

// func blockPair(a *[8]uint32, pa []byte, b *[8]uint32, pb []byte)
// It hashes the whole blocks of pa into a and as many bytes of pb into b.
TEXT ·blockPair(SB), NOSPLIT, $64-64
	MOVQ a+0(FP), DI
	MOVQ pa_base+8(FP), SI
	MOVQ pa_len+16(FP), DX
	MOVQ b+32(FP), R8
	MOVQ pb_base+40(FP), R9
	ANDQ $~63, DX
	JZ   pairDone
	ADDQ SI, DX
	STATE_IN(DI, X1, X2, X13)
	STATE_IN(R8, X7, X8, X14)
	MOVOU byteSwap<>(SB), X15
	LEAQ  k<>(SB), AX

pairLoop:
	MOVOU X1, 0(SP)
	MOVOU X2, 16(SP)
	MOVOU X7, 32(SP)
	MOVOU X8, 48(SP)
	PAIR_LOAD(0, X3, X9)
	PAIR_LOAD(16, X4, X10)
	PAIR_LOAD(32, X5, X11)
	PAIR_LOAD(48, X6, X12)
	PAIR_NEXT(64, X3, X4, X5, X6, X9, X10, X11, X12)
	PAIR_NEXT(80, X4, X5, X6, X3, X10, X11, X12, X9)
	PAIR_NEXT(96, X5, X6, X3, X4, X11, X12, X9, X10)
	PAIR_NEXT(112, X6, X3, X4, X5, X12, X9, X10, X11)
	PAIR_NEXT(128, X3, X4, X5, X6, X9, X10, X11, X12)
	PAIR_NEXT(144, X4, X5, X6, X3, X10, X11, X12, X9)
	PAIR_NEXT(160, X5, X6, X3, X4, X11, X12, X9, X10)
	PAIR_NEXT(176, X6, X3, X4, X5, X12, X9, X10, X11)
	PAIR_NEXT(192, X3, X4, X5, X6, X9, X10, X11, X12)
	PAIR_NEXT(208, X4, X5, X6, X3, X10, X11, X12, X9)
	PAIR_NEXT(224, X5, X6, X3, X4, X11, X12, X9, X10)
	PAIR_NEXT(240, X6, X3, X4, X5, X12, X9, X10, X11)
	ADD_SAVED(0, X1, X13)
	ADD_SAVED(16, X2, X13)
	ADD_SAVED(32, X7, X14)
	ADD_SAVED(48, X8, X14)
	ADDQ $64, SI
	ADDQ $64, R9
	CMPQ SI, DX
	JB   pairLoop
	STATE_OUT(DI, X1, X2, X13)
	STATE_OUT(R8, X7, X8, X14)

pairDone:
	RET

// func blockOne(h *[8]uint32, p []byte)
// It hashes the whole blocks of p into h.
TEXT ·blockOne(SB), NOSPLIT, $32-32
	MOVQ h+0(FP), DI
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), DX
	ANDQ $~63, DX
	JZ   oneDone
	ADDQ SI, DX
	STATE_IN(DI, X1, X2, X13)
	MOVOU byteSwap<>(SB), X15
	LEAQ  k<>(SB), AX

oneLoop:
	MOVOU X1, 0(SP)
	MOVOU X2, 16(SP)
	ONE_LOAD(0, X3)
	ONE_LOAD(16, X4)
	ONE_LOAD(32, X5)
	ONE_LOAD(48, X6)
	ONE_NEXT(64, X3, X4, X5, X6)
	ONE_NEXT(80, X4, X5, X6, X3)
	ONE_NEXT(96, X5, X6, X3, X4)
	ONE_NEXT(112, X6, X3, X4, X5)
	ONE_NEXT(128, X3, X4, X5, X6)
	ONE_NEXT(144, X4, X5, X6, X3)
	ONE_NEXT(160, X5, X6, X3, X4)
	ONE_NEXT(176, X6, X3, X4, X5)
	ONE_NEXT(192, X3, X4, X5, X6)
	ONE_NEXT(208, X4, X5, X6, X3)
	ONE_NEXT(224, X5, X6, X3, X4)
	ONE_NEXT(240, X6, X3, X4, X5)
	ADD_SAVED(0, X1, X13)
	ADD_SAVED(16, X2, X13)
	ADDQ $64, SI
	CMPQ SI, DX
	JB   oneLoop
	STATE_OUT(DI, X1, X2, X13)

oneDone:
	RET

// func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL subleaf+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// byteSwap is the PSHUFB mask that turns four little-endian words into
// big-endian ones.
DATA byteSwap<>+0(SB)/8, $0x0405060700010203
DATA byteSwap<>+8(SB)/8, $0x0c0d0e0f08090a0b
GLOBL byteSwap<>(SB), NOPTR|RODATA, $16

// k holds the 64 round constants of SHA-256 (FIPS 180-4, section 4.2.2).
DATA k<>+0(SB)/8, $0x71374491428a2f98
DATA k<>+8(SB)/8, $0xe9b5dba5b5c0fbcf
DATA k<>+16(SB)/8, $0x59f111f13956c25b
DATA k<>+24(SB)/8, $0xab1c5ed5923f82a4
DATA k<>+32(SB)/8, $0x12835b01d807aa98
DATA k<>+40(SB)/8, $0x550c7dc3243185be
DATA k<>+48(SB)/8, $0x80deb1fe72be5d74
DATA k<>+56(SB)/8, $0xc19bf1749bdc06a7
DATA k<>+64(SB)/8, $0xefbe4786e49b69c1
DATA k<>+72(SB)/8, $0x240ca1cc0fc19dc6
DATA k<>+80(SB)/8, $0x4a7484aa2de92c6f
DATA k<>+88(SB)/8, $0x76f988da5cb0a9dc
DATA k<>+96(SB)/8, $0xa831c66d983e5152
DATA k<>+104(SB)/8, $0xbf597fc7b00327c8
DATA k<>+112(SB)/8, $0xd5a79147c6e00bf3
DATA k<>+120(SB)/8, $0x1429296706ca6351
DATA k<>+128(SB)/8, $0x2e1b213827b70a85
DATA k<>+136(SB)/8, $0x53380d134d2c6dfc
DATA k<>+144(SB)/8, $0x766a0abb650a7354
DATA k<>+152(SB)/8, $0x92722c8581c2c92e
DATA k<>+160(SB)/8, $0xa81a664ba2bfe8a1
DATA k<>+168(SB)/8, $0xc76c51a3c24b8b70
DATA k<>+176(SB)/8, $0xd6990624d192e819
DATA k<>+184(SB)/8, $0x106aa070f40e3585
DATA k<>+192(SB)/8, $0x1e376c0819a4c116
DATA k<>+200(SB)/8, $0x34b0bcb52748774c
DATA k<>+208(SB)/8, $0x4ed8aa4a391c0cb3
DATA k<>+216(SB)/8, $0x682e6ff35b9cca4f
DATA k<>+224(SB)/8, $0x78a5636f748f82ee
DATA k<>+232(SB)/8, $0x8cc7020884c87814
DATA k<>+240(SB)/8, $0xa4506ceb90befffa
DATA k<>+248(SB)/8, $0xc67178f2bef9a3f7
GLOBL k<>(SB), NOPTR|RODATA, $256
