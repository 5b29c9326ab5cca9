package model

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/cafeq/cafeq/model/tokenizer"
)

// Info summarises a model on disk, for `cafeq inspect`.
type Info struct {
	Kind         string        `json:"kind"` // "huggingface" or "cafeq"
	Config       Config        `json:"config"`
	Bytes        int64         `json:"tensor_bytes"` // every tensor's bytes on disk
	Quantization string        `json:"quantization,omitempty"`
	Formats      []FormatCount `json:"formats"`
	Size         Size          `json:"size"`              // bits per linear weight, everything counted
	Tensors      []TensorSize  `json:"tensors,omitempty"` // .cq files: every tensor in file order
}

// FormatCount is how many tensors (and weights) are stored in one format.
type FormatCount struct {
	Format  string `json:"format"`
	Tensors int    `json:"tensors"`
	Weights int64  `json:"weights"`
}

// IsCQFile reports whether path is a file (not a checkpoint directory), which
// cafeq then reads as its own format.
func IsCQFile(path string) (bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("model: %w", err)
	}
	return !st.IsDir(), nil
}

// Describe reads a checkpoint directory or a .cq file; with verify, every
// tensor's checksum of a .cq file is checked.
func Describe(path string, verify bool) (Info, error) {
	isFile, err := IsCQFile(path)
	if err != nil {
		return Info{}, err
	}
	counts := map[string]*FormatCount{}
	add := func(format string, shape []int, bytes int64, info *Info) {
		c := counts[format]
		if c == nil {
			c = &FormatCount{Format: format}
			counts[format] = c
		}
		n := int64(1)
		for _, d := range shape {
			n *= int64(d)
		}
		c.Tensors++
		c.Weights += n
		info.Bytes += bytes
	}
	var info Info
	if isFile {
		f, err := OpenCQ(path)
		if err != nil {
			return Info{}, err
		}
		defer f.Close()
		if info.Config, err = ParseConfig(f.Header.Config); err != nil {
			return Info{}, err
		}
		if verify {
			if err := f.Verify(); err != nil {
				return Info{}, err
			}
		}
		q := f.Header.Quant
		info.Kind = "cafeq"
		info.Quantization = fmt.Sprintf("method %s, %d bits, group %d, asym %v", q.Method, q.Bits, q.Group, q.Asym)
		if q.BPW > 0 {
			info.Quantization = fmt.Sprintf("method %s, budget %g bits per linear weight (everything counted), a format per tensor", q.Method, q.BPW)
		}
		if q.Block > 0 {
			info.Quantization += fmt.Sprintf(", transform block %d", q.Block)
		}
		for _, t := range f.Tensors() {
			add(t.Format.String(), t.Shape, t.Size, &info)
		}
		st, err := os.Stat(path)
		if err != nil {
			return Info{}, fmt.Errorf("model: %w", err)
		}
		info.Size, info.Tensors = SizeOf(f, st.Size(), info.Config.ParamCount())
	} else {
		if verify {
			return Info{}, fmt.Errorf("model: -verify needs a .cq file; %s is a checkpoint directory", path)
		}
		ck, err := OpenCheckpoint(path)
		if err != nil {
			return Info{}, err
		}
		defer ck.Close()
		info.Kind, info.Config = "huggingface", ck.Config
		for _, name := range ck.Names() {
			t, _ := ck.Tensor(name)
			add(string(t.DType), t.Shape, int64(len(t.Data)), &info)
			switch {
			case isLinear(name):
				info.Size.LinearWeights += elements(t.Shape)
				info.Size.LinearBytes += int64(len(t.Data))
			case name == NameEmbed || name == NameOutput:
				info.Size.EmbedBytes += int64(len(t.Data))
			default:
				info.Size.OtherBytes += int64(len(t.Data))
			}
		}
		// The tensors' bytes: safetensors headers are not counted.
		info.Size.FileBytes = info.Bytes
		info.Size.finish(info.Config.ParamCount())
	}
	for _, c := range counts {
		info.Formats = append(info.Formats, *c)
	}
	sort.Slice(info.Formats, func(i, j int) bool { return info.Formats[i].Weights > info.Formats[j].Weights })
	return info, nil
}

// LoadTokenizer reads the tokenizer of a checkpoint directory, or the one
// stored in a .cq file, without loading weights.
func LoadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	isFile, err := IsCQFile(path)
	if err != nil {
		return nil, err
	}
	if !isFile {
		return tokenizer.Load(path)
	}
	f, err := OpenCQ(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return TokenizerFromCQ(f, filepath.Base(path))
}

// TokenizerFromCQ builds the tokenizer stored in an open .cq file.
func TokenizerFromCQ(f *CQFile, name string) (*tokenizer.Tokenizer, error) {
	t := f.Header.Tokenizer
	if len(t.Data) == 0 {
		return nil, fmt.Errorf("model: %s holds no tokenizer", name)
	}
	var kind string
	switch t.Kind {
	case TokenizerSentencePiece:
		kind = tokenizer.KindSentencePiece
	case TokenizerHFJSON:
		kind = tokenizer.KindHuggingFace
	default: // ParseCQ refuses other kinds; this keeps a hand-built CQFile honest
		return nil, fmt.Errorf("model: %s: unknown tokenizer kind %q", name, t.Kind)
	}
	// Cloned: the tokenizer keeps its source bytes, which must outlive the mapping.
	return tokenizer.FromBytes(kind, bytes.Clone(t.Data))
}
