//go:build amd64 && !purego

package kernels

// This file checks the AVX-512 tier on CPUs without AVX-512 by interpreting
// dot_amd64.s: a small x86 interpreter for the Go-assembler text of the
// quantized dot kernels. The interpreter is trusted because it reproduces the
// CPU bit for bit on the AVX2 twins of those kernels (TestEmuMatchesCPU),
// which come from the same generator and use the same instructions except
// VPDPBUSD; TestEmuAVX512Kernels then runs the AVX-512 kernels, alone and
// through mulVecSIMD/mulMatSIMD, against the AVX2 kernels and the reference.
// TestEmuTiledKernels does the same for the Tiled8 kernels of the AVX2,
// AVX-VNNI and AVX-512 tiers (the latter's 512-bit ones on Z registers), and
// on a CPU that has those tiers compares them with it bit for bit, the
// AVX-VNNI kernels' hand-encoded VEX VPDPBUSD bytes included (emuDecodeVEX).
// TestEmuF32Kernels runs the AVX-512 tier's f32 loops (Z registers, mask
// registers and the masked loads and stores of their tails) against the AVX2
// kernels and, on a CPU with AVX-512, against the CPU bit for bit.
//
// Go operand order is Intel's reversed: "VPSUBD a, b, dst" is Intel
// "vpsubd dst, b, a", so b is Intel's first source. The handlers below name
// operands in Go order.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/x448/float16"
)

// ---- Parser ----

// emuProgram is dot_amd64.s parsed: its functions and read-only tables.
type emuProgram struct {
	funcs map[string]*emuFunc
	syms  map[string][]byte // DATA/GLOBL tables; kernels read them at their real addresses
}

// emuFunc is one TEXT function, compiled on first use so that forms the
// interpreter lacks only fail the tests that run them.
type emuFunc struct {
	name               string
	frameSize, argSize int
	code               []emuInst
	labels             map[string]int // label -> index of the next instruction
	compiled           bool
	err                error
	// Argument frame (read through the FP pseudo-register) and local frame
	// (SP). They live in this heap object, where the GC never moves them,
	// because the registers hold their addresses as integers; one per
	// function, so calls must not overlap (the tests run one at a time).
	args  []uint64
	stack []byte
	// bytes collects a hand-encoded instruction's BYTE lines while parsing
	// (bytesAt: the line of the first).
	bytes   []byte
	bytesAt int
}

// emuInst is one instruction: its source line, and once compiled its
// handler and operands.
type emuInst struct {
	no   int
	text string
	exec func(m *emuMachine, x []emuOperand)
	args []emuOperand
}

type emuKind uint8

const (
	emuImm emuKind = iota
	emuGPR
	emuXmm
	emuYmm
	emuZmm
	emuK // an AVX-512 mask register
	emuMem
	emuLabel
)

// emuOperand is a parsed operand. A memory operand's address is
// imm + gp[reg] + gp[index]*scale (reg, index -1 when absent); a symbol's
// address is folded into imm.
type emuOperand struct {
	kind       emuKind
	reg, index int
	scale      uint64
	imm        int64 // immediate, displacement (+ symbol address) or jump target
	text       string
}

const (
	emuSP = 4  // hardware SP, as numbered in emuGPRs
	emuFP = 16 // FP pseudo-register: the argument frame
)

var emuGPRs = map[string]int{"AX": 0, "CX": 1, "DX": 2, "BX": 3, "SP": 4, "BP": 5, "SI": 6, "DI": 7,
	"R8": 8, "R9": 9, "R10": 10, "R11": 11, "R12": 12, "R13": 13, "R14": 14, "R15": 15}

var (
	emuTextRe  = regexp.MustCompile(`^TEXT ·(\w+)\(SB\), [\w|]+, \$(\d+)-(\d+)$`)
	emuDataRe  = regexp.MustCompile(`^DATA (\w+)<>\+(\d+)\(SB\)/([1248]), \$(\w+)$`)
	emuGloblRe = regexp.MustCompile(`^GLOBL (\w+)<>\(SB\), [\w|]+, \$(\d+)$`)
	emuVecRe   = regexp.MustCompile(`^([XYZ])(3[01]|[12]\d|\d)$`)
	// [name[<>]+][disp](base)[(index*scale)]
	emuMemRe = regexp.MustCompile(`^(?:(\w+)(<>)?\+)?(-?(?:0x[0-9a-fA-F]+|\d+))?\((\w+)\)(?:\((\w+)\*([1248])\))?$`)
)

var loadEmu = sync.OnceValues(func() (*emuProgram, error) {
	src, err := os.ReadFile("dot_amd64.s")
	if err != nil {
		return nil, err
	}
	return parseEmu(string(src))
})

func parseEmu(src string) (*emuProgram, error) {
	p := &emuProgram{funcs: map[string]*emuFunc{}, syms: map[string][]byte{}}
	var cur *emuFunc
	for i, l := range strings.Split(src, "\n") {
		if j := strings.Index(l, "//"); j >= 0 {
			l = l[:j]
		}
		l = strings.Join(strings.Fields(l), " ")
		bad := fmt.Errorf("dot_amd64.s:%d: cannot parse %q", i+1, l)
		atoi := func(s string) int { n, _ := strconv.Atoi(s); return n } // the regexps admit digits only
		switch {
		case l == "" || strings.HasPrefix(l, "#include"):
		case strings.HasPrefix(l, "TEXT"):
			m := emuTextRe.FindStringSubmatch(l)
			if m == nil {
				return nil, bad
			}
			cur = &emuFunc{name: m[1], frameSize: atoi(m[2]), argSize: atoi(m[3]), labels: map[string]int{}}
			p.funcs[cur.name] = cur
		case strings.HasPrefix(l, "DATA"):
			m := emuDataRe.FindStringSubmatch(l)
			if m == nil {
				return nil, bad
			}
			off, size := atoi(m[2]), atoi(m[3])
			v, err := strconv.ParseUint(m[4], 0, 64)
			if err != nil {
				return nil, bad
			}
			var b emuVec
			b.set(0, 8, v)
			copy(p.grow(m[1], off+size)[off:], b[:size])
		case strings.HasPrefix(l, "GLOBL"):
			m := emuGloblRe.FindStringSubmatch(l)
			if m == nil {
				return nil, bad
			}
			p.grow(m[1], atoi(m[2]))
		case cur == nil:
			return nil, bad
		case strings.HasSuffix(l, ":"):
			cur.labels[strings.TrimSuffix(l, ":")] = len(cur.code)
		case strings.HasPrefix(l, "BYTE "):
			// hand-encoded instructions: decoded once all their bytes are in
			v, err := strconv.ParseUint(strings.TrimPrefix(l, "BYTE $"), 0, 8)
			if err != nil {
				return nil, bad
			}
			if len(cur.bytes) == 0 {
				cur.bytesAt = i + 1
			}
			cur.bytes = append(cur.bytes, byte(v))
			if len(cur.bytes) == 5 {
				text, err := emuDecodeVEX(cur.bytes)
				if err != nil {
					return nil, fmt.Errorf("dot_amd64.s:%d: %w", cur.bytesAt, err)
				}
				cur.code = append(cur.code, emuInst{no: cur.bytesAt, text: text})
				cur.bytes = nil
			}
		default:
			if len(cur.bytes) > 0 {
				return nil, fmt.Errorf("dot_amd64.s:%d: % x is no instruction the interpreter decodes", cur.bytesAt, cur.bytes)
			}
			cur.code = append(cur.code, emuInst{no: i + 1, text: l})
		}
	}
	return p, nil
}

// emuDecodeVEX decodes the one hand-encoded instruction of dot_amd64.s, the
// AVX-VNNI "vpdpbusd ymm1, ymm2, ymm3" (VEX.256.66.0F38.W0 50 /r with a
// register operand), into the Go-assembler text the interpreter runs,
// "VPDPBUSD Y<ymm3>, Y<ymm2>, Y<ymm1>". It is written from the Intel manual,
// independently of the generator's encoder, so that a wrong encoding fails
// here or in the comparison with the CPU.
func emuDecodeVEX(b []byte) (string, error) {
	p1, p2, op, modrm := b[1], b[2], b[3], b[4]
	if b[0] != 0xc4 || p1&0x1f != 0x02 || p2&0x80 != 0 || p2&0x07 != 0x05 || op != 0x50 || modrm>>6 != 3 {
		return "", fmt.Errorf("% x is not VEX.256.66.0F38.W0 50 /r (vpdpbusd ymm, ymm, ymm)", b)
	}
	reg := int(^p1>>7&1)<<3 | int(modrm>>3&7)
	rm := int(^p1>>5&1)<<3 | int(modrm&7)
	vvvv := int(^p2 >> 3 & 15)
	return fmt.Sprintf("VPDPBUSD Y%d, Y%d, Y%d", rm, vvvv, reg), nil
}

// grow extends symbol name's table to at least n bytes.
func (p *emuProgram) grow(name string, n int) []byte {
	b := p.syms[name]
	if len(b) < n {
		b = append(b, make([]byte, n-len(b))...)
		p.syms[name] = b
	}
	return b
}

