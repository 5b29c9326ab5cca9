package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/runtime"
)

// loadEngine opens a model for inference, reporting the time taken.
func loadEngine(path string, opts runtime.Options, stderr io.Writer) (*runtime.Engine, error) {
	start := time.Now()
	e, err := runtime.Load(path, opts)
	if err != nil {
		return nil, err
	}
	if d := time.Since(start); d > time.Second {
		fmt.Fprintf(stderr, "[loaded %s in %.1fs]\n", path, d.Seconds())
	}
	return e, nil
}

// openModel resolves m (downloading and quantizing an hf: name first) and
// loads it, returning the engine and how long the load alone took.
func openModel(m string, p pullFlags, opts runtime.Options, stderr io.Writer) (*runtime.Engine, time.Duration, error) {
	path, err := resolveModel(m, p, stderr)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	e, err := loadEngine(path, opts, stderr)
	if err != nil {
		return nil, 0, err
	}
	return e, time.Since(start), nil
}

func cmdTokenize(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tokenize", "-m MODEL [-bos] TEXT", stderr)
	modelPath := fs.String("m", "", "model directory (only its tokenizer is read) or .cq file (required)")
	bos := fs.Bool("bos", false, "prepend the BOS id")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelPath == "" {
		return usagef("-m MODEL is required")
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one TEXT argument, got %d", fs.NArg())
	}
	tok, err := model.LoadTokenizer(*modelPath)
	if err != nil {
		return err
	}
	ids := tok.Encode(fs.Arg(0))
	if *bos {
		ids = append([]int{tok.BOS()}, ids...)
	}
	if ids == nil {
		ids = []int{}
	}
	data, _ := json.Marshal(ids)
	fmt.Fprintln(stdout, string(data))
	return nil
}

