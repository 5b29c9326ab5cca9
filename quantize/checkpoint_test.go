package quantize

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/model/tokenizer"
)

// copyTiny copies the tiny checkpoint into a temporary directory, with one
// value of tensor name (bf16, as stored) replaced when bits != 0.
func copyTiny(t *testing.T, name string, bits uint16) string {
	t.Helper()
	dir := t.TempDir()
	src := "../testdata/gemma2-tiny"
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.model"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Skipf("fixture missing: %v", err)
		}
		if f == "model.safetensors" && bits != 0 {
			ts, err := model.ParseSafetensors(data)
			if err != nil {
				t.Fatal(err)
			}
			tn, ok := ts[model.HFName(name)]
			if !ok || tn.DType != model.BF16 {
				t.Fatalf("tensor %q: %v %s", name, ok, tn.DType)
			}
			off := uintptr(unsafe.Pointer(&tn.Data[0])) - uintptr(unsafe.Pointer(&data[0]))
			binary.LittleEndian.PutUint16(data[off+2:], bits) // the second value
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// quantizeDir runs an RTN quantization of dir into a fresh directory and
// checks that a failure leaves nothing behind there.
func quantizeDir(t *testing.T, dir string, edit func(*model.Checkpoint)) error {
	t.Helper()
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if edit != nil {
		edit(ck)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	_, err = QuantizeCheckpoint(ck, tok, filepath.Join(outDir, "m.cq"), CheckpointOptions{Options: Options{Method: MethodRTN, Grid: Grid{Bits: 4, Group: 32}}})
	if err != nil {
		if left, _ := os.ReadDir(outDir); len(left) != 0 {
			t.Errorf("a failed quantization left %v", left)
		}
	}
	return err
}

// TestQuantizeRefusesNonFiniteNorms: NaN or Inf in a norm vector was
// accepted (it is refused in matrices) and gave a file whose logits were all
// NaN.
func TestQuantizeRefusesNonFiniteNorms(t *testing.T) {
	for _, c := range []struct {
		tensor string
		bits   uint16
	}{
		{model.LayerName(1, model.PostAttnNorm), 0x7fc0}, // NaN
		{model.LayerName(0, model.AttnNorm), 0x7f80},     // +Inf
		{model.NameFinalNorm, 0xff80},                    // -Inf
	} {
		err := quantizeDir(t, copyTiny(t, c.tensor, c.bits), nil)
		if err == nil || !strings.Contains(err.Error(), c.tensor) {
			t.Errorf("%s = %#04x: got %v, want an error naming the tensor", c.tensor, c.bits, err)
		}
	}
	if err := quantizeDir(t, copyTiny(t, "", 0), nil); err != nil {
		t.Fatalf("the clean checkpoint: %v", err)
	}
}

// TestQuantizeRefusesNonFiniteWeights: a NaN in the embedding or in a
// layer's matrix made the bit budget's greedy walk loop forever (a NaN loss
// passed for a gain). Both are refused with the tensor's name before any
// quantization work, also when the output projection is quantized last
// (input covariances, one grid for all).
func TestQuantizeRefusesNonFiniteWeights(t *testing.T) {
	for _, tensor := range []string{model.NameEmbed, model.LayerName(1, model.FFNUp)} {
		t.Run(tensor, func(t *testing.T) { refusesNonFinite(t, tensor) })
	}
}

func refusesNonFinite(t *testing.T, tensor string) {
	dir := copyTiny(t, tensor, 0x7fc0)
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cafeq := Options{Method: MethodCafeQ, Grid: Grid{Bits: 4, Group: 32}, Block: 256, NoBlock: true, Steps: 2}
	opts := map[string]CheckpointOptions{"budget": {Options: cafeq, BPW: 4.5, InputCov: true}}
	if tensor == model.NameEmbed {
		opts["one grid, input covariances"] = CheckpointOptions{Options: cafeq, InputCov: true}
	}
	for name, opt := range opts {
		var progressed bool
		opt.Progress = func(done, _ int, what string) { progressed = progressed || !strings.HasPrefix(what, "bit budget") }
		outDir := t.TempDir()
		_, err := QuantizeCheckpoint(ck, tok, filepath.Join(outDir, "m.cq"), opt)
		if err == nil || !strings.Contains(err.Error(), strconv.Quote(tensor)) {
			t.Errorf("%s: got %v, want an error naming %q", name, err, tensor)
		}
		if progressed {
			t.Errorf("%s: the error came after quantization work", name)
		}
		if left, _ := os.ReadDir(outDir); len(left) != 0 {
			t.Errorf("%s: a failed quantization left %v", name, left)
		}
	}
}

// TestQuantizeRefusesTokenizerBeyondVocab: a tokenizer with more pieces than
// vocab_size gave a file no command could load; it is refused before any work.
func TestQuantizeRefusesTokenizerBeyondVocab(t *testing.T) {
	dir := copyTiny(t, "", 0)
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = quantizeDir(t, dir, func(ck *model.Checkpoint) { ck.Config.VocabSize = tok.VocabSize() - 1 })
	if err == nil || !strings.Contains(err.Error(), "vocab_size") {
		t.Fatalf("got %v, want a tokenizer/vocab_size error", err)
	}
}

// TestProgressWeightsWork: progress counts estimated work (weights times
// passes), not tensor groups: with RTN each step's share is its share of
// the weights; with CafeQ a learned group counts 1+Steps passes.
func TestProgressWeightsWork(t *testing.T) {
	const dir = "../testdata/gemma2-tiny"
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := ck.Config
	d, qd, kvd := c.HiddenSize, c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	embed := c.VocabSize * d
	linear := c.NumHiddenLayers * (d*(qd+2*kvd) + qd*d + 3*d*c.IntermediateSize)
	for _, method := range []Method{MethodRTN, MethodCafeQ} {
		type call struct{ done, total int }
		var calls []call
		opt := CheckpointOptions{Options: Options{Method: method, Grid: Grid{Bits: 4, Group: 32}, Block: 64, Steps: 2},
			Progress: func(done, total int, _ string) { calls = append(calls, call{done, total}) }}
		if _, err := QuantizeCheckpoint(ck, tok, filepath.Join(t.TempDir(), "m.cq"), opt); err != nil {
			t.Fatal(err)
		}
		last := calls[len(calls)-1]
		if last.done != last.total || len(calls) != 2+4*c.NumHiddenLayers {
			t.Fatalf("%s: %d calls, last %+v", method, len(calls), last)
		}
		if calls[0].done != embed {
			t.Errorf("%s: the embedding counts %d, want its %d weights", method, calls[0].done, embed)
		}
		attnIn := calls[1].done - calls[0].done
		switch method {
		case MethodRTN:
			if last.total != embed+linear+d || attnIn != d*(qd+2*kvd) {
				t.Errorf("rtn: total %d, want %d; q/k/v %d, want %d", last.total, embed+linear+d, attnIn, d*(qd+2*kvd))
			}
		case MethodCafeQ:
			if attnIn != 3*d*(qd+2*kvd) {
				t.Errorf("cafeq with 2 steps: q/k/v count %d, want 3 passes of %d weights", attnIn, d*(qd+2*kvd))
			}
		}
	}
}