// function returns the compiled function name.
func (p *emuProgram) function(name string) (*emuFunc, error) {
	f := p.funcs[name]
	if f == nil {
		return nil, fmt.Errorf("no TEXT ·%s in dot_amd64.s", name)
	}
	if !f.compiled {
		f.compiled, f.err = true, p.compile(f)
	}
	return f, f.err
}

func (p *emuProgram) compile(f *emuFunc) error {
	if len(f.code) == 0 {
		return fmt.Errorf("%s has no instructions", f.name)
	}
	for i := range f.code {
		l := &f.code[i]
		fail := func(format string, a ...any) error {
			return fmt.Errorf("%s, dot_amd64.s:%d: %q: %w", f.name, l.no, l.text, fmt.Errorf(format, a...))
		}
		mnemonic, rest, _ := strings.Cut(l.text, " ")
		var args []emuOperand
		for _, s := range strings.FieldsFunc(rest, func(r rune) bool { return r == ',' }) {
			a, err := p.operand(f, strings.TrimSpace(s))
			if err != nil {
				return fail("%w", err)
			}
			args = append(args, a)
		}
		// EVEX masking: a mask register just before a destination that is
		// not itself a mask register (KORW K3, K2, K2 is no masked form)
		ops := emuOps
		if n := len(args); n >= 2 && args[n-2].kind == emuK && args[n-1].kind != emuK {
			ops = emuMaskedOps
		}
		op, ok := ops[mnemonic]
		if !ok {
			return fail("instruction (or its masked form) unknown to the interpreter")
		}
		if len(args) != op.n {
			return fail("%d operands, the interpreter knows the %d-operand form", len(args), op.n)
		}
		l.exec, l.args = op.exec, args
	}
	f.args, f.stack = make([]uint64, (f.argSize+7)/8), make([]byte, f.frameSize)
	return nil
}

func (p *emuProgram) operand(f *emuFunc, s string) (emuOperand, error) {
	o := emuOperand{reg: -1, index: -1, text: s}
	if r, ok := emuGPRs[s]; ok {
		o.kind, o.reg = emuGPR, r
		return o, nil
	}
	if s == "CL" { // a shift count: CX's low byte
		o.kind, o.reg = emuGPR, emuGPRs["CX"]
		return o, nil
	}
	if len(s) == 2 && s[0] == 'K' && s[1] >= '0' && s[1] <= '7' {
		o.kind, o.reg = emuK, int(s[1]-'0')
		return o, nil
	}
	if m := emuVecRe.FindStringSubmatch(s); m != nil {
		o.kind = map[string]emuKind{"X": emuXmm, "Y": emuYmm, "Z": emuZmm}[m[1]]
		o.reg, _ = strconv.Atoi(m[2])
		return o, nil
	}
	if imm, ok := strings.CutPrefix(s, "$"); ok {
		v, err := strconv.ParseInt(imm, 0, 64)
		o.kind, o.imm = emuImm, v
		return o, err
	}
	if pc, ok := f.labels[s]; ok {
		o.kind, o.imm = emuLabel, int64(pc)
		return o, nil
	}
	m := emuMemRe.FindStringSubmatch(s)
	if m == nil {
		return o, fmt.Errorf("operand %q unknown to the interpreter", s)
	}
	name, static, disp, base, index, scale := m[1], m[2] != "", m[3], m[4], m[5], m[6]
	o.kind = emuMem
	if disp != "" {
		o.imm, _ = strconv.ParseInt(disp, 0, 64)
	}
	switch {
	case base == "FP" && name != "" && !static && index == "":
		o.reg = emuFP
	case base == "SB" && static && index == "":
		b := p.syms[name]
		if b == nil {
			return o, fmt.Errorf("no DATA for %s<>", name)
		}
		o.imm += int64(uintptr(unsafe.Pointer(&b[0])))
	case name == "":
		var okBase bool
		o.reg, okBase = emuGPRs[base]
		okIndex := index == ""
		if !okIndex {
			o.index, okIndex = emuGPRs[index]
			o.scale, _ = strconv.ParseUint(scale, 10, 64)
		}
		if !okBase || !okIndex {
			return o, fmt.Errorf("register in %q unknown to the interpreter", s)
		}
	default:
		return o, fmt.Errorf("memory operand %q unknown to the interpreter", s)
	}
	return o, nil
}

// ---- Machine ----

type emuVec [64]byte // a ZMM register

// get and set access element i of esz bytes (little-endian, zero-extended).
func (v *emuVec) get(i, esz int) uint64 {
	var b [8]byte
	copy(b[:esz], v[i*esz:])
	return binary.LittleEndian.Uint64(b[:])
}

func (v *emuVec) set(i, esz int, x uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], x)
	copy(v[i*esz:(i+1)*esz], b[:esz])
}

func (v *emuVec) f32(i int) float32       { return math.Float32frombits(uint32(v.get(i, 4))) }
func (v *emuVec) setF32(i int, x float32) { v.set(i, 4, uint64(math.Float32bits(x))) }

type emuMachine struct {
	gp  [17]uint64 // AX..R15 in encoding order, then FP
	vec [32]emuVec
	k   [8]uint64 // K0..K7
	zf  bool
	cf  bool // carry: CMPQ and SUBQ set it, JB reads it
	pc  int  // next instruction; -1 after RET
}

// emuBytes is the n bytes of process memory at addr. The tests keep every
// buffer a kernel touches alive, and on the heap, where it cannot move.
func emuBytes(addr uint64, n int) []byte {
	return unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))), n)
}

func emuPtr[T any](p *T) uint64 { return uint64(uintptr(unsafe.Pointer(p))) }

// width is a vector register's size in bytes.
func (o emuOperand) width() int {
	if o.kind != emuXmm && o.kind != emuYmm && o.kind != emuZmm {
		panic(fmt.Sprintf("%s is not a vector register", o.text))
	}
	return 16 << (o.kind - emuXmm)
}

func (m *emuMachine) addr(o emuOperand) uint64 {
	if o.kind != emuMem {
		panic(fmt.Sprintf("%s is not a memory operand", o.text))
	}
	a := uint64(o.imm)
	if o.reg >= 0 {
		a += m.gp[o.reg]
	}
	if o.index >= 0 {
		a += m.gp[o.index] * o.scale
	}
	return a
}

func (m *emuMachine) imm(o emuOperand) int64 {
	if o.kind != emuImm {
		panic(fmt.Sprintf("%s is not an immediate", o.text))
	}
	return o.imm
}

// read returns the n low bytes of a register, or the n bytes at a memory
// operand, zero-extended.
func (m *emuMachine) read(o emuOperand, n int) (v emuVec) {
	switch o.kind {
	case emuXmm, emuYmm, emuZmm:
		if n > o.width() {
			panic(fmt.Sprintf("%d-byte read of %s", n, o.text))
		}
		copy(v[:n], m.vec[o.reg][:n])
	case emuGPR:
		v.set(0, n, m.gp[o.reg])
	case emuMem:
		copy(v[:n], emuBytes(m.addr(o), n))
	default:
		panic(fmt.Sprintf("cannot read %s", o.text))
	}
	return v
}

// write stores the n low bytes of v. Registers are zeroed above n: VEX and
// EVEX encodings clear the bits of a Z register above the X or Y register
// written, and the 32-bit GP writes that occur (n = 4) clear the upper half.
// Memory gets n bytes.
func (m *emuMachine) write(o emuOperand, v emuVec, n int) {
	switch o.kind {
	case emuXmm, emuYmm, emuZmm:
		m.vec[o.reg] = emuVec{}
		copy(m.vec[o.reg][:n], v[:n])
	case emuGPR:
		if n < 4 {
			panic("8- or 16-bit register write (merges on x86)")
		}
		clear(v[n:])
		m.gp[o.reg] = v.get(0, 8)
	case emuMem:
		copy(emuBytes(m.addr(o), n), v[:n])
	default:
		panic(fmt.Sprintf("cannot write %s", o.text))
	}
}

// int is an immediate's value or the n low bytes of a GP register or memory.
func (m *emuMachine) int(o emuOperand, n int) uint64 {
	if o.kind == emuImm {
		return uint64(o.imm)
	}
	v := m.read(o, n)
	return v.get(0, 8)
}

func (m *emuMachine) setInt(o emuOperand, x uint64, n int) {
	var v emuVec
	v.set(0, 8, x)
	m.write(o, v, n)
}

// setZF writes a 64-bit arithmetic result and its zero flag.
func (m *emuMachine) setZF(o emuOperand, x uint64) {
	m.setInt(o, x, 8)
	m.zf = x == 0
}

// call interprets f on the argument words (8 bytes each, in the order of
// the Go signature). A fault, an operand the instruction does not take, or
// running off the end is returned as an error naming the source line.
func (f *emuFunc) call(args []uint64) (err error) {
	// args fill the frame but for a result in its last word (f.args holds
	// the frame, results included, after the call)
	if len(args) > len(f.args) || 8*len(args) <= f.argSize-8 {
		return fmt.Errorf("%s: %d bytes of arguments, want %d", f.name, 8*len(args), f.argSize)
	}
	clear(f.args)
	// Registers hold junk on entry, as when called from Go: all ones makes a
	// read before the first write show (NaN floats, faulting addresses).
	var m emuMachine
	for i := range m.gp {
		m.gp[i] = ^uint64(0)
	}
	for i := range m.vec {
		m.vec[i] = emuVec(bytes.Repeat([]byte{0xff}, 64))
	}
	copy(f.args, args)
	if len(f.args) > 0 {
		m.gp[emuFP] = emuPtr(&f.args[0])
	}
	if len(f.stack) > 0 {
		clear(f.stack)
		m.gp[emuSP] = emuPtr(&f.stack[0])
	}
	in := &f.code[0] // compile rejects empty functions
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s, dot_amd64.s:%d: %q: %v", f.name, in.no, in.text, r)
		}
	}()
	for m.pc >= 0 {
		if m.pc >= len(f.code) {
			return fmt.Errorf("%s ran past its last instruction", f.name)
		}
		in = &f.code[m.pc]
		m.pc++
		in.exec(&m, in.args)
	}
	return nil
}

