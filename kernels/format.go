package kernels

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Type is the element type of a stored tensor.
type Type uint8

// Stored element types. The zero value is invalid so that an unset Format is
// caught by Valid.
const (
	TypeInvalid Type = iota
	F32              // IEEE binary32
	F16              // IEEE binary16
	BF16             // bfloat16 (top half of a binary32)
	Q8               // 8-bit symmetric, group 32, f16 scale
	Q4               // 4-bit, symmetric or asymmetric, groups 32/64/128
	Q3               // 3-bit, symmetric or asymmetric, groups 32/64/128
	Q6               // 6-bit symmetric, group 32, f16 scale (embedding/output)
	Q5               // 5-bit symmetric, group 32, f16 scale
)

var typeNames = [...]string{TypeInvalid: "invalid", F32: "f32", F16: "f16", BF16: "bf16", Q8: "q8", Q4: "q4", Q3: "q3", Q6: "q6", Q5: "q5"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Quantized reports whether t is a packed integer type (Q8, Q6, Q5, Q4, Q3).
func (t Type) Quantized() bool { return t == Q8 || t == Q6 || t == Q5 || t == Q4 || t == Q3 }

// Bits is the number of bits of one integer level (8, 6, 5, 4, 3), or 0 for float types.
func (t Type) Bits() int {
	switch t {
	case Q8:
		return 8
	case Q6:
		return 6
	case Q5:
		return 5
	case Q4:
		return 4
	case Q3:
		return 3
	}
	return 0
}

// ChunkSize is the number of weights in one SIMD chunk: quantized groups are
// made of 32-weight chunks, and activations are quantized in blocks of the
// same size, so one chunk of weights meets exactly one activation block.
const ChunkSize = 32

// Errors returned by Format.Valid and the packing functions; wrapped with
// details, test with errors.Is.
var (
	ErrFormat = errors.New("kernels: invalid format")
	ErrShape  = errors.New("kernels: bad shape")
)

// Format names a stored weight type: the element type, the quantization group
// size along the input axis (0 for float types) and whether the group also
// stores a minimum (asymmetric) or only a scale (symmetric).
type Format struct {
	Type  Type
	Group int  // weights per quantization group: 32, 64 or 128 (Q8: 32); 0 for F32/F16/BF16; 256 when Super
	Asym  bool // asymmetric: w = d*q + m; symmetric: w = d*(q - 2^(bits-1))
	// Super: the group is a superblock of SuperBlock weights made of
	// 32-weight sub-groups whose scales (and mins) are 6-bit codes times f16
	// super-scales (superblock.go). Q3, Q4, Q5 and Q6 (Q5, Q6 symmetric) only.
	Super bool
}

// Common formats.
var (
	FormatF32  = Format{Type: F32}
	FormatF16  = Format{Type: F16}
	FormatBF16 = Format{Type: BF16}
	FormatQ8   = Format{Type: Q8, Group: 32}
	FormatQ6   = Format{Type: Q6, Group: 32}
	FormatQ5   = Format{Type: Q5, Group: 32}
)

// check reports whether the format itself (ignoring shapes) is well formed.
func (f Format) check() error {
	if f.Super {
		if f.Group != SuperBlock || (f.Type != Q4 && f.Type != Q3 && f.Type != Q6 && f.Type != Q5) || ((f.Type == Q6 || f.Type == Q5) && f.Asym) {
			return fmt.Errorf("%w: superblock formats are q3/q4 (sym or asym) and q5/q6 (sym) with %d-weight blocks (got %s group %d asym %v)",
				ErrFormat, SuperBlock, f.Type, f.Group, f.Asym)
		}
		return nil
	}
	switch f.Type {
	case F32, F16, BF16:
		if f.Group != 0 || f.Asym {
			return fmt.Errorf("%w: %s takes no group or asym flag", ErrFormat, f.Type)
		}
	case Q8, Q6, Q5:
		if f.Group != 32 || f.Asym {
			return fmt.Errorf("%w: %s is symmetric with group 32 (got group %d asym %v)", ErrFormat, f.Type, f.Group, f.Asym)
		}
	case Q4, Q3:
		if f.Group != 32 && f.Group != 64 && f.Group != 128 {
			return fmt.Errorf("%w: %s group %d (want 32, 64 or 128)", ErrFormat, f.Type, f.Group)
		}
	default:
		return fmt.Errorf("%w: unknown type %d", ErrFormat, uint8(f.Type))
	}
	return nil
}

// Valid reports whether f is a well-formed format and a row of cols weights
// can be stored in it (cols > 0 and a multiple of the group size).
func (f Format) Valid(cols int) error {
	if err := f.check(); err != nil {
		return err
	}
	if cols <= 0 {
		return fmt.Errorf("%w: %d columns", ErrShape, cols)
	}
	if f.Group > 0 && cols%f.Group != 0 {
		return fmt.Errorf("%w: %d columns is not a multiple of group %d for %s", ErrShape, cols, f.Group, f)
	}
	return nil
}

// headerBytes is the size of a group's scale (and min) fields: one f16 scale,
// plus one f16 min when asymmetric; for a superblock its f16 super-scale(s)
// and 6-bit codes.
func (f Format) headerBytes() int {
	if f.Super {
		return superHeaderBytes(f.Asym)
	}
	if f.Asym {
		return 4
	}
	return 2
}

// chunkBytes is the packed size of one 32-weight chunk of levels.
func (t Type) chunkBytes() int {
	switch t {
	case Q8:
		return 32
	case Q6:
		return 24
	case Q5:
		return 20
	case Q4:
		return 16
	case Q3:
		return 12
	}
	return 0
}

// BlockBytes is the size of one quantization group in bytes (its header and
// packed levels), or the element size for float types.
func (f Format) BlockBytes() int {
	switch f.Type {
	case F32:
		return 4
	case F16, BF16:
		return 2
	case Q8, Q6, Q5, Q4, Q3:
		return f.headerBytes() + f.Group/ChunkSize*f.Type.chunkBytes()
	}
	return 0
}

// RowBytes is the stored size of one row of cols weights. It is only
// meaningful when f.Valid(cols) is nil.
func (f Format) RowBytes(cols int) int {
	if f.Group > 0 {
		return cols / f.Group * f.BlockBytes()
	}
	return cols * f.BlockBytes()
}

// SubGroup is the number of weights that share one scale (and min): Group,
// or ChunkSize for superblock formats. PackRow and UnpackRow take one scale
// per SubGroup weights.
func (f Format) SubGroup() int {
	if f.Super {
		return ChunkSize
	}
	return f.Group
}

// BitsPerWeight is the storage cost per weight, scales and mins included.
func (f Format) BitsPerWeight() float64 {
	if f.Group > 0 {
		return float64(8*f.BlockBytes()) / float64(f.Group)
	}
	return float64(8 * f.BlockBytes())
}

// String gives the canonical name: "f32", "f16", "bf16", "q8_g32", "q4_g64",
// "q3_g128_asym", and "q4_k", "q3_k_asym" for superblock formats. ParseFormat
// reads it back.
func (f Format) String() string {
	if !f.Type.Quantized() {
		return f.Type.String()
	}
	s := f.Type.String() + "_g" + strconv.Itoa(f.Group)
	if f.Super {
		s = f.Type.String() + "_k"
	}
	if f.Asym {
		s += "_asym"
	}
	return s
}

// ParseFormat parses a format name as written by Format.String, e.g.
// "q4_g32_asym" or "q4_k". "q8", "q6" and "q5" alone are accepted for q8_g32,
// q6_g32 and q5_g32.
func ParseFormat(s string) (Format, error) {
	parts := strings.Split(s, "_")
	var f Format
	for t := F32; int(t) < len(typeNames); t++ {
		if parts[0] == t.String() {
			f.Type = t
		}
	}
	if f.Type == TypeInvalid {
		return Format{}, fmt.Errorf("%w: unknown type in %q", ErrFormat, s)
	}
	rest := parts[1:]
	if (f.Type == Q8 || f.Type == Q6 || f.Type == Q5) && len(rest) == 0 {
		return Format{Type: f.Type, Group: 32}, nil
	}
	if f.Type.Quantized() && len(rest) > 0 && rest[0] == "k" {
		f.Super, f.Group = true, SuperBlock
		rest = rest[1:]
		if len(rest) > 0 && rest[0] == "asym" {
			f.Asym = true
			rest = rest[1:]
		}
	} else if f.Type.Quantized() {
		if len(rest) == 0 || !strings.HasPrefix(rest[0], "g") {
			return Format{}, fmt.Errorf("%w: %q needs a group suffix like _g32", ErrFormat, s)
		}
		g, err := strconv.Atoi(rest[0][1:])
		if err != nil {
			return Format{}, fmt.Errorf("%w: group in %q: %w", ErrFormat, s, err)
		}
		f.Group = g
		rest = rest[1:]
		if len(rest) > 0 && rest[0] == "asym" {
			f.Asym = true
			rest = rest[1:]
		}
	}
	if len(rest) > 0 {
		return Format{}, fmt.Errorf("%w: unexpected %q in %q", ErrFormat, strings.Join(rest, "_"), s)
	}
	if err := f.check(); err != nil {
		return Format{}, err
	}
	return f, nil
}

// Formats lists every valid stored format, for tests and tooling.
func Formats() []Format {
	fs := []Format{FormatF32, FormatF16, FormatBF16, FormatQ8, FormatQ6}
	for _, t := range []Type{Q4, Q3} {
		for _, g := range []int{32, 64, 128} {
			fs = append(fs, Format{Type: t, Group: g}, Format{Type: t, Group: g, Asym: true})
		}
	}
	// newer formats go last, so that FuzzMatrix's corpus keeps its formats
	return append(append(fs, SuperFormats()...), FormatQ5)
}

// SuperFormats lists the superblock formats: q4_k, q4_k_asym, q3_k,
// q3_k_asym, q6_k, q5_k.
func SuperFormats() []Format {
	var fs []Format
	for _, t := range []Type{Q4, Q3} {
		fs = append(fs, Format{Type: t, Group: SuperBlock, Super: true}, Format{Type: t, Group: SuperBlock, Asym: true, Super: true})
	}
	return append(fs, Format{Type: Q6, Group: SuperBlock, Super: true}, Format{Type: Q5, Group: SuperBlock, Super: true})
}