// parseIDs reads "2,651,7" into ids.
func parseIDs(s string) ([]int, error) {
	var ids []int
	for _, f := range strings.Split(s, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, usagef("-ids: %q is not a token id", f)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func cmdLogits(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("logits", "-m MODEL (-ids 2,651,... | -p PROMPT) -o OUT.npy", stderr)
	modelPath := fs.String("m", "", "model (required)")
	idsFlag := fs.String("ids", "", "comma-separated token ids")
	prompt := fs.String("p", "", "prompt text (BOS is added)")
	outPath := fs.String("o", "", "output .npy file (required)")
	threads := fs.Int("threads", 0, "worker threads; 0: all cores")
	kv := registerLoadFlags(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *modelPath == "":
		return usagef("-m MODEL is required")
	case *outPath == "":
		return usagef("-o OUT.npy is required")
	case (*idsFlag == "") == (*prompt == ""):
		return usagef("give exactly one of -ids and -p")
	}
	var ids []int
	if *idsFlag != "" {
		var err error
		if ids, err = parseIDs(*idsFlag); err != nil {
			return err
		}
	}
	if err := model.CheckOutputFile(*outPath, *modelPath); err != nil {
		return err
	}
	e, err := loadEngine(*modelPath, engineOptions(*threads, kv), stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	if *prompt != "" {
		ids = append([]int{e.Tokenizer.BOS()}, e.Tokenizer.Encode(*prompt)...)
	}
	for _, id := range ids {
		if id < 0 || id >= e.Config.VocabSize {
			return fmt.Errorf("token id %d outside the vocabulary of %d", id, e.Config.VocabSize)
		}
	}
	s, err := e.NewSession(len(ids))
	if err != nil {
		return err
	}
	w, err := model.CreateNPY(*outPath, len(ids), e.Config.VocabSize)
	if err != nil {
		return err
	}
	var werr error
	if _, err := s.Forward(ids, func(_ int, l []float32) {
		if werr == nil {
			werr = w.Write(l)
		}
	}); err != nil {
		w.Abort()
		return err
	}
	if werr != nil {
		w.Abort()
		return werr
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s: (%d, %d) float32\n", *outPath, len(ids), e.Config.VocabSize)
	return nil
}

func cmdInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", "[-verify] [-tensors] [-json] (-m MODEL | MODEL)", stderr)
	modelFlag := fs.String("m", "", "model: a Hugging Face checkpoint directory or a .cq file (or give it last)")
	verify := fs.Bool("verify", false, "check every tensor's checksum (.cq files)")
	tensors := fs.Bool("tensors", false, "list every tensor with its format, size and transform (.cq files)")
	asJSON := fs.Bool("json", false, "print everything, every tensor included, as one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Like every other command, inspect takes -m; the model may also come
	// last, as it always could.
	modelPath := *modelFlag
	switch {
	case modelPath == "" && fs.NArg() == 1:
		modelPath = fs.Arg(0)
	case modelPath == "" || fs.NArg() != 0:
		return usagef("give one model: -m MODEL or MODEL")
	}
	info, err := model.Describe(modelPath, *verify)
	if err != nil {
		return err
	}
	if *asJSON {
		data, err := json.Marshal(inspectJSON{Path: modelPath, Info: info, Verified: *verify})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(data))
		return nil
	}
	c := info.Config
	fmt.Fprintf(stdout, "model:        %s (%s)\n", modelPath, info.Kind)
	fmt.Fprintf(stdout, "architecture: Gemma 2, %d layers, d_model %d, ffn %d\n", c.NumHiddenLayers, c.HiddenSize, c.IntermediateSize)
	fmt.Fprintf(stdout, "attention:    %d heads, %d kv heads, head_dim %d, query scale %g^-1/2, sliding window %d (even layers)\n",
		c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.QueryPreAttnScalar, c.SlidingWindow)
	fmt.Fprintf(stdout, "soft-caps:    attention %g, final %g\n", c.AttnLogitSoftcapping, c.FinalLogitSoftcapping)
	fmt.Fprintf(stdout, "vocabulary:   %d (tied embeddings: %v), rope theta %g, max positions %d\n",
		c.VocabSize, c.TieWordEmbeddings, c.RopeTheta, c.MaxPositionEmbeddings)
	fmt.Fprintf(stdout, "parameters:   %d (%.2fM)\n", c.ParamCount(), float64(c.ParamCount())/1e6)
	sz := info.Size
	fmt.Fprintf(stdout, "size:         %d bytes (%.1f MiB), %.2f bits per parameter\n", sz.FileBytes, float64(sz.FileBytes)/(1<<20), sz.FileBPW)
	fmt.Fprintf(stdout, "linear:       %.3f bits per weight, everything counted (%d weights; %d bytes of weights, scales and mins, %d of transforms)\n",
		sz.LinearBPW, sz.LinearWeights, sz.LinearBytes, sz.TransformBytes)
	fmt.Fprintf(stdout, "embedding:    %d bytes; norms and other: %d bytes\n", sz.EmbedBytes, sz.OtherBytes)
	if info.Quantization != "" {
		fmt.Fprintf(stdout, "quantization: %s\n", info.Quantization)
	}
	fmt.Fprintln(stdout, "tensors by format:")
	for _, f := range info.Formats {
		fmt.Fprintf(stdout, "  %-16s %4d tensors  %12d weights\n", f.Format, f.Tensors, f.Weights)
	}
	if *tensors {
		fmt.Fprintln(stdout, "tensors:")
		for _, t := range info.Tensors {
			tr := ""
			if t.Transform != "" {
				tr = fmt.Sprintf("  input through %s (block %d)", t.Transform, t.Block)
			}
			fmt.Fprintf(stdout, "  %-24s %-14s %-14s %10d bytes%s\n", t.Name, t.Format, fmt.Sprint(t.Shape), t.Bytes, tr)
		}
	}
	if *verify {
		fmt.Fprintln(stdout, "checksums:    all tensors verified")
	}
	return nil
}

// inspectJSON is what `cafeq inspect -json` prints.
type inspectJSON struct {
	Path string `json:"path"`
	model.Info
	Verified bool `json:"verified,omitempty"`
}

// engineOptions are the load options the -threads, -kv and -no-verify flags give.
func engineOptions(threads int, lf *loadFlags) runtime.Options {
	return runtime.Options{Threads: threads, KVF16: lf.kv.f16, NoVerify: lf.noVerify}
}

// loadFlags are the flags of every command that loads a model for inference.
type loadFlags struct {
	kv       kvCacheFlag
	noVerify bool
}

// kvCacheFlag is -kv, the KV cache's element type. The commands that
// generate default to f16, as llama.cpp does; perplexity and logits, which
// check quality against references, default to f32.
type kvCacheFlag struct{ f16 bool }

func registerLoadFlags(fs *flag.FlagSet, f16 bool) *loadFlags {
	lf := &loadFlags{kv: kvCacheFlag{f16: f16}}
	fs.Var(&lf.kv, "kv", "KV cache type: f16 (half the memory; keys and values rounded to f16) or f32")
	fs.BoolVar(&lf.noVerify, "no-verify", false, "skip the tensor checksums and use the model file in place (faster start; the file must then not change while in use)")
	return lf
}

func (k *kvCacheFlag) String() string {
	if k != nil && k.f16 {
		return "f16"
	}
	return "f32"
}

func (k *kvCacheFlag) Set(s string) error {
	switch s {
	case "f16", "f32":
		k.f16 = s == "f16"
		return nil
	}
	return fmt.Errorf("want f16 or f32")
}