// ---- Instructions ----

// emuOp is an instruction's handler and its operand count in the one form
// the kernels use.
type emuOp struct {
	n    int
	exec func(m *emuMachine, x []emuOperand)
}

var emuOps = map[string]emuOp{
	// General-purpose registers and control flow. JNZ reads the zero flag
	// that DECQ sets; ADDQ and SHLQ set it as the CPU does.
	"MOVQ":    {2, func(m *emuMachine, x []emuOperand) { m.setInt(x[1], m.int(x[0], 8), 8) }},
	"MOVWLZX": {2, func(m *emuMachine, x []emuOperand) { m.setInt(x[1], m.int(x[0], 2), 4) }},
	"LEAQ":    {2, func(m *emuMachine, x []emuOperand) { m.setInt(x[1], m.addr(x[0]), 8) }},
	"ADDQ":    {2, func(m *emuMachine, x []emuOperand) { m.setZF(x[1], m.int(x[1], 8)+m.int(x[0], 8)) }},
	"DECQ":    {1, func(m *emuMachine, x []emuOperand) { m.setZF(x[0], m.int(x[0], 8)-1) }},
	"SHLQ": {2, func(m *emuMachine, x []emuOperand) {
		if c := m.imm(x[0]) & 63; c != 0 {
			m.setZF(x[1], m.int(x[1], 8)<<c)
		}
	}},
	"JNZ": {1, func(m *emuMachine, x []emuOperand) {
		if x[0].kind != emuLabel {
			panic("jump target is not a label")
		}
		if !m.zf {
			m.pc = int(x[0].imm)
		}
	}},
	"RET": {0, func(m *emuMachine, _ []emuOperand) { m.pc = -1 }},
	// Loop control of the f32 kernels. Go's CMPQ takes Intel's operand
	// order ("CMPQ CX, $8" is CX - 8), SUBQ and the rest Go's.
	"CMPQ": {2, func(m *emuMachine, x []emuOperand) {
		a, b := m.int(x[0], 8), m.int(x[1], 8)
		m.zf, m.cf = a == b, a < b
	}},
	"SUBQ": {2, func(m *emuMachine, x []emuOperand) {
		a, b := m.int(x[1], 8), m.int(x[0], 8)
		m.setZF(x[1], a-b)
		m.cf = a < b
	}},
	"TESTQ": {2, func(m *emuMachine, x []emuOperand) { m.zf, m.cf = m.int(x[0], 8)&m.int(x[1], 8) == 0, false }},
	"JB":    emuJump(func(m *emuMachine) bool { return m.cf }),
	"JZ":    emuJump(func(m *emuMachine) bool { return m.zf }),
	"JMP":   emuJump(func(*emuMachine) bool { return true }),
	// 32-bit forms (the tail mask: 1 << n - 1)
	"MOVL": {2, func(m *emuMachine, x []emuOperand) { m.setInt(x[1], m.int(x[0], 4), 4) }},
	"SHLL": {2, func(m *emuMachine, x []emuOperand) { m.setInt(x[1], m.int(x[1], 4)<<(m.int(x[0], 1)&31), 4) }},
	"DECL": {1, func(m *emuMachine, x []emuOperand) {
		v := uint32(m.int(x[0], 4)) - 1
		m.setInt(x[0], uint64(v), 4)
		m.zf = v == 0
	}},
	// Mask registers (16-bit forms). KMOVW moves between a GP and a mask
	// register; KORTESTW sets ZF when the OR of its operands is 0.
	"KMOVW": {2, func(m *emuMachine, x []emuOperand) {
		v := m.kint(x[0]) & 0xffff
		if x[1].kind == emuK {
			m.k[x[1].reg] = v
		} else {
			m.setInt(x[1], v, 4)
		}
	}},
	"KANDW":      emuKOp(func(a, b uint64) uint64 { return a & b }),
	"KORW":       emuKOp(func(a, b uint64) uint64 { return a | b }),
	"KXORW":      emuKOp(func(a, b uint64) uint64 { return a ^ b }),
	"KORTESTW":   {2, func(m *emuMachine, x []emuOperand) { m.zf = (m.kint(x[0])|m.kint(x[1]))&0xffff == 0 }},
	"PREFETCHT0": {1, func(*emuMachine, []emuOperand) {}}, // a hint: no access, no fault
	"VZEROUPPER": {0, func(m *emuMachine, _ []emuOperand) {
		for i := range m.vec {
			clear(m.vec[i][16:])
		}
	}},

	// Moves. Vector moves take the width of their register operand; the
	// scalar ones move 4 bytes and zero-extend into an X register.
	"VMOVDQU":   {2, emuMov(false)},
	"VMOVUPS":   {2, emuMov(false)},
	"VMOVDQA":   {2, emuMov(true)},
	"VMOVDQU64": {2, emuMov(false)},
	"VMOVSS":    {2, emuMovd},
	// The legacy-SSE MOVSS that avo's Load and Store of a float32 argument
	// emit: into an X register it zeroes bits 32-127 and keeps the rest.
	"MOVSS": {2, func(m *emuMachine, x []emuOperand) {
		if x[1].kind != emuXmm {
			m.write(x[1], m.read(x[0], 4), 4)
			return
		}
		v, r := m.read(x[0], 4), &m.vec[x[1].reg]
		copy(r[:16], v[:16])
	}},
	"VMOVD": {2, emuMovd},

	// Broadcasts, lane moves and shuffles.
	"VBROADCASTSS":   emuBroadcast(4),
	"VPBROADCASTD":   emuBroadcast(4),
	"VPBROADCASTQ":   emuBroadcast(8),
	"VBROADCASTI128": emuBroadcast(16),
	"VBROADCASTF128": emuBroadcast(16),
	"VEXTRACTF64X4": {3, func(m *emuMachine, x []emuOperand) {
		a, lo := m.read(x[1], 64), 32*(m.imm(x[0])&1)
		var r emuVec
		copy(r[:32], a[lo:lo+32])
		m.write(x[2], r, 32)
	}},
	"VEXTRACTF128": {3, func(m *emuMachine, x []emuOperand) {
		a, lo := m.read(x[1], 32), 16*(m.imm(x[0])&1)
		var r emuVec
		copy(r[:16], a[lo:lo+16])
		m.write(x[2], r, 16)
	}},
	"VINSERTF128": {4, func(m *emuMachine, x []emuOperand) {
		a, r, lo := m.read(x[1], 16), m.read(x[2], 32), 16*(m.imm(x[0])&1)
		copy(r[lo:lo+16], a[:16])
		m.write(x[3], r, 32)
	}},
	// imm, 32 bytes (Y or memory), Z source, Z dst: dst = source with
	// 256-bit half imm&1 replaced
	"VINSERTI64X4": emuInsert256,
	"VINSERTF64X4": emuInsert256,
	"VPINSRW": {4, func(m *emuMachine, x []emuOperand) {
		r := m.read(x[2], 16)
		r.set(int(m.imm(x[0])&7), 2, m.int(x[1], 2))
		m.write(x[3], r, 16)
	}},
	"VMOVHLPS": {3, func(m *emuMachine, x []emuOperand) {
		a, r := m.read(x[0], 16), m.read(x[1], 16)
		copy(r[:8], a[8:16])
		m.write(x[2], r, 16)
	}},
	"VMOVSHDUP": {2, func(m *emuMachine, x []emuOperand) {
		n := x[1].width()
		a := m.read(x[0], n)
		var r emuVec
		for i := 0; i < n/4; i++ {
			r.set(i, 4, a.get(i|1, 4))
		}
		m.write(x[1], r, n)
	}},
	"VPUNPCKLWD": {3, func(m *emuMachine, x []emuOperand) {
		n := x[2].width()
		a, b := m.read(x[0], n), m.read(x[1], n)
		var r emuVec
		for l := 0; l < n/2; l += 8 { // words, per 128-bit lane: b0 a0 b1 a1 ...
			for i := 0; i < 4; i++ {
				r.set(l+2*i, 2, b.get(l+i, 2))
				r.set(l+2*i+1, 2, a.get(l+i, 2))
			}
		}
		m.write(x[2], r, n)
	}},
	"VPHADDD": {3, func(m *emuMachine, x []emuOperand) {
		n := x[2].width()
		a, b := m.read(x[0], n), m.read(x[1], n)
		var r emuVec
		for l := 0; l < n/4; l += 4 { // dwords, per lane: b's pair sums, then a's
			for i, s := range []*emuVec{&b, &b, &a, &a} {
				j := l + 2*(i%2)
				r.set(l+i, 4, s.get(j, 4)+s.get(j+1, 4))
			}
		}
		m.write(x[2], r, n)
	}},

	// Integer element-wise operations.
	"VPXOR":   emuLanes(8, func(a, b uint64) uint64 { return b ^ a }),
	"VPXORD":  emuLanes(8, func(a, b uint64) uint64 { return b ^ a }),
	"VPANDD":  emuLanes(8, func(a, b uint64) uint64 { return b & a }),
	"VPORD":   emuLanes(8, func(a, b uint64) uint64 { return b | a }),
	"VXORPS":  emuLanes(8, func(a, b uint64) uint64 { return b ^ a }),
	"VPAND":   emuLanes(8, func(a, b uint64) uint64 { return b & a }),
	"VPOR":    emuLanes(8, func(a, b uint64) uint64 { return b | a }),
	"VPADDB":  emuLanes(1, func(a, b uint64) uint64 { return b + a }),
	"VPADDW":  emuLanes(2, func(a, b uint64) uint64 { return b + a }),
	"VPADDD":  emuLanes(4, func(a, b uint64) uint64 { return b + a }),
	"VPSUBD":  emuLanes(4, func(a, b uint64) uint64 { return b - a }),
	"VPSLLW":  emuShiftLeft(2),
	"VPSRLW":  emuShiftRight(2),
	"VPSLLD":  emuShiftLeft(4),
	"VPSRLVQ": emuLanes(8, func(a, b uint64) uint64 { return emuShr(b, a, 64) }),
	"VPSRLVD": emuLanes(4, func(a, b uint64) uint64 { return emuShr(b, a, 32) }),
	"VPABSB":  emuUnary(1, func(a uint64) uint64 { return uint64(max(int8(a), -int8(a))) }), // |-128| = 0x80
	"VPSIGNB": emuLanes(1, func(a, b uint64) uint64 { return b * uint64(cmp.Compare(int8(a), 0)) }),
	// imm, c, b, a (= dst): each bit of dst becomes bit (a<<2 | b<<1 | c)
	// of imm (Intel "vpternlogd a, b, c, imm")
	"VPTERNLOGD": {4, func(m *emuMachine, x []emuOperand) {
		n := x[3].width()
		imm, c, b, a := uint8(m.imm(x[0])), m.read(x[1], n), m.read(x[2], n), m.read(x[3], n)
		var r emuVec
		for i := 0; i < 8*n; i++ {
			bit := func(v *emuVec) int { return int(v[i/8] >> (i % 8) & 1) }
			r[i/8] |= imm >> (bit(&a)<<2 | bit(&b)<<1 | bit(&c)) & 1 << (i % 8)
		}
		m.write(x[3], r, n)
	}},
	// a, b, K: mask bit i = (byte i of b AND byte i of a) != 0 (Intel
	// "vptestmb k, b, a")
	"VPTESTMB": {3, func(m *emuMachine, x []emuOperand) {
		n := x[1].width()
		a, b := m.read(x[0], n), m.read(x[1], n)
		var k uint64
		for i := 0; i < n; i++ {
			if a[i]&b[i] != 0 {
				k |= 1 << i
			}
		}
		m.k[x[2].reg] = k
	}},
	// imm, A, x, dst (Intel "vgf2p8affineqb dst, x, A, imm"), from the
	// SDM's pseudo-code: bit i of byte j of dst is the parity of (byte 7-i
	// of qword j/8 of A) AND (byte j of x), XOR bit i of imm.
	"VGF2P8AFFINEQB": {4, func(m *emuMachine, x []emuOperand) {
		n := x[3].width()
		imm, a, src := uint8(m.imm(x[0])), m.read(x[1], n), m.read(x[2], n)
		var r emuVec
		for j := 0; j < n; j++ {
			for i := 0; i < 8; i++ {
				row := a[j/8*8+7-i]
				r[j] |= (uint8(bits.OnesCount8(row&src[j])&1) ^ imm>>i&1) << i
			}
		}
		m.write(x[3], r, n)
	}},
	// b holds unsigned bytes, a signed ones; pair sums saturate to int16.
	"VPMADDUBSW": emuLanes(2, func(a, b uint64) uint64 {
		s := int32(uint8(b))*int32(int8(a)) + int32(uint8(b>>8))*int32(int8(a>>8))
		return uint64(max(math.MinInt16, min(math.MaxInt16, s)))
	}),
	"VPMADDWD": emuLanes(4, func(a, b uint64) uint64 {
		return uint64(int32(int16(a))*int32(int16(b)) + int32(int16(a>>16))*int32(int16(b>>16)))
	}),
	// Intel "vpdpbusd acc, b, a": acc += 4 products of b's unsigned bytes
	// with a's signed ones, wrapping, no saturation.
	"VPDPBUSD": emuAccLanes(4, func(a, b, acc uint64) uint64 {
		for j := 0; j < 32; j += 8 {
			acc += uint64(int32(uint8(b>>j)) * int32(int8(a>>j)))
		}
		return acc
	}),

	// Float operations, IEEE float32 with round-to-nearest-even as in the
	// default MXCSR. NaN payloads are not modelled (the kernels get finite
	// inputs).
	"VADDPS": emuFLanes(func(a, b float32) float32 { return b + a }),
	"VSUBPS": emuFLanes(func(a, b float32) float32 { return b - a }),
	"VMULPS": emuFLanes(func(a, b float32) float32 { return b * a }),
	"VDIVPS": emuFLanes(func(a, b float32) float32 { return b / a }),
	// MINPS and MAXPS return the second source (Go's first operand) when
	// either is NaN or both are zeros.
	"VMINPS": emuFLanes(func(a, b float32) float32 { return emuCond(b < a, b, a) }),
	"VMAXPS": emuFLanes(func(a, b float32) float32 { return emuCond(b > a, b, a) }),
	"VMAXSS": emuScalar(func(a uint32, b float32) float32 {
		return emuCond(b > math.Float32frombits(a), b, math.Float32frombits(a))
	}),
	"VANDPS":  emuLanes(8, func(a, b uint64) uint64 { return b & a }),
	"VANDNPS": emuLanes(8, func(a, b uint64) uint64 { return ^b & a }),
	"VORPS":   emuLanes(8, func(a, b uint64) uint64 { return b | a }),
	// Go "VFMADD<xyz>PS a, b, dst" is Intel "vfmadd<xyz>ps dst, b, a".
	"VFMADD231PS":  emuFMA(func(a, b, acc float32) float32 { return emuFMA32(b, a, acc) }),
	"VFMADD213PS":  emuFMA(func(a, b, acc float32) float32 { return emuFMA32(b, acc, a) }),
	"VFMADD132PS":  emuFMA(func(a, b, acc float32) float32 { return emuFMA32(acc, a, b) }),
	"VFNMADD231PS": emuFMA(func(a, b, acc float32) float32 { return emuFMA32(-b, a, acc) }),
	"VFMSUB231PS":  emuFMA(func(a, b, acc float32) float32 { return emuFMA32(b, a, -acc) }),
	// Round to nearest even: the only rounding (imm 0) the kernels use.
	"VROUNDPS":    emuRoundEven,
	"VRNDSCALEPS": emuRoundEven,
	// Nearest even; NaN and out-of-range values give 0x80000000.
	"VCVTPS2DQ": emuUnary(4, func(a uint64) uint64 {
		r := math.RoundToEven(float64(emuF32(a)))
		if !(r >= -1<<31 && r < 1<<31) {
			return 0x80000000
		}
		return uint64(uint32(int32(r)))
	}),
	// imm, a, b, dst: dst = b <pred> a per lane, into a mask register's bits
	// or a vector's lanes (all ones). Predicates 1 (LT_OS), 3 (UNORD_Q),
	// 5 (NLT_US).
	"VCMPPS": {4, func(m *emuMachine, x []emuOperand) {
		var pred func(a, b float32) bool
		switch m.imm(x[0]) {
		case 1:
			pred = func(a, b float32) bool { return b < a }
		case 3:
			pred = func(a, b float32) bool { return a != a || b != b }
		case 5:
			pred = func(a, b float32) bool { return !(b < a) }
		default:
			panic("VCMPPS predicate unknown to the interpreter")
		}
		n := x[2].width()
		a, b := m.read(x[1], n), m.read(x[2], n)
		var r emuVec
		var k uint64
		for i := 0; i < n/4; i++ {
			if pred(a.f32(i), b.f32(i)) {
				k |= 1 << i
				r.set(i, 4, 0xffffffff)
			}
		}
		if x[3].kind == emuK {
			m.k[x[3].reg] = k
			return
		}
		m.write(x[3], r, n)
	}},
	// imm (0: nearest even), src, dst: src's f32 lanes rounded to f16 into
	// half the width (register or memory)
	"VCVTPS2PH": {3, func(m *emuMachine, x []emuOperand) {
		if m.imm(x[0]) != 0 {
			panic("VCVTPS2PH rounding unknown to the interpreter")
		}
		n := x[1].width()
		a := m.read(x[1], n)
		var r emuVec
		for i := 0; i < n/4; i++ {
			r.set(i, 2, uint64(float16.Fromfloat32(a.f32(i)).Bits()))
		}
		m.write(x[2], r, n/2)
	}},
	"VADDSS":     emuScalar(func(a uint32, b float32) float32 { return b + math.Float32frombits(a) }),
	"VMULSS":     emuScalar(func(a uint32, b float32) float32 { return b * math.Float32frombits(a) }),
	"VCVTSI2SSL": emuScalar(func(a uint32, _ float32) float32 { return float32(int32(a)) }),
	"VCVTDQ2PS":  emuUnary(4, func(a uint64) uint64 { return uint64(math.Float32bits(float32(int32(a)))) }),
	// bytes (memory or the low bytes of an X register) widened to the
	// dwords of dst, with or without sign
	"VPMOVZXBD": emuWidenBD(false),
	"VPMOVSXBD": emuWidenBD(true),
	"VCVTPH2PS": {2, func(m *emuMachine, x []emuOperand) {
		n := x[1].width()
		a := m.read(x[0], n/2)
		var r emuVec
		for i := 0; i < n/4; i++ {
			r.setF32(i, float16.Frombits(uint16(a.get(i, 2))).Float32())
		}
		m.write(x[1], r, n)
	}},
}

