package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/model/tokenizer"
)

// writeRTNCQ writes the tiny test model as a .cq file: matrices in q4_g32
// (tiled on AVX2, so both load paths are covered), norms in f32.
func writeRTNCQ(t *testing.T, dir string) string {
	t.Helper()
	ck, err := model.OpenCheckpoint("../testdata/gemma2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok, err := tokenizer.Load("../testdata/gemma2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	q4 := kernels.Format{Type: kernels.Q4, Group: 32}
	var specs []model.CQTensorSpec
	for _, name := range ck.Names() {
		tn, _ := ck.Tensor(name)
		f := kernels.FormatF32
		if len(tn.Shape) == 2 {
			f = q4
		}
		specs = append(specs, model.CQTensorSpec{Name: name, Format: f, Shape: tn.Shape})
	}
	cfgJSON, _ := ck.Config.HFJSON()
	kind, data := tok.Source()
	path := filepath.Join(dir, "tiny.cq")
	w, err := model.CreateCQ(path, model.CQHeader{Config: cfgJSON, Quant: model.CQQuant{Method: "rtn", Bits: 4, Group: 32},
		Tokenizer: model.CQTokenizer{Kind: map[string]string{tokenizer.KindSentencePiece: model.TokenizerSentencePiece, tokenizer.KindHuggingFace: model.TokenizerHFJSON}[kind], Data: data}}, specs)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for _, sp := range specs {
		tn, _ := ck.Tensor(sp.Name)
		vals, _ := tn.Float32s()
		if sp.Format == kernels.FormatF32 {
			if err := w.WriteTensor(sp.Name, f32Bytes(vals)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		rb := q4.RowBytes(tn.Shape[1])
		out := make([]byte, tn.Shape[0]*rb)
		for r := range tn.Shape[0] {
			if err := kernels.QuantizeRowRTN(q4, out[r*rb:(r+1)*rb], vals[r*tn.Shape[1]:(r+1)*tn.Shape[1]]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WriteTensor(sp.Name, out); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// greedy generates n tokens from a fixed prompt.
func greedy(t *testing.T, e *Engine, n int) []int {
	t.Helper()
	s, err := e.NewSession(64)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	if _, err := s.Generate(context.Background(), []int{2, 100, 200, 300}, GenerateOptions{MaxTokens: n}, func(id int) bool {
		out = append(out, id)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLoadVerifiesChecksums: a single flipped bit in a matrix, a norm or the
// embedding used to run silently (the review changed the output of 119 of
// 149 flips with exit 0). Load checks every tensor by default; NoVerify
// skips the check.
func TestLoadVerifiesChecksums(t *testing.T) {
	path := writeRTNCQ(t, t.TempDir())
	clean, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := model.ParseCQ(clean)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{model.NameEmbed, model.NameFinalNorm, model.LayerName(1, model.AttnQ), model.LayerName(2, model.FFNNorm)} {
		tn, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		bad := slices.Clone(clean)
		bad[tn.Offset+tn.Size/2] ^= 1 << 6
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = Load(path, Options{Threads: 1})
		if !errors.Is(err, model.ErrChecksum) {
			t.Errorf("%s: one flipped bit: Load gave %v, want ErrChecksum", name, err)
		}
		e, err := Load(path, Options{Threads: 1, NoVerify: true})
		if err != nil {
			t.Errorf("%s: NoVerify: %v", name, err)
		} else {
			e.Close()
		}
	}
}

// TestLoadedFileChangedInPlace: an engine serving a .cq file (or a
// checkpoint) must not depend on the file after loading. Overwriting it in
// place used to change or empty the replies, and truncating it killed the
// process with SIGBUS in RMSNorm.
func TestLoadedFileChangedInPlace(t *testing.T) {
	t.Run("cq", func(t *testing.T) {
		path := writeRTNCQ(t, t.TempDir())
		e, err := Load(path, Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		want := greedy(t, e, 6)
		size, _ := os.Stat(path)
		junk := make([]byte, size.Size())
		for i := range junk {
			junk[i] = byte(i * 7)
		}
		overwriteInPlace(t, path, junk)
		if got := greedy(t, e, 6); !slices.Equal(got, want) {
			t.Fatalf("after overwriting the file: %v, before %v", got, want)
		}
		overwriteInPlace(t, path, nil) // truncate -s 0
		if got := greedy(t, e, 6); !slices.Equal(got, want) {
			t.Fatalf("after truncating the file: %v, before %v", got, want)
		}
	})
	t.Run("checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		for _, name := range []string{"config.json", "model.safetensors", "tokenizer.model", "tokenizer.json"} {
			if data, err := os.ReadFile(filepath.Join("../testdata/gemma2-tiny", name)); err == nil {
				os.WriteFile(filepath.Join(dir, name), data, 0o644)
			}
		}
		e, err := Load(dir, Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		want := greedy(t, e, 6)
		overwriteInPlace(t, filepath.Join(dir, "model.safetensors"), nil)
		if got := greedy(t, e, 6); !slices.Equal(got, want) {
			t.Fatalf("after truncating the weights: %v, before %v", got, want)
		}
	})
}

// overwriteInPlace truncates path and writes data into the same inode, as
// `cp other path` and `truncate -s 0 path` do (unlike mv, which replaces it).
func overwriteInPlace(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLoad times Load with and without the tensor checksums, the two
// interleaved per iteration. CAFEQ_BENCH_MODEL picks the model (e.g. a .cq
// file of the 2B shape); the default is the tiny test checkpoint.
func BenchmarkLoad(b *testing.B) {
	path := "../testdata/gemma2-tiny"
	if p := os.Getenv("CAFEQ_BENCH_MODEL"); p != "" {
		path = p
	}
	for _, mode := range []struct {
		name     string
		noVerify bool
	}{{"verify", false}, {"no-verify", true}} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				e, err := Load(path, Options{NoVerify: mode.noVerify})
				if err != nil {
					b.Fatal(err)
				}
				e.Close()
			}
		})
	}
}
