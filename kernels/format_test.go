package kernels

import (
	"errors"
	"math"
	"testing"
)

// Block sizes are part of the file format: a change here breaks every stored model.
func TestBlockBytes(t *testing.T) {
	want := map[string]struct {
		bytes int
		bpw   float64
	}{
		"f32": {4, 32}, "f16": {2, 16}, "bf16": {2, 16}, "q8_g32": {34, 8.5}, "q6_g32": {26, 6.5}, "q5_g32": {22, 5.5},
		"q4_g32": {18, 4.5}, "q4_g64": {34, 4.25}, "q4_g128": {66, 4.125},
		"q4_g32_asym": {20, 5}, "q4_g64_asym": {36, 4.5}, "q4_g128_asym": {68, 4.25},
		"q3_g32": {14, 3.5}, "q3_g64": {26, 3.25}, "q3_g128": {50, 3.125},
		"q3_g32_asym": {16, 4}, "q3_g64_asym": {28, 3.5}, "q3_g128_asym": {52, 3.25},
		// superblocks of 256: f16 super-scale(s), 6-bit codes, 8 chunks
		"q4_k": {2 + 6 + 128, 4.25}, "q4_k_asym": {4 + 12 + 128, 4.5},
		"q3_k": {2 + 6 + 96, 3.25}, "q3_k_asym": {4 + 12 + 96, 3.5}, "q6_k": {2 + 6 + 192, 6.25},
		"q5_k": {2 + 6 + 160, 5.25},
	}
	fs := Formats()
	if len(fs) != len(want) {
		t.Fatalf("Formats() has %d entries, table has %d", len(fs), len(want))
	}
	for _, f := range fs {
		w, ok := want[f.String()]
		if !ok {
			t.Fatalf("format %s missing from the table", f)
		}
		if f.BlockBytes() != w.bytes || f.BitsPerWeight() != w.bpw {
			t.Errorf("%s: block %d bytes %.4g bpw, want %d and %.4g", f, f.BlockBytes(), f.BitsPerWeight(), w.bytes, w.bpw)
		}
		if err := f.Valid(256); err != nil {
			t.Errorf("%s.Valid(256): %v", f, err)
		}
		if got := f.RowBytes(256); got*8 != int(w.bpw*256) {
			t.Errorf("%s.RowBytes(256) = %d, want %v bits", f, got, w.bpw*256)
		}
	}
	if q3 := q3ChunkBytes * 8; q3 != 3*ChunkSize {
		t.Errorf("q3 chunk has %d bits for 32 weights, want 96", q3)
	}
	if q5 := q5ChunkBytes * 8; q5 != 5*ChunkSize {
		t.Errorf("q5 chunk has %d bits for 32 weights, want 160", q5)
	}
}

func TestParseFormatRoundTrip(t *testing.T) {
	for _, f := range Formats() {
		g, err := ParseFormat(f.String())
		if err != nil || g != f {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", f.String(), g, err, f)
		}
	}
	if f, err := ParseFormat("q8"); err != nil || f != FormatQ8 {
		t.Errorf("ParseFormat(q8) = %v, %v", f, err)
	}
	if f, err := ParseFormat("q5"); err != nil || f != FormatQ5 {
		t.Errorf("ParseFormat(q5) = %v, %v", f, err)
	}
	for _, bad := range []string{"", "q4", "q4_g16", "q4_g32_sym", "q4_gx", "q8_g64", "q8_g32_asym", "f16_g32", "f32_asym", "q5_g64", "q5_g32_asym", "q4_g32_asym_x", "q8_k", "q6_k_asym", "q5_k_asym", "q4_k_g32", "q4_k_asym_x", "f16_k"} {
		if f, err := ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q) = %v, want error", bad, f)
		} else if !errors.Is(err, ErrFormat) {
			t.Errorf("ParseFormat(%q) error %v does not wrap ErrFormat", bad, err)
		}
	}
}