func emuF32(x uint64) float32 { return math.Float32frombits(uint32(x)) }

func emuCond(c bool, a, b float32) float32 {
	if c {
		return a
	}
	return b
}

func emuJump(taken func(m *emuMachine) bool) emuOp {
	return emuOp{1, func(m *emuMachine, x []emuOperand) {
		if x[0].kind != emuLabel {
			panic("jump target is not a label")
		}
		if taken(m) {
			m.pc = int(x[0].imm)
		}
	}}
}

// kint is a mask register's value or a GP register's low dword.
func (m *emuMachine) kint(o emuOperand) uint64 {
	if o.kind == emuK {
		return m.k[o.reg]
	}
	return m.int(o, 4)
}

// emuKOp is "a, b, dst" on 16-bit masks.
func emuKOp(f func(a, b uint64) uint64) emuOp {
	return emuOp{3, func(m *emuMachine, x []emuOperand) {
		m.k[x[2].reg] = f(m.k[x[0].reg], m.k[x[1].reg]) & 0xffff
	}}
}

// emuFMA is a fused multiply-add "a, b, dst" on f32 lanes.
func emuFMA(f func(a, b, acc float32) float32) emuOp {
	return emuAccLanes(4, func(a, b, acc uint64) uint64 {
		return uint64(math.Float32bits(f(emuF32(a), emuF32(b), emuF32(acc))))
	})
}

