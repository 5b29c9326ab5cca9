package model

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/x448/float16"

	"github.com/cafeq/cafeq/model/internal/regfile"
)

// Safetensors layout (https://github.com/huggingface/safetensors):
//
//	bytes [0, 8)      header length N, little-endian uint64
//	bytes [8, 8+N)    JSON header: {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
//	bytes [8+N, end)  tensor data; data_offsets are bytes from the start of this section
//
// The reader is strict: the header must fit the file, dtype size × element
// count must equal each tensor's range length, and the ranges must cover the
// data section exactly, with no gap, overlap or trailing bytes.

// ErrSafetensors marks a malformed safetensors file.
var ErrSafetensors = errors.New("malformed safetensors file")

// maxSafetensorsHeader bounds the JSON header; real checkpoints use a few hundred KB.
const maxSafetensorsHeader = 100 << 20

// DType is a stored element type of an unquantized tensor.
type DType string

// The element types cafeq reads from checkpoints.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
)

// safetensorsDTypeSize covers every dtype safetensors defines, so that files
// with tensors cafeq does not use still validate; unknown names are rejected.
var safetensorsDTypeSize = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// Tensor is a view of one stored tensor. Data aliases the mapped file.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Elements is the product of the shape.
func (t Tensor) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

type safetensorsEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ParseSafetensors validates a whole safetensors file held in memory and
// returns its tensors by their stored names. Data slices alias file.
func ParseSafetensors(file []byte) (map[string]Tensor, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("model: safetensors: "+format+": %w", append(args, ErrSafetensors)...)
	}
	if len(file) < 8 {
		return nil, bad("file of %d bytes is too short for a header", len(file))
	}
	n := binary.LittleEndian.Uint64(file[:8])
	if n > maxSafetensorsHeader || n > uint64(len(file)-8) {
		return nil, bad("header length %d does not fit in a file of %d bytes", n, len(file))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(file[8:8+n], &header); err != nil {
		return nil, bad("header JSON: %v", err)
	}
	data := file[8+n:]
	tensors := make(map[string]Tensor, len(header))
	type span struct {
		begin, end int64
		name       string
	}
	spans := make([]span, 0, len(header))
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var e safetensorsEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, bad("tensor %q: %v", name, err)
		}
		size, ok := safetensorsDTypeSize[e.DType]
		if !ok {
			return nil, bad("tensor %q: unknown dtype %q", name, e.DType)
		}
		if len(e.DataOffsets) != 2 {
			return nil, bad("tensor %q: data_offsets must have two entries", name)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end > int64(len(data)) {
			return nil, bad("tensor %q: data_offsets [%d, %d] outside the %d-byte data section", name, begin, end, len(data))
		}
		count := int64(1)
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			if d < 0 || (d > 0 && count > math.MaxInt32*int64(1<<20)/d) {
				return nil, bad("tensor %q: bad shape %v", name, e.Shape)
			}
			count *= d
			shape[i] = int(d)
		}
		if count*int64(size) != end-begin {
			return nil, bad("tensor %q: %s %v needs %d bytes, data_offsets give %d", name, e.DType, e.Shape, count*int64(size), end-begin)
		}
		spans = append(spans, span{begin, end, name})
		tensors[name] = Tensor{Name: name, DType: DType(e.DType), Shape: shape, Data: data[begin:end:end]}
	}
	// As the reference library requires, the tensors tile the data section
	// exactly: in offset order each starts where the previous one ended, the
	// first at 0 and the last at the end of the file. A header length that is
	// off by a byte would otherwise shift every tensor. The order is total
	// (zero-size tensors sort before a tensor at the same offset), so the
	// verdict does not depend on map iteration order.
	slices.SortFunc(spans, func(a, b span) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), cmp.Compare(a.name, b.name))
	})
	var end int64
	for i, s := range spans {
		switch {
		case s.begin < end:
			return nil, bad("tensors %q and %q overlap", spans[i-1].name, s.name)
		case s.begin > end:
			return nil, bad("%d unused bytes before tensor %q at data offset %d", s.begin-end, s.name, end)
		}
		end = s.end
	}
	if end != int64(len(data)) {
		return nil, bad("tensors end at data offset %d, but the data section is %d bytes", end, len(data))
	}
	return tensors, nil
}

