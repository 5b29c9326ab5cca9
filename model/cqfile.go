package model

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/cafeq/cafeq/kernels"
)

// The .cq file: one file holding a quantized model's config, quantization
// settings, tokenizer and packed tensors. docs/CQ-FILE.md documents it byte
// by byte; in short (integers little-endian):
//
//	bytes [0, 8)    magic "\x89CAFEQ\r\n"
//	bytes [8, 12)   version, uint32 (1)
//	bytes [12, 16)  CRC-32C of the header JSON, uint32
//	bytes [16, 24)  header length H in bytes, uint64
//	bytes [24, 32)  file length in bytes, uint64
//	bytes [32, 32+H) header JSON: config, quantization, metadata, tokenizer, tensors
//	zero padding to D = align64(32+H), the start of the data section
//	sections (tokenizer blob, tensors), each at D+offset with offset a multiple of 64,
//	zero padding between sections and up to the file length, a multiple of 64
//
// Offsets in the JSON directory are bytes from the start of the data section,
// so the directory does not depend on its own length. CRC-32C values are
// written as 8 hex digits, so the writer can reserve the header before the
// checksums are known and fill it in place when the file is complete.

const (
	cqMagic      = "\x89CAFEQ\r\n"
	CQVersion    = 1  // the version this package reads and writes
	cqPrefixSize = 32 // magic, version, header CRC, header length, file length
	cqAlign      = 64 // alignment of the data section and of every section in it
	cqMaxDims    = 8
	cqMaxDim     = 1 << 28 // per dimension; keeps RowBytes inside a 32-bit int
)

// Errors of the .cq reader and writer; they are wrapped with context, test
// with errors.Is.
var (
	ErrBadMagic  = errors.New("not a cafeq model file")
	ErrVersion   = errors.New("unsupported cafeq file version")
	ErrTruncated = errors.New("file is truncated")
	ErrChecksum  = errors.New("checksum mismatch")
	ErrMalformed = errors.New("malformed cafeq file")
)

// Tokenizer kinds: the file name of the original tokenizer, whose bytes are
// stored unchanged.
const (
	TokenizerSentencePiece = "tokenizer.model" // SentencePiece model protobuf
	TokenizerHFJSON        = "tokenizer.json"  // Hugging Face tokenizers JSON
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CQHeader is everything in a .cq file except the tensors.
type CQHeader struct {
	Config    json.RawMessage   // the model's config.json object, decoded by ParseConfig
	Quant     CQQuant           // how the tensors were quantized
	Metadata  map[string]string // free-form: tool version, source checkpoint, error reports...
	Tokenizer CQTokenizer       // optional; Data is empty when the file has no tokenizer
}

// CQQuant records the quantizer's settings. Each tensor's own format is in
// its directory entry; these are the run's settings, for display and reuse.
type CQQuant struct {
	Method string `json:"method"`          // "none", "rtn", "hadamard", "cafeq", ...
	Bits   int    `json:"bits"`            // 3, 4, 8; 0 when unquantized
	Group  int    `json:"group"`           // quantization group size along the input axis
	Asym   bool   `json:"asym"`            // groups store a minimum as well as a scale
	Block  int    `json:"block,omitempty"` // block size of the input transforms, 0 for none
	// BPW is the bit budget (bits per linear weight, everything counted)
	// when each tensor got its own format; Bits and Group are then 0.
	BPW float64 `json:"bpw,omitempty"`
}

// CQTokenizer is the tokenizer file stored inside a .cq file.
type CQTokenizer struct {
	Kind string // TokenizerSentencePiece or TokenizerHFJSON
	Data []byte // the file's bytes; on read, a private copy (it is checked on open)
}

// CQTransform points from a weight to the tensor holding the inverse of its
// block-diagonal input transform M, so that the runtime computes x' = M⁻¹x
// before y = W'x'. That tensor holds the blocks M_k⁻¹ (Block×Block,
// row-major) one after another: in×Block values in rows of Block, with shape
// (in, Block) or (in/Block, Block, Block), in any stored format (f32, or q8
// to save space). Several weights that read the same input (q, k, v) may
// share one.
type CQTransform struct {
	Tensor string `json:"tensor"`
	Block  int    `json:"block"`
}

// CQTensorSpec describes a tensor to be written. Weights are row-major
// (out, in); the last dimension is the row length, the others multiply into
// the number of rows.
type CQTensorSpec struct {
	Name      string
	Format    kernels.Format
	Shape     []int
	Transform *CQTransform // nil when the weight's input is not transformed
}

// CQTensor is one stored tensor.
type CQTensor struct {
	CQTensorSpec
	Offset int64  // bytes from the start of the file
	Size   int64  // bytes: rows × Format.RowBytes(cols)
	CRC32C uint32 // CRC-32C (Castagnoli) of Data
	Data   []byte // read-only view of the mapped file, valid until CQFile.Close
}

// cqCRC is a CRC-32C written in JSON as exactly 8 lowercase hex digits, so
// that the header's length does not depend on the checksum values.
type cqCRC uint32

func (c cqCRC) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `"%08x"`, uint32(c)), nil
}