var emuRoundEven = emuOp{3, func(m *emuMachine, x []emuOperand) {
	if m.imm(x[0]) != 0 {
		panic("rounding mode unknown to the interpreter")
	}
	emuUnary(4, func(a uint64) uint64 {
		return uint64(math.Float32bits(float32(math.RoundToEven(float64(emuF32(a))))))
	}).exec(m, x[1:])
}}

// emuMaskedOps are the EVEX masked forms "..., K, dst": under mask bit i,
// element i of dst is the instruction's result; elsewhere it keeps its value
// (merging) or is zeroed (the .Z forms), and a memory destination is not
// written. A masked load reads only the selected elements, so the lanes
// past a buffer's end fault on neither the CPU (fault suppression) nor here.
var emuMaskedOps = map[string]emuOp{
	"VMOVUPS":     emuMaskedMov(4, false),
	"VMOVUPS.Z":   emuMaskedMov(4, true),
	"VMOVDQU16":   emuMaskedMov(2, false),
	"VMOVDQU16.Z": emuMaskedMov(2, true),
	"VMULPS.Z":    emuMasked(emuOps["VMULPS"], 4, true),
	"VPADDB":      emuMasked(emuOps["VPADDB"], 1, false),
}

func emuMaskedMov(esz int, zero bool) emuOp {
	return emuOp{3, func(m *emuMachine, x []emuOperand) {
		src, k, dst := x[0], m.k[x[1].reg], x[2]
		reg := dst
		if dst.kind == emuMem {
			reg = src
		}
		w := reg.width()
		elem := func(o emuOperand, i int) []byte {
			if o.kind == emuMem {
				return emuBytes(m.addr(o)+uint64(i*esz), esz)
			}
			return m.vec[o.reg][i*esz : (i+1)*esz]
		}
		var r emuVec
		if dst.kind != emuMem && !zero {
			r = m.read(dst, w)
		}
		for i := 0; i < w/esz; i++ {
			if k>>i&1 == 0 {
				continue
			}
			if dst.kind == emuMem {
				copy(elem(dst, i), elem(src, i))
			} else {
				copy(r[i*esz:], elem(src, i))
			}
		}
		if dst.kind != emuMem {
			m.write(dst, r, w)
		}
	}}
}

// emuMasked is op with a mask before its (register) destination.
func emuMasked(op emuOp, esz int, zero bool) emuOp {
	return emuOp{op.n + 1, func(m *emuMachine, x []emuOperand) {
		dst := x[len(x)-1]
		w := dst.width()
		old, k := m.read(dst, w), m.k[x[len(x)-2].reg]
		op.exec(m, append(x[:len(x)-2:len(x)-2], dst))
		r := m.read(dst, w)
		for i := 0; i < w/esz; i++ {
			if k>>i&1 == 0 {
				if zero {
					r.set(i, esz, 0)
				} else {
					r.set(i, esz, old.get(i, esz))
				}
			}
		}
		m.write(dst, r, w)
	}}
}

func emuWidenBD(signed bool) emuOp {
	return emuOp{2, func(m *emuMachine, x []emuOperand) {
		n := x[1].width()
		a := m.read(x[0], n/4)
		var r emuVec
		for i := 0; i < n/4; i++ {
			b := a.get(i, 1)
			if signed {
				b = uint64(uint32(int8(b)))
			}
			r.set(i, 4, b)
		}
		m.write(x[1], r, n)
	}}
}

var emuInsert256 = emuOp{4, func(m *emuMachine, x []emuOperand) {
	a, r, lo := m.read(x[1], 32), m.read(x[2], 64), 32*(m.imm(x[0])&1)
	copy(r[lo:lo+32], a[:32])
	m.write(x[3], r, 64)
}}

// emuShr is a variable logical right shift: counts of the width or more give 0.
func emuShr(x, count uint64, width uint64) uint64 {
	if count >= width {
		return 0
	}
	return x >> count
}

// emuAccLanes is a three-operand op "a, b, dst" computing each esz-byte element
// of dst from those of a, b and dst's old value (the accumulator).
func emuAccLanes(esz int, f func(a, b, acc uint64) uint64) emuOp {
	return emuOp{3, func(m *emuMachine, x []emuOperand) {
		n := x[2].width()
		a, b, r := m.read(x[0], n), m.read(x[1], n), m.read(x[2], n)
		for i := 0; i < n/esz; i++ {
			r.set(i, esz, f(a.get(i, esz), b.get(i, esz), r.get(i, esz)))
		}
		m.write(x[2], r, n)
	}}
}

// emuLanes is emuAccLanes for ops that do not read dst.
func emuLanes(esz int, f func(a, b uint64) uint64) emuOp {
	return emuAccLanes(esz, func(a, b, _ uint64) uint64 { return f(a, b) })
}

func emuFLanes(f func(a, b float32) float32) emuOp {
	return emuLanes(4, func(a, b uint64) uint64 { return uint64(math.Float32bits(f(emuF32(a), emuF32(b)))) })
}

// emuUnary is a two-operand op "a, dst" on esz-byte elements.
func emuUnary(esz int, f func(a uint64) uint64) emuOp {
	return emuOp{2, func(m *emuMachine, x []emuOperand) {
		n := x[1].width()
		a := m.read(x[0], n)
		var r emuVec
		for i := 0; i < n/esz; i++ {
			r.set(i, esz, f(a.get(i, esz)))
		}
		m.write(x[1], r, n)
	}}
}

// emuScalar is a VEX scalar op "a, b, dst": element 0 is f(a's low dword, b's
// element 0), elements 1-3 are b's, bits 128-255 are cleared.
func emuScalar(f func(a uint32, b float32) float32) emuOp {
	return emuOp{3, func(m *emuMachine, x []emuOperand) {
		a, r := m.read(x[0], 4), m.read(x[1], 16)
		r.setF32(0, f(uint32(a.get(0, 4)), r.f32(0)))
		m.write(x[2], r, 16)
	}}
}

// emuShiftLeft and emuShiftRight are "$count, a, dst" on esz-byte elements
// (logical shifts; counts of the element width or more give 0).
func emuShiftLeft(esz int) emuOp {
	return emuShift(esz, func(a, c uint64) uint64 { return a << c })
}

func emuShiftRight(esz int) emuOp {
	return emuShift(esz, func(a, c uint64) uint64 { return a >> c })
}

func emuShift(esz int, f func(a, c uint64) uint64) emuOp {
	return emuOp{3, func(m *emuMachine, x []emuOperand) {
		c, n := uint64(m.imm(x[0])), x[2].width()
		a := m.read(x[1], n)
		var r emuVec
		for i := 0; i < n/esz && c < uint64(8*esz); i++ {
			r.set(i, esz, f(a.get(i, esz), c))
		}
		m.write(x[2], r, n)
	}}
}