// Checkpoint is a Hugging Face Gemma 2 checkpoint directory: config.json,
// one or more safetensors files and the tokenizer. Tensors are memory-mapped
// and exposed under their canonical names.
type Checkpoint struct {
	Dir     string
	Config  Config
	tensors map[string]Tensor
	files   []*MappedFile
}

// OpenCheckpoint reads config.json, maps model.safetensors or the shards
// listed in model.safetensors.index.json, and checks that every tensor the
// config needs is present with the right shape and a supported dtype.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	files, err := safetensorsFiles(dir)
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{Dir: dir, Config: cfg, tensors: map[string]Tensor{}}
	for _, f := range files {
		m, err := MapFile(f)
		if err != nil {
			ck.Close()
			return nil, err
		}
		ck.files = append(ck.files, m)
		var ts map[string]Tensor
		if ferr := guardMapped(func() { ts, err = ParseSafetensors(m.Data) }); ferr != nil {
			err = ferr
		}
		if err != nil {
			ck.Close()
			return nil, fmt.Errorf("%w (in %s)", err, filepath.Base(f))
		}
		for hfName, t := range ts {
			name, ok := CanonicalName(hfName)
			if !ok {
				continue
			}
			if _, dup := ck.tensors[name]; dup {
				ck.Close()
				return nil, fmt.Errorf("model: tensor %q appears twice in the checkpoint", hfName)
			}
			t.Name = name
			ck.tensors[name] = t
		}
	}
	if err := ck.validate(); err != nil {
		ck.Close()
		return nil, err
	}
	return ck, nil
}

func (ck *Checkpoint) validate() error {
	expected := ck.Config.ExpectedShapes()
	names := make([]string, 0, len(expected))
	for name := range expected {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t, ok := ck.tensors[name]
		if !ok {
			return fmt.Errorf("model: checkpoint %s lacks tensor %q", ck.Dir, name)
		}
		if !slices.Equal(t.Shape, expected[name]) {
			return fmt.Errorf("model: tensor %q has shape %v, config expects %v", name, t.Shape, expected[name])
		}
		switch t.DType {
		case F32, F16, BF16:
		default:
			return fmt.Errorf("model: tensor %q has dtype %s; cafeq reads F32, F16 and BF16", name, t.DType)
		}
	}
	for name := range ck.tensors {
		if _, ok := expected[name]; !ok {
			return fmt.Errorf("model: unexpected tensor %q for this config", name)
		}
	}
	return nil
}

// safetensorsFiles lists the checkpoint's data files: the shards named by
// model.safetensors.index.json, or the single model.safetensors.
func safetensorsFiles(dir string) ([]string, error) {
	index, err := regfile.ReadFile(filepath.Join(dir, "model.safetensors.index.json"), maxSafetensorsHeader)
	if errors.Is(err, os.ErrNotExist) {
		single := filepath.Join(dir, "model.safetensors")
		if _, err := os.Stat(single); err != nil {
			return nil, fmt.Errorf("model: %s has neither model.safetensors nor model.safetensors.index.json", dir)
		}
		return []string{single}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(index, &idx); err != nil {
		return nil, fmt.Errorf("model: model.safetensors.index.json: %w", err)
	}
	seen := map[string]bool{}
	var files []string
	for _, shard := range idx.WeightMap {
		if shard != filepath.Base(shard) || shard == "" || shard == "." || shard == ".." {
			return nil, fmt.Errorf("model: model.safetensors.index.json: shard name %q is not a plain file name", shard)
		}
		if !seen[shard] {
			seen[shard] = true
			files = append(files, filepath.Join(dir, shard))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("model: model.safetensors.index.json lists no shards")
	}
	sort.Strings(files)
	return files, nil
}

// Tensor returns the tensor with the given canonical name.
func (ck *Checkpoint) Tensor(name string) (Tensor, error) {
	t, ok := ck.tensors[name]
	if !ok {
		return Tensor{}, fmt.Errorf("model: checkpoint has no tensor %q", name)
	}
	return t, nil
}

// Names lists the canonical tensor names in sorted order.
func (ck *Checkpoint) Names() []string {
	names := make([]string, 0, len(ck.tensors))
	for n := range ck.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close unmaps the files; tensors must not be used afterwards.
func (ck *Checkpoint) Close() error {
	var first error
	for _, f := range ck.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	ck.files = nil
	return first
}

// Float32s decodes the tensor's elements to float32 (exact for all three dtypes).
func (t Tensor) Float32s() ([]float32, error) {
	out := make([]float32, t.Elements())
	return out, decodeFloat32s(t.Name, t.DType, t.Data, out)
}

// RowFloat32s decodes row r of a 2-D tensor into dst (len Shape[1]), so a
// large matrix can be streamed without decoding it whole.
func (t Tensor) RowFloat32s(r int, dst []float32) error {
	if len(t.Shape) != 2 || r < 0 || r >= t.Shape[0] || len(dst) != t.Shape[1] {
		return fmt.Errorf("model: tensor %q: row %d of shape %v into %d values", t.Name, r, t.Shape, len(dst))
	}
	size := len(t.Data) / t.Elements()
	cols := t.Shape[1]
	return decodeFloat32s(t.Name, t.DType, t.Data[r*cols*size:(r+1)*cols*size], dst)
}

// decodeFloat32s decodes mapped checkpoint data; a file truncated meanwhile
// is ErrFileChanged, not a crash.
func decodeFloat32s(name string, dtype DType, data []byte, out []float32) (err error) {
	if ferr := guardMapped(func() { err = decodeFloat32sUnguarded(name, dtype, data, out) }); ferr != nil {
		return fmt.Errorf("model: tensor %q: %w", name, ferr)
	}
	return err
}

func decodeFloat32sUnguarded(name string, dtype DType, data []byte, out []float32) error {
	switch dtype {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(data[2*i:])) << 16)
		}
	case F16:
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(data[2*i:])).Float32()
		}
	default:
		return fmt.Errorf("model: tensor %q: cannot decode dtype %s", name, dtype)
	}
	return nil
}

