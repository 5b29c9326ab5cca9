package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cafeq/cafeq/kernels"
)

// cqSample is a small model file's contents: odd sizes, every kind of format,
// a transform reference and a tokenizer of odd length.
type cqSample struct {
	hdr   CQHeader
	specs []CQTensorSpec
	data  map[string][]byte
}

func newCQSample(seed uint64) cqSample {
	rng := rand.New(rand.NewPCG(seed, 1))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	q4 := kernels.Format{Type: kernels.Q4, Group: 32}
	q3 := kernels.Format{Type: kernels.Q3, Group: 128, Asym: true}
	s := cqSample{
		hdr: CQHeader{
			Config:    json.RawMessage(`{"model_type": "gemma2", "hidden_size": 64}`),
			Quant:     CQQuant{Method: "cafeq", Bits: 4, Group: 32, Block: 32},
			Metadata:  map[string]string{"source": "test", "tool": "cafeq test"},
			Tokenizer: CQTokenizer{Kind: TokenizerSentencePiece, Data: randBytes(1001)},
		},
		specs: []CQTensorSpec{
			{Name: "embed", Format: kernels.FormatF32, Shape: []int{3, 5}},
			{Name: "final_norm", Format: kernels.FormatF16, Shape: []int{7}},
			{Name: "layers.0.q", Format: q4, Shape: []int{5, 64}, Transform: &CQTransform{Tensor: "layers.0.attn_minv", Block: 32}},
			{Name: "layers.0.k", Format: q4, Shape: []int{3, 64}, Transform: &CQTransform{Tensor: "layers.0.k_minv", Block: 32}},
			{Name: "layers.0.k_minv", Format: kernels.FormatQ8, Shape: []int{64, 32}},
			{Name: "layers.0.attn_minv", Format: kernels.FormatF32, Shape: []int{2, 32, 32}},
			{Name: "layers.0.down", Format: q3, Shape: []int{3, 128}},
			{Name: "layers.0.up", Format: kernels.FormatQ8, Shape: []int{1, 32}},
			{Name: "layers.0.norm", Format: kernels.FormatBF16, Shape: []int{1, 1}},
		},
		data: map[string][]byte{},
	}
	for _, sp := range s.specs {
		n, err := cqTensorSize(sp.Format, sp.Shape)
		if err != nil {
			panic(err)
		}
		s.data[sp.Name] = randBytes(int(n))
	}
	return s
}