// emuBroadcast copies the low k bytes of a register or memory to every k-byte
// element of dst.
func emuBroadcast(k int) emuOp {
	return emuOp{2, func(m *emuMachine, x []emuOperand) {
		n := x[1].width()
		a := m.read(x[0], k)
		var r emuVec
		for i := 0; i < n; i += k {
			copy(r[i:i+k], a[:k])
		}
		m.write(x[1], r, n)
	}}
}

// emuMov is a full-width load, store or register move; aligned moves fault on
// a memory operand that is not aligned to the width, as the CPU's do.
func emuMov(aligned bool) func(m *emuMachine, x []emuOperand) {
	return func(m *emuMachine, x []emuOperand) {
		reg, mem := x[1], x[0]
		if reg.kind == emuMem {
			reg, mem = mem, reg
		}
		n := reg.width()
		if aligned && mem.kind == emuMem && m.addr(mem)%uint64(n) != 0 {
			panic("misaligned aligned move")
		}
		m.write(x[1], m.read(x[0], n), n)
	}
}

// emuMovd moves a dword: into an X register zero-extended, else 4 bytes.
func emuMovd(m *emuMachine, x []emuOperand) {
	n := 4
	if x[1].kind == emuXmm {
		n = 16
	}
	m.write(x[1], m.read(x[0], 4), n)
}

// emuFMA32 is a*b+c rounded once to float32, as VFMADD231PS computes it. The
// product is exact in float64; s = p+c rounds once, and e is that rounding's
// exact error (TwoSum). Rounding s to float32 is then correct unless s is a
// float32 midpoint and e != 0; then e breaks the tie.
func emuFMA32(a, b, c float32) float32 {
	p, c64 := float64(a)*float64(b), float64(c)
	s := p + c64
	z := s - p
	e := (p - (s - z)) + (c64 - z)
	r := float32(s)
	if e == 0 || float64(r) == s {
		return r
	}
	n := math.Nextafter32(r, float32(math.Inf(int(math.Copysign(1, s-float64(r))))))
	if s-float64(r) != float64(n)-s || (e > 0) != (n > r) {
		return r
	}
	return n
}

// ---- Tests ----

// emuFn returns a runner of function name of dot_amd64.s that fails t on
// any interpreter error.
func emuFn(t testing.TB, p *emuProgram, name string) func(args ...uint64) {
	t.Helper()
	run := emuFrame(t, p, name)
	return func(args ...uint64) { run(args...) }
}

// emuFrame is emuFn for functions with a result: the runner returns the
// argument frame after the call, the result in its last word.
func emuFrame(t testing.TB, p *emuProgram, name string) func(args ...uint64) []uint64 {
	t.Helper()
	f, err := p.function(name)
	if err != nil {
		t.Fatal(err)
	}
	return func(args ...uint64) []uint64 {
		if err := f.call(args); err != nil {
			t.Fatal(err)
		}
		return f.args
	}
}

// emuDot and emuSB wrap a function of dot_amd64.s as a kernel.
func emuDot(t testing.TB, p *emuProgram, name string) dotKernel {
	run := emuFn(t, p, name)
	return func(out *float32, ostride uintptr, w *byte, wstride uintptr, q *int8, d *float32, s *int32, astride, groups, cpg uintptr) {
		defer runtime.KeepAlive([]any{out, w, q, d, s})
		run(emuPtr(out), uint64(ostride), emuPtr(w), uint64(wstride), emuPtr(q), emuPtr(d), emuPtr(s),
			uint64(astride), uint64(groups), uint64(cpg))
	}
}

func emuSB(t testing.TB, p *emuProgram, name string) sbKernel {
	run := emuFn(t, p, name)
	return func(out *float32, ostride uintptr, w *byte, q *int8, d *float32, s *int32, astride, nsb uintptr) {
		defer runtime.KeepAlive([]any{out, w, q, d, s})
		run(emuPtr(out), uint64(ostride), emuPtr(w), emuPtr(q), emuPtr(d), emuPtr(s), uint64(astride), uint64(nsb))
	}
}

// emuTable returns a copy of a tier's kernel table (avx2Kernels or
// avx512Kernels) whose kernels run in the interpreter, each the function of
// dot_amd64.s named after the format, shape and tier.
func emuTable(t testing.TB, qk *quantKernels, tier string) *quantKernels {
	p, err := loadEmu()
	if err != nil {
		t.Fatal(err)
	}
	e := *qk
	for _, f := range []Format{{Type: Q4, Group: 32}, {Type: Q4, Group: 32, Asym: true},
		{Type: Q3, Group: 32}, {Type: Q3, Group: 32, Asym: true}, FormatQ6, FormatQ5, FormatQ8} {
		k, base := e.lookup(f), fmt.Sprintf("q%d%s", f.Type.Bits(), map[bool]string{false: "Sym", true: "Asym"}[f.Asym])
		k.rnt1 = emuDot(t, p, fmt.Sprintf("%sR%dT1%s", base, k.rows, tier))
		k.r1t1 = emuDot(t, p, base+"R1T1"+tier)
		k.r1t4 = emuDot(t, p, base+"R1T4"+tier)
		for i := range k.sb {
			if k.sb[i] != nil {
				k.sb[i] = emuSB(t, p, fmt.Sprintf("%sG%dSBT4%s", base, 32<<i, tier))
			}
		}
	}
	return &e
}

// emuMatrix packs uniformly random levels (the whole level range, unlike
// RTN's bell-shaped ones) with random f16 scales and mins, a few of them f16
// subnormals.
func emuMatrix(t testing.TB, rng *rand.Rand, f Format, rows, cols int) *Matrix {
	m := &Matrix{Format: f, Rows: rows, Cols: cols, Data: make([]byte, rows*f.RowBytes(cols))}
	rb, groups := f.RowBytes(cols), cols/f.SubGroup()
	for r := 0; r < rows; r++ {
		scales, mins := gaussian(rng, groups, 0.01), gaussian(rng, groups, 0.05)
		if !f.Asym {
			mins = nil
		}
		if err := PackRow(f, m.Data[r*rb:(r+1)*rb], randLevels(rng, f, cols), scales, mins); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// emuCall is one kernel call: kernel R4T1, R1T1, R1T4 or SBT4 on rows
// [row, row+rows) of a 4-row matrix and tokens [tok, tok+toks) of 4. Output
// (r, t) lands at out[r + t*emuOstride]; the rest of the buffer must keep
// the sentinel.
type emuCall struct {
	kernel               string
	row, rows, tok, toks int
}

const emuOstride = 5

var emuCalls = []emuCall{{"R4T1", 0, 4, 0, 1}, {"R1T1", 1, 1, 2, 1}, {"R1T4", 2, 1, 0, 4}, {"SBT4", 3, 1, 0, 4}}

// emuCompare runs every kernel call, for every quantized format on one
// group, five groups and 384 columns (superblocks), with native's kernels
// and emu's. Exact requires identical bits; otherwise each output may differ
// by the f32 ordering budget of TestMulVecTiers (emuCheck).
func emuCompare(t *testing.T, native, emu *quantKernels, tier string, exact bool) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, f := range Formats() {
		if !f.Type.Quantized() || f.Super { // superblock formats have no assembly kernels
			continue
		}
		for _, cols := range []int{f.Group, 5 * f.Group, 384} {
			m, xs := emuMatrix(t, rng, f, 4, cols), NewActivationBatch(4, cols)
			if err := xs.Set(gaussian(rng, 4*cols, 1)); err != nil {
				t.Fatal(err)
			}
			wd := dequantAll(t, m)
			for _, call := range emuCalls {
				if call.kernel == "SBT4" && (cols%128 != 0 || native.lookup(f).sb[0] == nil) {
					continue
				}
				want, got := emuOut(native.lookup(f), m, xs, call), emuOut(emu.lookup(f), m, xs, call)
				for i := range want {
					r, tok := i%emuOstride, i/emuOstride
					what := fmt.Sprintf("%s %s%s, %d cols: out[%d]", f, call.kernel, tier, cols, i)
					if exact || r >= call.rows || tok >= call.toks {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s = %v, native %v", what, got[i], want[i])
						}
						continue
					}
					mag := absDotW(wd[(call.row+r)*cols:][:cols], cols, xs.Token(call.tok+tok).F32)[0]
					emuCheck(t, what, got[i], want[i], mag)
				}
			}
		}
	}
}

// emuOut runs call with k's kernels into a sentinel-filled buffer.
func emuOut(k *dotKernels, m *Matrix, xs *ActivationBatch, call emuCall) []float32 {
	f, cols, nb := m.Format, m.Cols, xs.Blocks
	rb := f.RowBytes(cols)
	w, q, d, s := &m.Data[call.row*rb], &xs.Q[call.tok*nb*ChunkSize], &xs.D[call.tok*nb], &xs.S[call.tok*nb]
	groups, cpg := uintptr(cols/f.Group), uintptr(f.Group/ChunkSize)
	buf := make([]float32, 4*emuOstride)
	for i := range buf {
		buf[i] = sentinel
	}
	switch call.kernel {
	case "R4T1":
		k.rnt1(&buf[0], 0, w, uintptr(rb), q, d, s, uintptr(nb), groups, cpg)
	case "R1T1":
		k.r1t1(&buf[0], 0, w, uintptr(rb), q, d, s, uintptr(nb), groups, cpg)
	case "R1T4":
		k.r1t4(&buf[0], emuOstride, w, uintptr(rb), q, d, s, uintptr(nb), groups, cpg)
	case "SBT4":
		k.sb[f.Group/64](&buf[0], emuOstride, w, q, d, s, uintptr(nb), uintptr(cols/128))
	}
	return buf
}