func TestValidRejects(t *testing.T) {
	cases := []struct {
		f    Format
		cols int
		err  error
	}{
		{Format{}, 32, ErrFormat},
		{Format{Type: Q4, Group: 48}, 96, ErrFormat},
		{Format{Type: Q4, Group: 0}, 32, ErrFormat},
		{Format{Type: Q8, Group: 32, Asym: true}, 32, ErrFormat},
		{Format{Type: F16, Group: 32}, 32, ErrFormat},
		{Format{Type: 99}, 32, ErrFormat},
		{Format{Type: Q4, Group: 64}, 96, ErrShape},
		{Format{Type: Q3, Group: 128}, 0, ErrShape},
		{FormatF32, -1, ErrShape},
	}
	for _, c := range cases {
		if err := c.f.Valid(c.cols); !errors.Is(err, c.err) {
			t.Errorf("%v.Valid(%d) = %v, want %v", c.f, c.cols, err, c.err)
		}
	}
	if err := FormatF32.Valid(7); err != nil {
		t.Errorf("f32 with 7 columns: %v", err)
	}
}

// FuzzParseFormat: any string either fails cleanly or parses to a format
// whose String parses back to itself.
func FuzzParseFormat(f *testing.F) {
	for _, s := range []string{"q4_g32_asym", "q3_g128", "q8", "q5", "q5_k", "bf16", "q4_g", "q4_g-32", "_", "q3_g64_asym_asym"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fm, err := ParseFormat(s)
		if err != nil {
			return
		}
		if err := fm.check(); err != nil {
			t.Fatalf("ParseFormat(%q) returned invalid %v: %v", s, fm, err)
		}
		back, err := ParseFormat(fm.String())
		if err != nil || back != fm {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", s, fm, fm.String(), back, err)
		}
		for _, cols := range []int{-32, 0, 1, 31, 32, 96, 128} {
			if fm.Valid(cols) == nil && fm.RowBytes(cols) <= 0 {
				t.Fatalf("%v valid for %d columns with %d row bytes", fm, cols, fm.RowBytes(cols))
			}
		}
	})
}

// FuzzMatrix: any (format, shape, bytes) either fails Validate with an error
// or multiplies, dequantizes and unpacks without panicking; every stored bit
// pattern (NaN scales included) is a legal input.
func FuzzMatrix(f *testing.F) {
	f.Add(uint8(4), uint16(2), uint16(64), make([]byte, 2*36))
	f.Add(uint8(10), uint16(1), uint16(96), make([]byte, 3*16))
	f.Add(uint8(0), uint16(3), uint16(7), make([]byte, 84))
	f.Add(uint8(3), uint16(1), uint16(32), []byte{0xff, 0x7f})
	for i, fm := range Formats() { // 8 rows: tileable when quantized
		if fm.Type.Quantized() {
			cols := max(128, fm.Group)
			f.Add(uint8(i), uint16(8), uint16(cols), make([]byte, 8*fm.RowBytes(cols)))
		}
	}
	f.Fuzz(func(t *testing.T, fi uint8, rows, cols uint16, data []byte) {
		fs := Formats()
		m := &Matrix{Format: fs[int(fi)%len(fs)], Rows: int(rows % 64), Cols: int(cols % 1024), Data: data}
		if err := m.Validate(); err != nil {
			if !errors.Is(err, ErrShape) && !errors.Is(err, ErrFormat) {
				t.Fatalf("Validate error %v wraps neither ErrShape nor ErrFormat", err)
			}
			return
		}
		x := NewActivation(m.Cols)
		for i := range x.F32 {
			x.F32[i] = float32(i%7) - 3
		}
		x.Quantize()
		dst := make([]float32, m.Rows)
		if err := m.MulVec(dst, x, 0, m.Rows); err != nil {
			t.Fatal(err)
		}
		row := make([]float32, m.Cols)
		if err := m.Row(m.Rows-1, row); err != nil {
			t.Fatal(err)
		}
		if canTile(m) {
			// the tiled copy dequantizes to the same bits and multiplies
			tm, err := Tile(m, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tm.MulVec(dst, x, 0, m.Rows); err != nil {
				t.Fatal(err)
			}
			trow := make([]float32, m.Cols)
			if err := tm.Row(m.Rows-1, trow); err != nil {
				t.Fatal(err)
			}
			for i := range row {
				if math.Float32bits(row[i]) != math.Float32bits(trow[i]) {
					t.Fatalf("tiled row differs at %d: %v, row-major %v", i, trow[i], row[i])
				}
			}
		}
		if m.Format.Type.Quantized() {
			groups := m.Cols / m.Format.SubGroup()
			lv := make([]uint8, m.Cols)
			if err := UnpackRow(m.Format, lv, make([]float32, groups), make([]float32, groups), m.row(0)); err != nil {
				t.Fatal(err)
			}
		}
	})
}