// write writes the sample to path, tensors in the given order of indices
// (spec order when nil).
func (s cqSample) write(t testing.TB, path string, order []int) {
	t.Helper()
	w, err := CreateCQ(path, s.hdr, s.specs)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if order == nil {
		order = make([]int, len(s.specs))
		for i := range order {
			order[i] = i
		}
	}
	for _, i := range order {
		if err := w.WriteTensor(s.specs[i].Name, s.data[s.specs[i].Name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// sampleFile writes the sample and returns the file's bytes.
func sampleFile(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.cq")
	newCQSample(1).write(t, path, nil)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// onlyFile fails unless dir holds exactly the named file (or nothing, for "").
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{}
	if name != "" {
		want = []string{name}
	}
	if !slices.Equal(names, want) {
		t.Fatalf("directory holds %q, want %q", names, want)
	}
}

func TestCQRoundTrip(t *testing.T) {
	s := newCQSample(1)
	dir := t.TempDir()
	path := filepath.Join(dir, "model.cq")
	s.write(t, path, []int{5, 0, 8, 7, 2, 1, 6, 4, 3}) // any order works
	onlyFile(t, dir, "model.cq")

	f, err := OpenCQ(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cfg, wantCfg bytes.Buffer
	json.Compact(&cfg, f.Header.Config)
	json.Compact(&wantCfg, s.hdr.Config)
	if cfg.String() != wantCfg.String() {
		t.Errorf("config %s, want %s", cfg.String(), wantCfg.String())
	}
	if f.Header.Quant != s.hdr.Quant {
		t.Errorf("quant %+v, want %+v", f.Header.Quant, s.hdr.Quant)
	}
	if len(f.Header.Metadata) != len(s.hdr.Metadata) || f.Header.Metadata["tool"] != "cafeq test" {
		t.Errorf("metadata %v, want %v", f.Header.Metadata, s.hdr.Metadata)
	}
	if f.Header.Tokenizer.Kind != s.hdr.Tokenizer.Kind || !bytes.Equal(f.Header.Tokenizer.Data, s.hdr.Tokenizer.Data) {
		t.Errorf("tokenizer %q (%d bytes) differs from what was written", f.Header.Tokenizer.Kind, len(f.Header.Tokenizer.Data))
	}
	list := f.Tensors()
	if len(list) != len(s.specs) {
		t.Fatalf("%d tensors, want %d", len(list), len(s.specs))
	}
	for i, sp := range s.specs {
		got, err := f.Tensor(sp.Name)
		if err != nil {
			t.Fatal(err)
		}
		if list[i].Name != sp.Name {
			t.Errorf("Tensors()[%d] is %q, want %q (file order is spec order)", i, list[i].Name, sp.Name)
		}
		if got.Format != sp.Format || !slices.Equal(got.Shape, sp.Shape) {
			t.Errorf("%s: %s %v, want %s %v", sp.Name, got.Format, got.Shape, sp.Format, sp.Shape)
		}
		if (got.Transform == nil) != (sp.Transform == nil) || got.Transform != nil && *got.Transform != *sp.Transform {
			t.Errorf("%s: transform %+v, want %+v", sp.Name, got.Transform, sp.Transform)
		}
		if !bytes.Equal(got.Data, s.data[sp.Name]) || got.Size != int64(len(got.Data)) {
			t.Errorf("%s: data differs", sp.Name)
		}
		if got.CRC32C != crc32.Checksum(s.data[sp.Name], castagnoli) {
			t.Errorf("%s: crc %08x", sp.Name, got.CRC32C)
		}
	}
	if _, err := f.Tensor("nope"); err == nil {
		t.Error("Tensor of a missing name succeeded")
	}
	if err := f.Verify(); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCQLayout checks the byte-level promises of docs/CQ-FILE.md: the
// prefix fields, 64-byte alignment and zero padding everywhere between
// sections.
func TestCQLayout(t *testing.T) {
	b := sampleFile(t)
	f, err := ParseCQ(b)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if string(b[:8]) != "\x89CAFEQ\r\n" || le.Uint32(b[8:]) != 1 || le.Uint64(b[24:]) != uint64(len(b)) {
		t.Fatalf("prefix % x", b[:32])
	}
	hlen := le.Uint64(b[16:])
	if !json.Valid(b[32 : 32+hlen]) {
		t.Fatal("header is not JSON")
	}
	if len(b)%64 != 0 {
		t.Errorf("file length %d is not a multiple of 64", len(b))
	}
	used := make([]bool, len(b))
	mark := func(start, n int64) {
		for i := start; i < start+n; i++ {
			if used[i] {
				t.Fatalf("byte %d used twice", i)
			}
			used[i] = true
		}
	}
	mark(0, 32+int64(hlen))
	dataStart := cqAlignUp(32 + int64(hlen))
	tok := f.Header.Tokenizer.Data
	if !bytes.Equal(b[dataStart:dataStart+int64(len(tok))], tok) {
		t.Errorf("tokenizer is not at the start of the data section (byte %d)", dataStart)
	}
	mark(dataStart, int64(len(tok)))
	for _, tn := range f.Tensors() {
		if tn.Offset%64 != 0 {
			t.Errorf("%s at offset %d, not 64-aligned", tn.Name, tn.Offset)
		}
		if !bytes.Equal(b[tn.Offset:tn.Offset+tn.Size], tn.Data) {
			t.Errorf("%s: Data is not the bytes at its offset", tn.Name)
		}
		mark(tn.Offset, tn.Size)
	}
	for i, u := range used {
		if !u && b[i] != 0 {
			t.Fatalf("padding byte %d is %#x, want 0", i, b[i])
		}
	}
}

func TestCQTruncated(t *testing.T) {
	b := sampleFile(t)
	f, err := ParseCQ(b)
	if err != nil {
		t.Fatal(err)
	}
	hlen := int(binary.LittleEndian.Uint64(b[16:]))
	cuts := []int{0, 1, 7, 8, 12, 16, 24, 31, 32, 33, 32 + hlen - 1, 32 + hlen, int(cqAlignUp(int64(32 + hlen))), len(b) - 1}
	for _, tn := range f.Tensors() {
		cuts = append(cuts, int(tn.Offset), int(tn.Offset)+1, int(tn.Offset+tn.Size)-1, int(tn.Offset+tn.Size))
	}
	rng := rand.New(rand.NewPCG(2, 2))
	for range 200 {
		cuts = append(cuts, rng.IntN(len(b)))
	}
	for _, n := range cuts {
		if n >= len(b) {
			continue
		}
		_, err := ParseCQ(b[:n])
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: got %v, want ErrTruncated", n, len(b), err)
		}
	}
	// Through the file system as well (mmap of short and empty files).
	dir := t.TempDir()
	for _, n := range []int{0, 5, 40, len(b) - 64} {
		p := filepath.Join(dir, "cut.cq")
		if err := os.WriteFile(p, b[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := OpenCQ(p)
		if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), p) {
			t.Errorf("OpenCQ of %d bytes: %v, want ErrTruncated naming the path", n, err)
		}
	}
}

func TestCQCorruption(t *testing.T) {
	b := sampleFile(t)
	f, err := ParseCQ(b)
	if err != nil {
		t.Fatal(err)
	}
	down, _ := f.Tensor("layers.0.down")
	hlen := int64(binary.LittleEndian.Uint64(b[16:]))
	tokStart := cqAlignUp(32 + hlen)

	t.Run("data byte", func(t *testing.T) {
		c := bytes.Clone(b)
		c[down.Offset+down.Size/2] ^= 0x10
		f, err := ParseCQ(c)
		if err != nil {
			t.Fatalf("open must not read tensor data, got %v", err)
		}
		err = f.Verify()
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), `"layers.0.down"`) || strings.Contains(err.Error(), `"embed"`) {
			t.Fatalf("Verify: %v, want ErrChecksum naming layers.0.down only", err)
		}
	})
	for _, tc := range []struct {
		name string
		at   int64
		want error
	}{
		{"header byte", 32 + hlen/2, ErrChecksum},
		{"header crc", 13, ErrChecksum},
		{"tokenizer byte", tokStart + 500, ErrChecksum},
		{"magic", 3, ErrBadMagic},
		{"version", 8, ErrVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := bytes.Clone(b)
			c[tc.at] ^= 0x04
			if _, err := ParseCQ(c); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("file length", func(t *testing.T) {
		for delta, want := range map[int64]error{64: ErrTruncated, -64: ErrMalformed} {
			c := bytes.Clone(b)
			binary.LittleEndian.PutUint64(c[24:], uint64(int64(len(c))+delta))
			if _, err := ParseCQ(c); !errors.Is(err, want) {
				t.Errorf("length field %+d: got %v, want %v", delta, err, want)
			}
		}
	})
	t.Run("trailing bytes", func(t *testing.T) {
		if _, err := ParseCQ(append(bytes.Clone(b), make([]byte, 64)...)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
	})
}

// craftCQ builds a file around a hand-written header, with a correct prefix
// and header checksum, so that directory checks the writer never trips can
// be tested. dataLen bytes of zeros follow the header's padding.
func craftCQ(header string, dataLen int64) []byte {
	headerEnd := int64(32 + len(header))
	fileLen := cqAlignUp(cqAlignUp(headerEnd) + dataLen)
	b := make([]byte, fileLen)
	copy(b, cqMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], CQVersion)
	le.PutUint32(b[12:], crc32.Checksum([]byte(header), castagnoli))
	le.PutUint64(b[16:], uint64(len(header)))
	le.PutUint64(b[24:], uint64(fileLen))
	copy(b[32:], header)
	return b
}

func TestCQMalformedDirectory(t *testing.T) {
	// f32 (2, 8) is 64 bytes.
	tensor := func(name string, offset, size int, extra string) string {
		return `{"name":"` + name + `","format":"f32","shape":[2,8],"offset":` + strconv.Itoa(offset) + `,"size":` + strconv.Itoa(size) + `,"crc32c":"00000000"` + extra + `}`
	}
	wrap := func(tensors ...string) string {
		return `{"config":{},"quantization":{"method":"none","bits":0,"group":0,"asym":false},"tensors":[` + strings.Join(tensors, ",") + `]}`
	}
	if _, err := ParseCQ(craftCQ(wrap(tensor("a", 0, 64, ""), tensor("b", 64, 64, "")), 128)); err != nil {
		t.Fatalf("the valid crafted file is rejected: %v", err)
	}
	for _, tc := range []struct{ name, header, msg string }{
		{"not json", `{"config":`, "header JSON"},
		{"config array", `{"config":[],"tensors":[]}`, "config is not a JSON object"},
		{"no config", `{"tensors":[]}`, "config is not a JSON object"},
		{"overlap", wrap(tensor("a", 0, 64, ""), tensor("b", 0, 64, "")), "overlaps"},
		{"misaligned", wrap(tensor("a", 0, 64, ""), tensor("b", 96, 64, "")), "not a multiple of 64"},
		{"size vs shape", wrap(tensor("a", 0, 60, "")), "takes 64 bytes"},
		{"duplicate", wrap(tensor("a", 0, 64, ""), tensor("a", 64, 64, "")), "appears twice"},
		{"no name", wrap(tensor("", 0, 64, "")), "has no name"},
		{"negative offset", wrap(tensor("a", -64, 64, "")), "out of range"},
		{"beyond end", wrap(tensor("a", 0, 64, ""), tensor("b", 1<<20, 64, "")), `tensor "b": ends beyond the end of the file`},
		{"bad format", strings.Replace(wrap(tensor("a", 0, 64, "")), `"f32"`, `"q2_g32"`, 1), "unknown type"},
		{"bad shape", strings.Replace(wrap(tensor("a", 0, 64, "")), `[2,8]`, `[2,0,8]`, 1), "dimension 0"},
		{"huge shape", strings.Replace(wrap(tensor("a", 0, 64, "")), `[2,8]`, `[268435456,268435456,268435456]`, 1), "too many elements"},
		{"huge size", strings.Replace(wrap(tensor("a", 0, 64, "")), `[2,8]`, `[268435456,268435456,64]`, 1), "too large"},
		{"huge dim", strings.Replace(wrap(tensor("a", 0, 64, "")), `[2,8]`, `[2,268435457]`, 1), "dimension 268435457 out of range"},
		{"bad crc", strings.Replace(wrap(tensor("a", 0, 64, "")), `"00000000"`, `"0000000g"`, 1), "header JSON"},
		{"crc width", strings.Replace(wrap(tensor("a", 0, 64, "")), `"00000000"`, `1`, 1), "header JSON"},
		{"missing transform", wrap(tensor("a", 0, 64, `,"transform":{"tensor":"m","block":4}`)), `no tensor "m"`},
		{"transform block", wrap(tensor("a", 0, 64, `,"transform":{"tensor":"a","block":3}`)), "does not divide"},
		{"transform shape", wrap(tensor("a", 0, 64, `,"transform":{"tensor":"b","block":4}`), tensor("b", 64, 64, "")), `"b" has shape [2 8], want rows of 4 and 8×4 values`},
		{"transform chain", strings.ReplaceAll(wrap(tensor("a", 0, 256, `,"transform":{"tensor":"b","block":8}`), tensor("b", 256, 256, `,"transform":{"tensor":"a","block":8}`)), "[2,8]", "[8,8]"), "untransformed"},
		{"tokenizer kind", `{"config":{},"tokenizer":{"kind":"","offset":0,"size":5,"crc32c":"00000000"},"tensors":[]}`, `kind "" is neither`},
		{"unknown tokenizer kind", `{"config":{},"tokenizer":{"kind":"tokenizer.bin","offset":0,"size":5,"crc32c":"00000000"},"tensors":[]}`, `kind "tokenizer.bin" is neither`},
		{"tokenizer size", `{"config":{},"tokenizer":{"kind":"tokenizer.model","offset":0,"size":0,"crc32c":"00000000"},"tensors":[]}`, "size 0"},
		{"uppercase crc", strings.Replace(wrap(tensor("a", 0, 64, "")), `"00000000"`, `"0000000A"`, 1), "lowercase"},
		{"signed crc", strings.Replace(wrap(tensor("a", 0, 64, "")), `"00000000"`, `"+0000000"`, 1), "lowercase"},
		{"not utf-8", strings.Replace(wrap(tensor("a", 0, 64, "")), `"method":"none"`, "\"method\":\"n\xffne\"", 1), "UTF-8"},
		{"negative bits", `{"config":{},"quantization":{"bits":-1},"tensors":[]}`, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCQ(craftCQ(tc.header, 512))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrMalformed mentioning %q", err, tc.msg)
			}
		})
	}
	t.Run("wrong length", func(t *testing.T) {
		// Valid directory, but the file has a spare 64-byte block at the end.
		_, err := ParseCQ(craftCQ(wrap(tensor("a", 0, 64, "")), 128))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "should be") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("header length", func(t *testing.T) {
		b := craftCQ(wrap(), 0)
		binary.LittleEndian.PutUint64(b[16:], 1<<63)
		if _, err := ParseCQ(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestCQForeignFiles(t *testing.T) {
	// A tiny safetensors file: u64 header length, JSON header, data.
	st := []byte(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`)
	safetensors := binary.LittleEndian.AppendUint64(nil, uint64(len(st)))
	safetensors = append(append(safetensors, st...), make([]byte, 8)...)
	gguf := append([]byte("GGUF\x03\x00\x00\x00"), make([]byte, 32)...)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"safetensors": safetensors, "gguf": gguf, "text": []byte("hello"), "json": []byte(`{"model_type":"gemma2"}`)} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := OpenCQ(p)
		if !errors.Is(err, ErrBadMagic) || !strings.Contains(err.Error(), "not a cafeq model file") {
			t.Errorf("%s: got %v, want ErrBadMagic", name, err)
		}
	}
	if _, err := OpenCQ(filepath.Join(dir, "missing.cq")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCQWriterFailures(t *testing.T) {
	s := newCQSample(3)
	for _, tc := range []struct {
		name  string
		write func(w *CQWriter) error
	}{
		{"missing tensor", func(w *CQWriter) error {
			for _, sp := range s.specs[1:] {
				if err := w.WriteTensor(sp.Name, s.data[sp.Name]); err != nil {
					return err
				}
			}
			return w.Close()
		}},
		{"wrong size", func(w *CQWriter) error { return w.WriteTensor("embed", make([]byte, 59)) }},
		{"written twice", func(w *CQWriter) error {
			w.WriteTensor("embed", s.data["embed"])
			return w.WriteTensor("embed", s.data["embed"])
		}},
		{"unknown name", func(w *CQWriter) error { return w.WriteTensor("layers.9.q", nil) }},
		{"abort", func(w *CQWriter) error {
			w.WriteTensor("embed", s.data["embed"])
			w.Abort()
			return w.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "model.cq")
			if err := os.WriteFile(path, []byte("previous model"), 0o644); err != nil {
				t.Fatal(err)
			}
			w, err := CreateCQ(path, s.hdr, s.specs)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.write(w); err == nil {
				t.Fatal("the faulty write succeeded")
			}
			// The writer stays failed, and nothing but the old file remains.
			if err := w.Close(); err == nil {
				t.Error("Close after a failure succeeded")
			}
			onlyFile(t, dir, "model.cq")
			if old, _ := os.ReadFile(path); string(old) != "previous model" {
				t.Errorf("the previous file was changed to %d bytes", len(old))
			}
		})
	}

	badSpecs := map[string][]CQTensorSpec{
		"duplicate names": {s.specs[0], s.specs[0]},
		"empty shape":     {{Name: "a", Format: kernels.FormatF32}},
		"group vs cols":   {{Name: "a", Format: kernels.Format{Type: kernels.Q4, Group: 64}, Shape: []int{2, 96}}},
		"no format":       {{Name: "a", Shape: []int{2, 96}}},
		"bad transform":   {{Name: "a", Format: kernels.FormatF32, Shape: []int{2, 96}, Transform: &CQTransform{Tensor: "m", Block: 32}}},
	}
	for name, specs := range badSpecs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := CreateCQ(filepath.Join(dir, "m.cq"), s.hdr, specs); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			onlyFile(t, dir, "")
		})
	}
	t.Run("config not an object", func(t *testing.T) {
		dir := t.TempDir()
		for _, cfg := range []string{"", "[1]", `{"a":`} {
			hdr := s.hdr
			hdr.Config = json.RawMessage(cfg)
			if _, err := CreateCQ(filepath.Join(dir, "m.cq"), hdr, s.specs); err == nil {
				t.Errorf("config %q was accepted", cfg)
			}
		}
		onlyFile(t, dir, "")
	})
	t.Run("destination is a directory", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "model.cq")
		if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		w, err := CreateCQ(path, s.hdr, s.specs)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range s.specs {
			if err := w.WriteTensor(sp.Name, s.data[sp.Name]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err == nil {
			t.Fatal("Close renamed over a non-empty directory")
		}
		onlyFile(t, dir, "model.cq")
		if err := w.WriteTensor("embed", s.data["embed"]); err == nil {
			t.Error("WriteTensor after a failed Close succeeded")
		}
	})
	t.Run("write after close", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "m.cq")
		s.write(t, path, nil)
		w, err := CreateCQ(path, CQHeader{Config: json.RawMessage(`{}`)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteTensor("embed", nil); err == nil || w.Close() == nil {
			t.Error("the writer accepted calls after Close")
		}
		w.Abort() // a no-op after Close: the file stays
		if _, err := OpenCQ(path); err != nil {
			t.Error(err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		if _, err := CreateCQ(filepath.Join(t.TempDir(), "no", "m.cq"), s.hdr, s.specs); err == nil {
			t.Fatal("created a file in a missing directory")
		}
	})
}

func TestCQEmpty(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "e.cq")
	w, err := CreateCQ(path, CQHeader{Config: json.RawMessage(`{}`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := OpenCQ(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Tensors()) != 0 || f.Header.Tokenizer.Data != nil || f.Verify() != nil {
		t.Errorf("empty file reads back as %+v", f)
	}
}

func TestCQConcurrent(t *testing.T) {
	s := newCQSample(4)
	path := filepath.Join(t.TempDir(), "m.cq")
	// Writers may be fed from several goroutines.
	w, err := CreateCQ(path, s.hdr, s.specs)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, sp := range s.specs {
		wg.Go(func() {
			if err := w.WriteTensor(sp.Name, s.data[sp.Name]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	shared, err := OpenCQ(path)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	for range 8 {
		wg.Go(func() {
			own, err := OpenCQ(path)
			if err != nil {
				t.Error(err)
				return
			}
			defer own.Close()
			for _, f := range []*CQFile{shared, own} {
				if err := f.Verify(); err != nil {
					t.Error(err)
				}
				for _, sp := range s.specs {
					tn, err := f.Tensor(sp.Name)
					if err != nil || !bytes.Equal(tn.Data, s.data[sp.Name]) {
						t.Errorf("%s: %v", sp.Name, err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// benchCQ makes specs for n q4_g64 tensors of 1024×4096 (2.1 MiB each) and
// their shared data.
func benchCQ(n int) (specs []CQTensorSpec, data []byte) {
	q4 := kernels.Format{Type: kernels.Q4, Group: 64}
	for i := range n {
		specs = append(specs, CQTensorSpec{Name: LayerName(i, FFNUp), Format: q4, Shape: []int{1024, 4096}})
	}
	size, _ := cqTensorSize(q4, specs[0].Shape)
	data = make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return specs, data
}

func writeBenchCQ(b *testing.B, path string, specs []CQTensorSpec, data []byte) {
	w, err := CreateCQ(path, CQHeader{Config: json.RawMessage(`{}`)}, specs)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range specs {
		if err := w.WriteTensor(s.Name, data); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCQ: write (fsync included), open (structure and header checks
// only, so independent of the data size) and Verify (CRC-32C of everything).
func BenchmarkCQ(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.cq")
	specs, data := benchCQ(32)
	total := int64(len(specs) * len(data))
	b.Run("Write", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			writeBenchCQ(b, path, specs, data)
		}
	})
	writeBenchCQ(b, path, specs, data)
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			f, err := OpenCQ(path)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("Verify", func(b *testing.B) {
		f, err := OpenCQ(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(total)
		for b.Loop() {
			if err := f.Verify(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCQGemma2Tiny packs the tiny golden checkpoint (matrices as q4_g32 by
// round-to-nearest, the rest f32) with its tokenizer, and checks that the
// config decodes to the checkpoint's, and that the tokenizer and every tensor
// come back byte for byte (f32 values exactly).
func TestCQGemma2Tiny(t *testing.T) {
	const dir = "../testdata/gemma2-tiny"
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok, err := os.ReadFile(filepath.Join(dir, "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	cfgJSON, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	q4 := kernels.Format{Type: kernels.Q4, Group: 32}
	var specs []CQTensorSpec
	for _, name := range ck.Names() {
		tn, _ := ck.Tensor(name)
		f := kernels.FormatF32
		if len(tn.Shape) == 2 && tn.Shape[1]%32 == 0 && name != NameEmbed {
			f = q4
		}
		specs = append(specs, CQTensorSpec{Name: name, Format: f, Shape: tn.Shape})
	}
	path := filepath.Join(t.TempDir(), "tiny.cq")
	w, err := CreateCQ(path, CQHeader{
		Config:    cfgJSON,
		Quant:     CQQuant{Method: "rtn", Bits: 4, Group: 32},
		Tokenizer: CQTokenizer{Kind: TokenizerSentencePiece, Data: tok},
	}, specs)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	want := map[string][]float32{} // f32 tensors
	wantPacked := map[string][]byte{}
	for _, sp := range specs {
		tn, _ := ck.Tensor(sp.Name)
		vals, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if sp.Format == kernels.FormatF32 {
			want[sp.Name] = vals
		}
		size, _ := cqTensorSize(sp.Format, sp.Shape)
		packed := make([]byte, size)
		cols := sp.Shape[len(sp.Shape)-1]
		rowBytes := sp.Format.RowBytes(cols)
		for r := range len(vals) / cols {
			dst, src := packed[r*rowBytes:(r+1)*rowBytes], vals[r*cols:(r+1)*cols]
			if sp.Format == q4 {
				err = kernels.QuantizeRowRTN(q4, dst, src)
			} else {
				for i, v := range src {
					binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		wantPacked[sp.Name] = packed
		if err := w.WriteTensor(sp.Name, packed); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	f, err := OpenCQ(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Verify(); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(f.Header.Config)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, ck.Config) {
		t.Errorf("config %+v, want %+v", cfg, ck.Config)
	}
	if !bytes.Equal(f.Header.Tokenizer.Data, tok) {
		t.Error("tokenizer bytes differ")
	}
	for _, sp := range specs {
		tn, err := f.Tensor(sp.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tn.Data, wantPacked[sp.Name]) {
			t.Fatalf("%s: stored bytes differ", sp.Name)
		}
		for i, v := range want[sp.Name] {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(tn.Data[4*i:])); got != v {
				t.Fatalf("%s[%d] = %g, want %g", sp.Name, i, got, v)
			}
		}
	}
	if n := len(want); n == 0 || n == len(specs) {
		t.Errorf("%d of %d tensors stored as f32; the test wants both f32 and q4", n, len(specs))
	}
}

// The writer copies the header: a caller changing its values after CreateCQ
// changes nothing in the file (and cannot break the reserved header length).
func TestCQWriterCopiesHeader(t *testing.T) {
	s := newCQSample(5)
	s.hdr.Metadata = map[string]string{"k": "v"}
	path := filepath.Join(t.TempDir(), "m.cq")
	w, err := CreateCQ(path, s.hdr, s.specs)
	if err != nil {
		t.Fatal(err)
	}
	s.hdr.Metadata["k"] = "a much longer value than before"
	s.hdr.Config[2] = 'X'
	s.specs[2].Transform.Tensor = "elsewhere"
	for _, sp := range s.specs {
		if err := w.WriteTensor(sp.Name, s.data[sp.Name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := OpenCQ(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q, _ := f.Tensor(s.specs[2].Name)
	if f.Header.Metadata["k"] != "v" || !strings.Contains(string(f.Header.Config), "model_type") || q.Transform.Tensor != "layers.0.attn_minv" {
		t.Errorf("the file took changes made after CreateCQ: %v %s %+v", f.Header.Metadata, f.Header.Config, q.Transform)
	}
}

// Superblock formats (q4_k, ...) are stored by name like every other format
// and come back identical.
func TestCQSuperblockFormats(t *testing.T) {
	s := newCQSample(2)
	s.specs, s.data = nil, map[string][]byte{}
	for i, f := range kernels.SuperFormats() {
		name := fmt.Sprintf("layers.%d.down", i)
		s.specs = append(s.specs, CQTensorSpec{Name: name, Format: f, Shape: []int{3, 512}})
		s.data[name] = make([]byte, 3*f.RowBytes(512))
		for j := range s.data[name] {
			s.data[name][j] = byte(j * 7)
		}
	}
	path := filepath.Join(t.TempDir(), "k.cq")
	s.write(t, path, nil)
	f, err := OpenCQ(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, sp := range s.specs {
		got, err := f.Tensor(sp.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Format != sp.Format || !bytes.Equal(got.Data, s.data[sp.Name]) {
			t.Errorf("%s: %s (%d bytes), want %s", sp.Name, got.Format, len(got.Data), sp.Format)
		}
	}
}