// TestEmuMatchesCPU validates the interpreter: f16 conversion and float32
// FMA against the CPU, then every AVX2 quantized kernel that has an AVX-512
// twin, interpreted and native, bit for bit.
func TestEmuMatchesCPU(t *testing.T) {
	if !hasAVX2 {
		t.Skip("the native kernels need AVX2")
	}
	t.Run("f16", func(t *testing.T) {
		// every f16 value through the interpreter and through dotF16AVX2
		// (h*1 + 0*0...; a zero's sign is lost there, so compare values)
		w, one := make([]byte, 16), []float32{1, 0, 0, 0, 0, 0, 0, 0}
		var m emuMachine
		for h := 0; h < 1<<16; h++ {
			binary.LittleEndian.PutUint16(w, uint16(h))
			m.vec[0] = emuVec{}
			copy(m.vec[0][:], w)
			emuOps["VCVTPH2PS"].exec(&m, []emuOperand{{kind: emuXmm, reg: 0}, {kind: emuYmm, reg: 1}})
			got, want := m.vec[1].f32(0), dotF16AVX2(&w[0], &one[0], 8)
			if got != want && !(math.IsNaN(float64(got)) && math.IsNaN(float64(want))) {
				t.Fatalf("f16 %#04x: %v, CPU %v", h, got, want)
			}
		}
	})
	t.Run("fma", func(t *testing.T) {
		// axpyF32AVX2 computes y += alpha*x with VFMADD231PS. Significands
		// of 13 and 12 bits make products of up to 25 bits, often float32
		// midpoints, which a tiny c must push off the tie.
		rng := rand.New(rand.NewPCG(43, 44))
		x, y := make([]float32, 8), make([]float32, 8)
		for range 20000 {
			a := float32(rng.IntN(1<<13)) * float32(math.Ldexp(1, rng.IntN(40)-30))
			for i := range x {
				x[i] = float32(rng.IntN(1<<12)) * float32(math.Ldexp(1, rng.IntN(40)-30))
				prod := float64(a) * float64(x[i])
				switch rng.IntN(3) {
				case 0: // far below the product's last bit
					y[i] = float32(prod * math.Ldexp(rng.Float64()-0.5, -40))
				case 1: // cancellation
					y[i] = -float32(prod) * float32(1+rng.NormFloat64()*1e-6)
				default:
					y[i] = float32(rng.NormFloat64() * prod)
				}
			}
			want := append([]float32(nil), y...)
			axpyF32AVX2(a, &x[0], &want[0], 8)
			for i := range x {
				if got := emuFMA32(a, x[i], y[i]); math.Float32bits(got) != math.Float32bits(want[i]) {
					t.Fatalf("fma(%g, %g, %g) = %g, CPU %g", a, x[i], y[i], got, want[i])
				}
			}
		}
	})
	t.Run("kernels", func(t *testing.T) {
		native, tiers := []*quantKernels{&avx2Kernels}, []string{"AVX2"}
		if hasAVX512 { // on such a CPU the AVX-512 kernels are checked directly too
			native, tiers = append(native, &avx512Kernels), append(tiers, "AVX512")
		}
		for i, qk := range native {
			emuCompare(t, qk, emuTable(t, qk, tiers[i]), tiers[i], true)
		}
	})
}

// emuCheck compares an output with the reference within the f32 ordering
// budget of TestMulVecTiers: |got - want| <= 1e-6 * sum_c |W[r,c] x[c]|.
func emuCheck(t *testing.T, what string, got, want float32, mag float64) {
	t.Helper()
	if d := math.Abs(float64(got) - float64(want)); !(d <= 1e-6*mag) {
		t.Fatalf("%s: %v, want %v (diff %.3g, magnitude %.3g)", what, got, want, d, mag)
	}
}

// TestEmuAVX512Kernels runs the AVX-512 kernels in the interpreter: each one
// against its AVX2 twin (native), then the whole AVX-512 tier path
// (mulMatSIMD and mulVecSIMD with the AVX-512 table) against the reference
// on odd shapes.
func TestEmuAVX512Kernels(t *testing.T) {
	if !hasAVX2 {
		t.Skip("the native kernels need AVX2")
	}
	emu := emuTable(t, &avx512Kernels, "AVX512")
	t.Run("kernels", func(t *testing.T) { emuCompare(t, &avx2Kernels, emu, "AVX512", false) })
	t.Run("tier", func(t *testing.T) {
		// rows [2, 7): one 4-row and one 1-row call per token in MulVec;
		// 3 groups: per-chunk kernels; 384 columns: superblocks; 32896
		// columns: token blocks of 4 (L2 tiling), so 9 tokens make 4+4+1
		rng := rand.New(rand.NewPCG(45, 46))
		const rows, r0 = 7, 2
		for _, f := range Formats() {
			if !f.Type.Quantized() || f.Super {
				continue
			}
			for _, cols := range []int{3 * f.Group, 384, 32896} {
				for _, n := range []int{1, 3, 4, 5, 9} {
					if cols == 32896 && n != 9 {
						continue
					}
					m := emuMatrix(t, rng, f, rows, cols)
					xs := NewActivationBatch(n, cols)
					if err := xs.Set(gaussian(rng, n*cols, 1)); err != nil {
						t.Fatal(err)
					}
					want := make([]float32, n*rows)
					mulMatGeneric(m, want, xs, r0, rows)
					wd, mags := dequantAll(t, m), make([][]float64, n)
					for tok := range mags {
						mags[tok] = absDotW(wd, cols, xs.Token(tok).F32)
					}
					check := func(what string, buf []float32) {
						for j, v := range buf {
							i := j - 16 // guarded's margin
							tok, r := i/rows, i%rows
							if i < 0 || i >= len(want) || r < r0 {
								if v != sentinel {
									t.Fatalf("%s %s n=%d %d cols: buffer index %d written", what, f, n, cols, j)
								}
								continue
							}
							emuCheck(t, fmt.Sprintf("%s %s n=%d %d cols token %d row %d", what, f, n, cols, tok, r), v, want[i], mags[tok][r])
						}
					}
					buf, dst := guarded(n * rows)
					mulMatSIMD(emu, m, dst, xs, r0, rows)
					check("mulMatSIMD", buf)
					if n == 1 {
						buf, dst = guarded(rows)
						x := xs.Token(0)
						mulVecSIMD(emu, m, dst, &x, r0, rows)
						check("mulVecSIMD", buf)
					}
				}
			}
		}
	})
}