// SafetensorsSpec describes one tensor for SafetensorsWriter.
type SafetensorsSpec struct {
	Name  string // stored (Hugging Face) name
	DType DType
	Shape []int
}

// SafetensorsWriter streams a safetensors file: the header is written from
// the specs up front, then each tensor's bytes in spec order. Close renames
// the temporary file into place.
type SafetensorsWriter struct {
	f     *AtomicFile
	w     *bufio.Writer
	sizes []int64
	next  int
}

// CreateSafetensors starts a safetensors file holding specs, in that order.
func CreateSafetensors(path string, specs []SafetensorsSpec, metadata map[string]string) (*SafetensorsWriter, error) {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var offset int64
	sizes := make([]int64, len(specs))
	for i, s := range specs {
		size, ok := safetensorsDTypeSize[string(s.DType)]
		if !ok {
			return nil, fmt.Errorf("model: safetensors: tensor %q: unknown dtype %q", s.Name, s.DType)
		}
		n := int64(size)
		for _, d := range s.Shape {
			n *= int64(d)
		}
		sizes[i] = n
		header[s.Name] = safetensorsEntry{DType: string(s.DType), Shape: toInt64(s.Shape), DataOffsets: []int64{offset, offset + n}}
		offset += n
	}
	h, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("model: safetensors: %w", err)
	}
	// Pad the header with spaces so the data section starts 8-byte aligned.
	for (8+len(h))%8 != 0 {
		h = append(h, ' ')
	}
	f, err := CreateAtomic(path)
	if err != nil {
		return nil, err
	}
	w := &SafetensorsWriter{f: f, w: bufio.NewWriterSize(f, 4<<20), sizes: sizes}
	w.w.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(h))))
	w.w.Write(h)
	return w, nil
}

func toInt64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}

// Write appends the next tensor's bytes; it must be exactly that tensor's size.
func (w *SafetensorsWriter) Write(data []byte) error {
	if w.next >= len(w.sizes) {
		return fmt.Errorf("model: safetensors: more tensors than specs")
	}
	if int64(len(data)) != w.sizes[w.next] {
		return fmt.Errorf("model: safetensors: tensor %d is %d bytes, want %d", w.next, len(data), w.sizes[w.next])
	}
	w.next++
	_, err := w.w.Write(data)
	return err
}

// Close finishes the file and renames it into place; on error nothing is left behind.
func (w *SafetensorsWriter) Close() error {
	if w.next != len(w.sizes) {
		w.f.Abort()
		return fmt.Errorf("model: safetensors: %d of %d tensors written", w.next, len(w.sizes))
	}
	if err := w.w.Flush(); err != nil {
		w.f.Abort()
		return fmt.Errorf("model: safetensors: %w", err)
	}
	return w.f.Commit()
}

// Abort removes the partial file.
func (w *SafetensorsWriter) Abort() { w.f.Abort() }
