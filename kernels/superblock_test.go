package kernels

import (
	"math/rand/v2"
	"testing"
)

// The superblock header is spelled out in superblock.go; check it bit by
// bit: code j at bits 6j..6j+5 after the super-scale(s).
func TestSuperLayout(t *testing.T) {
	for _, f := range []Format{{Type: Q4, Group: SuperBlock, Super: true}, {Type: Q3, Group: SuperBlock, Asym: true, Super: true}} {
		n, hdr := superChunks, 2
		if f.Asym {
			n, hdr = 2*superChunks, 4
		}
		for j := 0; j < n; j++ {
			for _, code := range []uint8{1, 0x20, 0x3f} {
				codes := make([]uint8, n)
				if !f.Asym {
					for i := range codes {
						codes[i] = symCodeOffset // sub-scale 0
					}
				}
				codes[j] = code
				scales, mins := make([]float32, superChunks), make([]float32, superChunks)
				for i := range scales {
					scales[i] = subValue(1, codes[i], !f.Asym)
					if f.Asym {
						mins[i] = subValue(0.5, codes[superChunks+i], false)
					}
				}
				superMins := []float32{0.5}
				if !f.Asym {
					mins, superMins = nil, nil
				}
				buf := make([]byte, f.BlockBytes())
				if err := PackSuperRow(f, buf, make([]uint8, SuperBlock), scales, mins, []float32{1}, superMins); err != nil {
					t.Fatal(err)
				}
				want := make([]byte, n*codeBits/8)
				for i, c := range codes {
					for k := 0; k < codeBits; k++ {
						if c>>k&1 != 0 {
							want[(codeBits*i+k)/8] |= 1 << ((codeBits*i + k) % 8)
						}
					}
				}
				if f16At(buf, 0) != 1 || (f.Asym && f16At(buf, 2) != 0.5) {
					t.Fatalf("%s: super-scales %v %v", f, f16At(buf, 0), f16At(buf, 2))
				}
				for b, w := range want {
					if buf[hdr+b] != w {
						t.Fatalf("%s code %d = %#x: header byte %d = %08b, want %08b", f, j, code, hdr+b, buf[hdr+b], w)
					}
				}
			}
		}
	}
}

// SnapSuperScales puts the extreme sub-scale on the extreme code, so its
// result is a fixed point: packing snapped values keeps the super-scales,
// and SnapSub with the block's super-scale moves single codes exactly.
func TestSnapSuperScales(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	for _, f := range SuperFormats() {
		for trial := 0; trial < 200; trial++ {
			sc := gaussian(rng, superChunks, 0.01)
			mn := gaussian(rng, superChunks, 0.03)
			if f.Asym {
				for i := range sc {
					sc[i] = abs32(sc[i])
				}
			}
			d, m := SnapSuperScales(f, sc, mn)
			again := append([]float32(nil), sc...)
			againM := append([]float32(nil), mn...)
			d2, m2 := SnapSuperScales(f, again, againM)
			if d2 != d || (f.Asym && m2 != m) {
				t.Fatalf("%s: snapping twice moved the super-scales %v,%v -> %v,%v", f, d, m, d2, m2)
			}
			for i := range sc {
				if again[i] != sc[i] || (f.Asym && againM[i] != mn[i]) {
					t.Fatalf("%s: snapping twice moved sub-group %d", f, i)
				}
				if SnapSub(f, d, sc[i], false) != sc[i] {
					t.Fatalf("%s: SnapSub moved a snapped scale", f)
				}
			}
			// inside the codes' range, the snapped scale is within half a
			// step of the requested one
			x := (rng.Float32()*62 - 31) * d
			if f.Asym {
				x = rng.Float32() * 62 * d
			}
			if y := SnapSub(f, d, x, false); abs32(y-x) > abs32(d)/2*1.0001 {
				t.Fatalf("%s: SnapSub(%v) = %v with step %v", f, x, y, d)
			}
		}
	}
}