// TestEmuTiledKernels runs the Tiled8 kernels of every x86 tier in the
// interpreter: against the reference (mulMatTiledGeneric) within the f32
// ordering budget on every CPU, and, where the CPU has the tier, bit for bit
// against the native kernels, which also checks the hand-encoded AVX-VNNI
// VPDPBUSD (decoded by emuDecodeVEX) against the CPU. The 8-row kernels run
// decode on two row blocks in one call and prefill on the second row block
// with 4 tokens, so the first block's outputs must keep the sentinel; the
// AVX-512 16-row kernels run both on the pair of row blocks. The GFNI Q3, Q5
// and Q6 kernels (AVX512GFNI) are checked the same way, so on a CPU with GFNI the
// interpreter's VGF2P8AFFINEQB, VPTESTMB and VPTERNLOGD are checked against it.
func TestEmuTiledKernels(t *testing.T) {
	if !hasAVX2 {
		t.Skip("the native kernels need AVX2")
	}
	p, err := loadEmu()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(47, 48))
	const rows, n = 2 * TileRows, 4
	defer func(g bool) { tiledGFNI = g }(tiledGFNI)
	for _, tier := range []struct {
		name   string
		tier   Tier
		native bool
		pairs  bool // the 16-row (two row blocks, ZMM) kernels
	}{{"AVX2", TierAVX2, true, false}, {"AVXVNNI", TierAVXVNNI, hasAVXVNNI, false},
		{"AVX512", TierAVX512, hasAVX512, false}, {"AVX512", TierAVX512, hasAVX512, true},
		{"AVX512GFNI", TierAVX512, hasGFNI, false}, {"AVX512GFNI", TierAVX512, hasGFNI, true}} {
		gfni := tier.name == "AVX512GFNI" // the avx512-vnni tier's Q3, Q5 and Q6 kernels on CPUs with GFNI
		tiledGFNI = gfni                  // which ones the native calls run
		for _, f := range quantFormats() {
			if gfni && f.Type != Q3 && f.Type != Q5 && f.Type != Q6 {
				continue
			}
			for _, cols := range []int{f.Group, 3 * f.Group} {
				m := emuMatrix(t, rng, f, rows, cols)
				tm := mustTile(t, m)
				xs := NewActivationBatch(n, cols)
				if err := xs.Set(gaussian(rng, n*cols, 1)); err != nil {
					t.Fatal(err)
				}
				want := make([]float32, n*rows)
				mulMatTiledGeneric(tm, want, xs, 0, rows)
				wd := dequantAll(t, m)
				groups, cpg := uintptr(cols/f.Group), uintptr(f.Group/ChunkSize)
				blockBytes := tiledBlockBytes(f, cols)
				base := fmt.Sprintf("q%d%s%s", f.Type.Bits(), map[bool]string{false: "", true: "k"}[f.Super],
					map[bool]string{false: "Sym", true: "Asym"}[f.Asym])
				s, ds, sum := &xs.S[0], &xs.DS[0], emuPtr(&xs.S[0])
				if f.Asym {
					sum = emuPtr(&xs.DS[0])
				}
				// check compares rows [lo, hi) of tokens [0, toks) with the
				// reference (and native, if not nil) and the rest of buf with
				// the sentinel.
				check := func(what string, buf, native []float32, lo, hi, toks int) {
					t.Helper()
					for i, v := range buf {
						j := i - 16 // guarded's margin
						tok, r := j/rows, j%rows
						if j < 0 || j >= n*rows || r < lo || r >= hi || tok >= toks {
							if v != sentinel {
								t.Fatalf("%s %s %d cols: buffer index %d written", what, f, cols, i)
							}
							continue
						}
						name := fmt.Sprintf("%s %s %d cols token %d row %d", what, f, cols, tok, r)
						if native != nil && math.Float32bits(v) != math.Float32bits(native[i]) {
							t.Fatalf("%s: interpreted %v, native %v", name, v, native[i])
						}
						mag := absDotW(wd[r*cols:][:cols], cols, xs.Token(tok).F32)[0]
						emuCheck(t, name, v, want[tok*rows+r], mag)
					}
				}

				var nat []float32
				if tier.pairs {
					name := base + "X16T1" + tier.name
					buf, dst := guarded(n * rows)
					emuFn(t, p, name)(emuPtr(&dst[0]), emuPtr(&tm.Data[0]), uint64(blockBytes), emuPtr(&xs.Q[0]),
						emuPtr(&xs.D[0]), sum, uint64(groups), uint64(cpg), 1)
					if tier.native {
						nbuf, ndst := guarded(n * rows)
						tiledPairT1(f, &ndst[0], &tm.Data[0], uintptr(blockBytes), &xs.Q[0], &xs.D[0], s, ds, groups, cpg, 1)
						nat = nbuf
					}
					check(name, buf, nat, 0, rows, 1)

					name = base + "X16T4" + tier.name
					buf, dst = guarded(n * rows)
					emuFn(t, p, name)(emuPtr(&dst[0]), rows, emuPtr(&tm.Data[0]), uint64(blockBytes), emuPtr(&xs.Q[0]),
						emuPtr(&xs.D[0]), sum, uint64(xs.Blocks), uint64(groups), uint64(cpg))
					nat = nil
					if tier.native {
						nbuf, ndst := guarded(n * rows)
						tiledPairT4(f, &ndst[0], rows, &tm.Data[0], uintptr(blockBytes), &xs.Q[0], &xs.D[0], s, ds,
							uintptr(xs.Blocks), groups, cpg)
						nat = nbuf
					}
					check(name, buf, nat, 0, rows, n)
					runtime.KeepAlive(tm)
					runtime.KeepAlive(xs)
					continue
				}

				// decode, token 0, both row blocks in one call
				name := base + "X8T1" + tier.name
				buf, dst := guarded(n * rows)
				emuFn(t, p, name)(emuPtr(&dst[0]), emuPtr(&tm.Data[0]), emuPtr(&xs.Q[0]), emuPtr(&xs.D[0]),
					sum, uint64(groups), uint64(cpg), 2)
				if tier.native {
					nbuf, ndst := guarded(n * rows)
					tiledT1(tier.tier, f, &ndst[0], &tm.Data[0], &xs.Q[0], &xs.D[0], s, ds, groups, cpg, 2)
					nat = nbuf
				}
				check(name, buf, nat, 0, rows, 1)

				// prefill, row block 1, tokens 0..3 at out + t*rows
				name = base + "X8T4" + tier.name
				buf, dst = guarded(n * rows)
				emuFn(t, p, name)(emuPtr(&dst[TileRows]), rows, emuPtr(&tm.Data[blockBytes]), emuPtr(&xs.Q[0]),
					emuPtr(&xs.D[0]), sum, uint64(xs.Blocks), uint64(groups), uint64(cpg))
				nat = nil
				if tier.native {
					nbuf, ndst := guarded(n * rows)
					tiledT4(tier.tier, f, &ndst[TileRows], rows, &tm.Data[blockBytes], &xs.Q[0], &xs.D[0], s, ds,
						uintptr(xs.Blocks), groups, cpg)
					nat = nbuf
				}
				check(name, buf, nat, TileRows, rows, n)
				runtime.KeepAlive(tm)
				runtime.KeepAlive(xs)
			}
		}
	}
}

// emuF32Set is the f32 kernel set of a tier ("AVX2", "AVX512") run in the
// interpreter.
func emuF32Set(t *testing.T, tier string) *f32KernelSet {
	p, err := loadEmu()
	if err != nil {
		t.Fatal(err)
	}
	fn := func(base string) func(args ...uint64) []uint64 { return emuFrame(t, p, base+tier) }
	f := func(v float32) uint64 { return uint64(math.Float32bits(v)) }
	ret := func(frame []uint64) float32 { return emuF32(frame[len(frame)-1]) }
	dot, axpy, axpyX4, maxf := fn("dotF32"), fn("axpyF32"), fn("axpyF32X4"), fn("maxF32")
	gelu, softCap, expSub, scale := fn("geluMulF32"), fn("softCapF32"), fn("expSubF32"), fn("scaleF32")
	msop, rope, axpyF16, dotF16X4 := fn("mulScaleOnePlusF32"), fn("ropeF32"), fn("axpyF16"), fn("dotF16X4")
	axpyF16X4, toF16 := fn("axpyF16X4"), fn("toF16")
	// the buffers stay alive through the kernel calls (the interpreter holds
	// their addresses as integers)
	keep := func(ps ...any) { runtime.KeepAlive(ps) }
	return &f32KernelSet{
		dot: func(a, b *float32, n uintptr) float32 {
			defer keep(a, b)
			return ret(dot(emuPtr(a), emuPtr(b), uint64(n)))
		},
		axpy: func(alpha float32, x, y *float32, n uintptr) {
			defer keep(x, y)
			axpy(f(alpha), emuPtr(x), emuPtr(y), uint64(n))
		},
		axpyX4: func(a *float32, x *float32, xstride uintptr, y *float32, n uintptr) {
			defer keep(a, x, y)
			axpyX4(emuPtr(a), emuPtr(x), uint64(xstride), emuPtr(y), uint64(n))
		},
		max: func(x *float32, n uintptr) float32 {
			defer keep(x)
			return ret(maxf(emuPtr(x), uint64(n)))
		},
		geluMul: func(dst, x, up *float32, n uintptr) {
			defer keep(dst, x, up)
			gelu(emuPtr(dst), emuPtr(x), emuPtr(up), uint64(n))
		},
		softCap: func(x *float32, n uintptr, c float32) {
			defer keep(x)
			softCap(emuPtr(x), uint64(n), f(c))
		},
		expSub: func(x *float32, n uintptr, m float32) float32 {
			defer keep(x)
			return ret(expSub(emuPtr(x), uint64(n), f(m)))
		},
		scale: func(alpha float32, x *float32, n uintptr) {
			defer keep(x)
			scale(f(alpha), emuPtr(x), uint64(n))
		},
		mulScaleOnePlus: func(dst, x, w *float32, n uintptr, s float32) {
			defer keep(dst, x, w)
			msop(emuPtr(dst), emuPtr(x), emuPtr(w), uint64(n), f(s))
		},
		rope: func(x, cos, sin *float32, h, n uintptr) {
			defer keep(x, cos, sin)
			rope(emuPtr(x), emuPtr(cos), emuPtr(sin), uint64(h), uint64(n))
		},
		axpyF16: func(alpha float32, x *uint16, y *float32, n uintptr) {
			defer keep(x, y)
			axpyF16(f(alpha), emuPtr(x), emuPtr(y), uint64(n))
		},
		dotF16X4: func(out *float32, w *uint16, wstride uintptr, x *float32, n uintptr) {
			defer keep(out, w, x)
			dotF16X4(emuPtr(out), emuPtr(w), uint64(wstride), emuPtr(x), uint64(n))
		},
		axpyF16X4: func(a *float32, x *uint16, xstride uintptr, y *float32, n uintptr) {
			defer keep(a, x, y)
			axpyF16X4(emuPtr(a), emuPtr(x), uint64(xstride), emuPtr(y), uint64(n))
		},
		toF16: func(dst *uint16, src *float32, n uintptr) {
			defer keep(dst, src)
			toF16(emuPtr(dst), emuPtr(src), uint64(n))
		},
	}
}

// TestEmuF32Kernels runs the AVX-512 tier's f32 kernels in the interpreter
// (the 512-bit registers, mask registers, masked loads and stores of their
// tails) against the AVX2 kernels (checkF32Set), and, on a CPU with AVX-512,
// against the native kernels bit for bit, which checks the interpreter's new
// instructions against the CPU.
func TestEmuF32Kernels(t *testing.T) {
	if !hasAVX2 {
		t.Skip("the native kernels need AVX2")
	}
	var native *f32KernelSet
	if hasAVX512 {
		native = &avx512F32
	}
	checkF32Set(t, emuF32Set(t, "AVX512"), native)
}