func (c *cqCRC) UnmarshalJSON(b []byte) error {
	if len(b) != 10 || b[0] != '"' || b[9] != '"' {
		return fmt.Errorf("crc32c must be a string of 8 hex digits, got %s", b)
	}
	var v uint32
	for _, d := range b[1:9] {
		switch {
		case '0' <= d && d <= '9':
			v = v<<4 | uint32(d-'0')
		case 'a' <= d && d <= 'f':
			v = v<<4 | uint32(d-'a'+10)
		default: // uppercase too: the format fixes one spelling
			return fmt.Errorf("crc32c must be 8 lowercase hex digits, got %s", b)
		}
	}
	*c = cqCRC(v)
	return nil
}

// cqJSON is the header JSON as stored.
type cqJSON struct {
	Config    json.RawMessage   `json:"config"`
	Quant     CQQuant           `json:"quantization"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Tokenizer *cqJSONBlob       `json:"tokenizer,omitempty"`
	Tensors   []cqJSONTensor    `json:"tensors"`
}

type cqJSONBlob struct {
	Kind   string `json:"kind"`
	Offset int64  `json:"offset"` // bytes from the start of the data section
	Size   int64  `json:"size"`
	CRC    cqCRC  `json:"crc32c"`
}

type cqJSONTensor struct {
	Name      string       `json:"name"`
	Format    string       `json:"format"` // kernels.Format.String()
	Shape     []int        `json:"shape"`
	Offset    int64        `json:"offset"` // bytes from the start of the data section
	Size      int64        `json:"size"`
	CRC       cqCRC        `json:"crc32c"`
	Transform *CQTransform `json:"transform,omitempty"`
}

func cqErr(sentinel error, format string, args ...any) error {
	return fmt.Errorf("model: cq: "+format+": %w", append(args, sentinel)...)
}

func cqAlignUp(n int64) int64 { return (n + cqAlign - 1) &^ (cqAlign - 1) }

// cqTensorSize is the stored size of a tensor of the given format and shape.
func cqTensorSize(f kernels.Format, shape []int) (int64, error) {
	if len(shape) == 0 || len(shape) > cqMaxDims {
		return 0, fmt.Errorf("shape %v: want 1 to %d dimensions", shape, cqMaxDims)
	}
	rows := uint64(1)
	for _, d := range shape {
		if d <= 0 || d > cqMaxDim {
			return 0, fmt.Errorf("shape %v: dimension %d out of range", shape, d)
		}
		hi, lo := bits.Mul64(rows, uint64(d))
		if hi != 0 || lo > 1<<62 {
			return 0, fmt.Errorf("shape %v: too many elements", shape)
		}
		rows = lo
	}
	cols := shape[len(shape)-1]
	rows /= uint64(cols)
	if err := f.Valid(cols); err != nil {
		return 0, err
	}
	hi, size := bits.Mul64(rows, uint64(f.RowBytes(cols)))
	if hi != 0 || size > math.MaxInt64/2 {
		return 0, fmt.Errorf("shape %v in %s: too large", shape, f)
	}
	return int64(size), nil
}

// cqSection is a byte range of the data section, for the overlap check.
type cqSection struct {
	what        string
	offset, end int64 // absolute
}

// check validates the directory against the layout rules (everything except
// checksums and the exact file length) and returns the tensors with absolute
// offsets, the tokenizer's range and the end of the last section. The writer
// runs it too, so it never writes a file the reader would reject.
func (h *cqJSON) check(dataStart, fileLen int64) (tensors []CQTensor, tok cqSection, end int64, err error) {
	bad := func(format string, args ...any) error { return cqErr(ErrMalformed, format, args...) }
	if c := bytes.TrimLeft(h.Config, " \t\r\n"); len(c) == 0 || c[0] != '{' {
		return nil, tok, 0, bad("config is not a JSON object")
	}
	if q := h.Quant; q.Bits < 0 || q.Group < 0 || q.Block < 0 || q.BPW < 0 {
		return nil, tok, 0, bad("quantization settings %+v: negative value", q)
	}
	var sections []cqSection
	place := func(what string, offset, size int64) (cqSection, error) {
		switch {
		case offset < 0 || offset > math.MaxInt64/4:
			return cqSection{}, bad("%s: offset %d out of range", what, offset)
		case offset%cqAlign != 0:
			return cqSection{}, bad("%s: offset %d is not a multiple of %d", what, offset, cqAlign)
		case size <= 0 || size > math.MaxInt64/4:
			return cqSection{}, bad("%s: size %d out of range", what, size)
		}
		s := cqSection{what, dataStart + offset, dataStart + offset + size}
		if s.end > fileLen {
			return cqSection{}, bad("%s: ends beyond the end of the file (offset %d, size %d, file %d bytes)", what, s.offset, size, fileLen)
		}
		sections = append(sections, s)
		return s, nil
	}
	if b := h.Tokenizer; b != nil {
		if b.Kind != TokenizerSentencePiece && b.Kind != TokenizerHFJSON {
			return nil, tok, 0, bad("tokenizer kind %q is neither %q nor %q", b.Kind, TokenizerSentencePiece, TokenizerHFJSON)
		}
		if tok, err = place("tokenizer", b.Offset, b.Size); err != nil {
			return nil, tok, 0, err
		}
	}
	index := make(map[string]int, len(h.Tensors))
	for i, t := range h.Tensors {
		what := strconv.Quote(t.Name)
		if t.Name == "" {
			return nil, tok, 0, bad("tensor %d has no name", i)
		}
		if _, dup := index[t.Name]; dup {
			return nil, tok, 0, bad("tensor %s appears twice", what)
		}
		index[t.Name] = i
		f, err := kernels.ParseFormat(t.Format)
		if err != nil {
			return nil, tok, 0, bad("tensor %s: %v", what, err)
		}
		size, err := cqTensorSize(f, t.Shape)
		if err != nil {
			return nil, tok, 0, bad("tensor %s: %v", what, err)
		}
		if size != t.Size {
			return nil, tok, 0, bad("tensor %s: size %d, but shape %v in %s takes %d bytes", what, t.Size, t.Shape, f, size)
		}
		s, err := place("tensor "+what, t.Offset, t.Size)
		if err != nil {
			return nil, tok, 0, err
		}
		tensors = append(tensors, CQTensor{
			CQTensorSpec: CQTensorSpec{Name: t.Name, Format: f, Shape: t.Shape, Transform: t.Transform},
			Offset:       s.offset, Size: t.Size, CRC32C: uint32(t.CRC),
		})
	}
	for _, t := range tensors {
		if err := checkTransform(t, tensors, index); err != nil {
			return nil, tok, 0, bad("tensor %q: transform: %v", t.Name, err)
		}
	}
	slices.SortFunc(sections, func(a, b cqSection) int { return cmp.Compare(a.offset, b.offset) })
	end = dataStart
	for i, s := range sections {
		if i > 0 && s.offset < sections[i-1].end {
			return nil, tok, 0, bad("%s overlaps %s", s.what, sections[i-1].what)
		}
		end = max(end, s.end)
	}
	return tensors, tok, end, nil
}

// checkTransform checks that t's transform names a tensor of in×block
// values in rows of block (shape (in, block) or (in/block, block, block)),
// in any format, that has no transform of its own.
func checkTransform(t CQTensor, tensors []CQTensor, index map[string]int) error {
	tr := t.Transform
	if tr == nil {
		return nil
	}
	cols := t.Shape[len(t.Shape)-1]
	if tr.Block <= 0 || cols%tr.Block != 0 {
		return fmt.Errorf("block %d does not divide the input size %d", tr.Block, cols)
	}
	i, ok := index[tr.Tensor]
	if !ok {
		return fmt.Errorf("no tensor %q", tr.Tensor)
	}
	m := tensors[i]
	n := 1
	for _, d := range m.Shape {
		n *= d // cannot overflow: cqTensorSize bounded the product
	}
	if m.Shape[len(m.Shape)-1] != tr.Block || n != cols*tr.Block || m.Transform != nil {
		return fmt.Errorf("%q has shape %v, want rows of %d and %d×%d values, untransformed", tr.Tensor, m.Shape, tr.Block, cols, tr.Block)
	}
	return nil
}

// CQFile is an open .cq file. Its methods are safe for concurrent use. What
// it returns shares memory with it and must not be modified; byte slices are
// read-only views of the mapped file, valid until Close.
type CQFile struct {
	Header  CQHeader
	tensors []CQTensor
	index   map[string]int
	mapped  *MappedFile
	once    sync.Once
}

// OpenCQ maps a .cq file and validates its structure, header checksum and
// tokenizer checksum. Tensor data is not read; Verify checks it.
func OpenCQ(path string) (*CQFile, error) {
	m, err := MapFile(path)
	if err != nil {
		return nil, err
	}
	var f *CQFile
	if ferr := guardMapped(func() { f, err = ParseCQ(m.Data) }); ferr != nil {
		err = ferr
	}
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	f.mapped = m
	return f, nil
}

// ParseCQ validates a whole .cq file held in memory, as OpenCQ does. The
// returned file's slices alias data.
func ParseCQ(data []byte) (*CQFile, error) {
	n := int64(len(data))
	if n < int64(len(cqMagic)) {
		if bytes.HasPrefix([]byte(cqMagic), data) {
			return nil, cqErr(ErrTruncated, "file is %d bytes", n)
		}
		return nil, cqErr(ErrBadMagic, "file starts with %q", data)
	}
	if string(data[:len(cqMagic)]) != cqMagic {
		return nil, cqErr(ErrBadMagic, "file starts with %q", data[:len(cqMagic)])
	}
	if n < cqPrefixSize {
		return nil, cqErr(ErrTruncated, "file is %d bytes, shorter than the %d-byte prefix", n, cqPrefixSize)
	}
	le := binary.LittleEndian
	if v := le.Uint32(data[8:]); v != CQVersion {
		return nil, cqErr(ErrVersion, "version %d (this build reads %d)", v, CQVersion)
	}
	headerCRC := le.Uint32(data[12:])
	headerLen, fileLen := le.Uint64(data[16:]), le.Uint64(data[24:])
	if fileLen > uint64(n) {
		return nil, cqErr(ErrTruncated, "file is %d bytes, its prefix says %d", n, fileLen)
	}
	if fileLen < uint64(n) {
		return nil, cqErr(ErrMalformed, "file is %d bytes, its prefix says %d", n, fileLen)
	}
	if headerLen > uint64(n-cqPrefixSize) {
		return nil, cqErr(ErrMalformed, "header length %d exceeds the file's %d bytes", headerLen, n)
	}
	// Copied, then checked: what is parsed is what was checked even if a
	// mapped file changes meanwhile.
	raw := bytes.Clone(data[cqPrefixSize : cqPrefixSize+headerLen])
	if got := crc32.Checksum(raw, castagnoli); got != headerCRC {
		return nil, cqErr(ErrChecksum, "header crc32c %08x, prefix says %08x", got, headerCRC)
	}
	// encoding/json would silently replace invalid UTF-8 with U+FFFD.
	if !utf8.Valid(raw) {
		return nil, cqErr(ErrMalformed, "header is not valid UTF-8")
	}
	var h cqJSON
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, cqErr(ErrMalformed, "header JSON: %v", err)
	}
	headerEnd := int64(cqPrefixSize + headerLen)
	tensors, tok, end, err := h.check(cqAlignUp(headerEnd), n)
	if err != nil {
		return nil, err
	}
	if want := cqAlignUp(max(headerEnd, end)); want != n {
		return nil, cqErr(ErrMalformed, "file is %d bytes, its sections end at %d and the file should be %d", n, end, want)
	}
	f := &CQFile{
		Header:  CQHeader{Config: h.Config, Quant: h.Quant, Metadata: h.Metadata},
		tensors: tensors,
		index:   make(map[string]int, len(tensors)),
	}
	for i := range f.tensors {
		t := &f.tensors[i]
		t.Data = data[t.Offset : t.Offset+t.Size : t.Offset+t.Size]
		f.index[t.Name] = i
	}
	if h.Tokenizer != nil {
		// The tokenizer is read whole when used anyway, so copy and check it now.
		b := bytes.Clone(data[tok.offset:tok.end])
		if got := crc32.Checksum(b, castagnoli); got != uint32(h.Tokenizer.CRC) {
			return nil, cqErr(ErrChecksum, "tokenizer crc32c %08x, directory says %08x", got, uint32(h.Tokenizer.CRC))
		}
		f.Header.Tokenizer = CQTokenizer{Kind: h.Tokenizer.Kind, Data: b}
	}
	return f, nil
}

// Tensor returns the named tensor with its data.
func (f *CQFile) Tensor(name string) (CQTensor, error) {
	i, ok := f.index[name]
	if !ok {
		return CQTensor{}, fmt.Errorf("model: cq: no tensor %q", name)
	}
	return f.tensors[i], nil
}

// Tensors lists the tensors in file order.
func (f *CQFile) Tensors() []CQTensor { return slices.Clone(f.tensors) }

// Release drops t's mapped pages from the process's resident set, for a
// loader that has copied t's data elsewhere (see MappedFile.Release). t.Data
// stays readable.
func (f *CQFile) Release(t CQTensor) { f.mapped.Release(t.Data) }

// Verify checks every tensor's CRC-32C, reading all the data. The error names
// each corrupt tensor and wraps ErrChecksum.
func (f *CQFile) Verify() error {
	var errs []error
	for _, t := range f.tensors {
		var got uint32
		if err := guardMapped(func() { got = crc32.Checksum(t.Data, castagnoli) }); err != nil {
			return fmt.Errorf("model: cq: tensor %q: %w", t.Name, err)
		}
		if got != t.CRC32C {
			errs = append(errs, cqErr(ErrChecksum, "tensor %q: crc32c %08x, directory says %08x", t.Name, got, t.CRC32C))
		}
	}
	return errors.Join(errs...)
}

// ReadTensor copies t's data into dst (len t.Size), private memory that stays
// valid whatever happens to the file, and with verify checks the copy
// against t's CRC-32C: copied first and checked after, so the bytes returned
// are the bytes checked. A file truncated meanwhile gives ErrFileChanged.
func (f *CQFile) ReadTensor(t CQTensor, dst []byte, verify bool) error {
	if int64(len(dst)) != t.Size || int64(len(t.Data)) != t.Size {
		return fmt.Errorf("model: cq: tensor %q: reading %d bytes into %d", t.Name, len(t.Data), len(dst))
	}
	// In chunks that stay in the cache between the copy and the checksum,
	// so verifying costs little more than the copy.
	const chunk = 256 << 10
	var crc uint32
	for off := 0; off < len(dst); off += chunk {
		end := min(off+chunk, len(dst))
		if err := ReadMapped(dst[off:end], t.Data[off:end]); err != nil {
			return fmt.Errorf("model: cq: tensor %q: %w", t.Name, err)
		}
		if verify {
			crc = crc32.Update(crc, castagnoli, dst[off:end])
		}
	}
	if verify && crc != t.CRC32C {
		return cqErr(ErrChecksum, "tensor %q: crc32c %08x, directory says %08x", t.Name, crc, t.CRC32C)
	}
	return nil
}

// Close unmaps the file. Slices from Tensor, Tensors and Header must not be
// used afterwards.
func (f *CQFile) Close() error {
	var err error
	f.once.Do(func() { err = f.mapped.Close() })
	return err
}

// CQWriter streams a .cq file to disk one tensor at a time. The directory is
// laid out by CreateCQ from the specs, so tensors can be written in any order;
// Close fills in the checksums and renames the file into place. Any error
// aborts the write: the temporary file is removed and nothing appears at the
// destination. Its methods are safe for concurrent use.
type CQWriter struct {
	mu        sync.Mutex
	path      string
	tmp       *AtomicFile
	header    cqJSON
	headerLen int
	dataStart int64
	fileLen   int64
	index     map[string]int
	written   []bool
	err       error // sticky: set by the first failure, or errCQClosed
}

var errCQClosed = errors.New("model: cq: writer is closed")

// CreateCQ starts writing a .cq file at path. The specs fix the directory;
// each tensor must then be written exactly once with WriteTensor. The
// tokenizer's bytes, if any, are written immediately.
func CreateCQ(path string, hdr CQHeader, specs []CQTensorSpec) (*CQWriter, error) {
	// Copies: the header must not change between here and Close.
	h := cqJSON{Config: bytes.Clone(hdr.Config), Quant: hdr.Quant, Metadata: maps.Clone(hdr.Metadata), Tensors: make([]cqJSONTensor, len(specs))}
	var next int64 // next free offset in the data section
	if len(hdr.Tokenizer.Data) > 0 {
		size := int64(len(hdr.Tokenizer.Data))
		h.Tokenizer = &cqJSONBlob{Kind: hdr.Tokenizer.Kind, Size: size, CRC: cqCRC(crc32.Checksum(hdr.Tokenizer.Data, castagnoli))}
		next = cqAlignUp(size)
	}
	for i, s := range specs {
		size, err := cqTensorSize(s.Format, s.Shape)
		if err != nil {
			return nil, cqErr(ErrMalformed, "tensor %q: %v", s.Name, err)
		}
		h.Tensors[i] = cqJSONTensor{Name: s.Name, Format: s.Format.String(), Shape: slices.Clone(s.Shape), Offset: next, Size: size}
		if s.Transform != nil {
			tr := *s.Transform
			h.Tensors[i].Transform = &tr
		}
		next = cqAlignUp(next + size)
	}
	raw, err := json.Marshal(&h)
	if err != nil {
		return nil, fmt.Errorf("model: cq: header: %w", err)
	}
	headerEnd := int64(cqPrefixSize + len(raw))
	dataStart := cqAlignUp(headerEnd)
	_, _, end, err := h.check(dataStart, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	w := &CQWriter{
		path: path, header: h, headerLen: len(raw), dataStart: dataStart,
		fileLen: cqAlignUp(max(headerEnd, end)),
		index:   make(map[string]int, len(specs)), written: make([]bool, len(specs)),
	}
	for i, s := range specs {
		w.index[s.Name] = i
	}
	if w.tmp, err = CreateAtomic(path); err != nil {
		return nil, err // CreateAtomic's error already names the package
	}
	if h.Tokenizer != nil {
		if _, err := w.tmp.WriteAt(hdr.Tokenizer.Data, dataStart); err != nil {
			return nil, w.fail(fmt.Errorf("model: cq: tokenizer: %w", err))
		}
	}
	return w, nil
}

// fail aborts the write with err and returns it. Called with mu held (or
// before w is shared).
func (w *CQWriter) fail(err error) error {
	if w.err == nil {
		w.err = err
		w.tmp.Abort()
	}
	return err
}

// WriteTensor writes the named tensor's data, whose length must be the size
// its spec implies.
func (w *CQWriter) WriteTensor(name string, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	i, ok := w.index[name]
	switch {
	case !ok:
		return w.fail(fmt.Errorf("model: cq: write of tensor %q, which is not in the directory", name))
	case w.written[i]:
		return w.fail(fmt.Errorf("model: cq: tensor %q written twice", name))
	}
	t := &w.header.Tensors[i]
	if int64(len(data)) != t.Size {
		return w.fail(fmt.Errorf("model: cq: tensor %q: got %d bytes, want %d", name, len(data), t.Size))
	}
	if _, err := w.tmp.WriteAt(data, w.dataStart+t.Offset); err != nil {
		return w.fail(fmt.Errorf("model: cq: tensor %q: %w", name, err))
	}
	t.CRC = cqCRC(crc32.Checksum(data, castagnoli))
	w.written[i] = true
	return nil
}

// Close checks that every tensor was written, writes the header with its
// checksums, syncs the file and renames it to the destination path.
func (w *CQWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if i := slices.Index(w.written, false); i >= 0 {
		return w.fail(fmt.Errorf("model: cq: tensor %q was never written (%d of %d missing)",
			w.header.Tensors[i].Name, len(w.written)-countTrue(w.written), len(w.written)))
	}
	raw, err := json.Marshal(&w.header)
	if err != nil {
		return w.fail(fmt.Errorf("model: cq: header: %w", err))
	}
	if len(raw) != w.headerLen {
		// Cannot happen: checksums have a fixed width in the JSON.
		return w.fail(fmt.Errorf("model: cq: header changed from %d to %d bytes", w.headerLen, len(raw)))
	}
	prefix := make([]byte, cqPrefixSize, cqPrefixSize+len(raw))
	copy(prefix, cqMagic)
	le := binary.LittleEndian
	le.PutUint32(prefix[8:], CQVersion)
	le.PutUint32(prefix[12:], crc32.Checksum(raw, castagnoli))
	le.PutUint64(prefix[16:], uint64(len(raw)))
	le.PutUint64(prefix[24:], uint64(w.fileLen))
	steps := []func() error{
		func() error { _, err := w.tmp.WriteAt(append(prefix, raw...), 0); return err },
		func() error { return w.tmp.Truncate(w.fileLen) }, // zero padding at the end
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return w.fail(fmt.Errorf("model: cq: %w", err))
		}
	}
	if err := w.tmp.Commit(); err != nil {
		w.err = err // Commit removed the temporary file
		return fmt.Errorf("model: cq: %w", err)
	}
	// Best effort: make the rename durable. Not every OS can sync a directory.
	if d, err := os.Open(filepath.Dir(w.path)); err == nil {
		d.Sync()
		d.Close()
	}
	w.err = errCQClosed
	return nil
}

// Abort discards the file being written. It is a no-op after Close or a
// failure, so `defer w.Abort()` is the usual way to clean up.
func (w *CQWriter) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail(errors.New("model: cq: write aborted"))
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
