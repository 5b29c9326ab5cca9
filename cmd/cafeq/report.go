package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/model/tokenizer"
	"github.com/cafeq/cafeq/quantize"
	"github.com/cafeq/cafeq/runtime"
	"github.com/cafeq/cafeq/runtime/eval"
)

func comparisonLabel(o quantize.Options) string {
	if o.Method == quantize.MethodRTN {
		return string(o.Method)
	}
	return fmt.Sprintf("%s b%d", o.Method, o.Block)
}

// writeComparison quantizes the checkpoint again with the baselines (plain
// RTN, Hadamard at the same block) and CafeQ at extra blocks, optionally
// measures each file's KL divergence and top-1 agreement against the
// checkpoint on evalText, and writes the report into dir.
func writeComparison(dir string, ck *model.Checkpoint, tok *tokenizer.Tokenizer, ckPath, mainFile string, main quantize.Comparison,
	opt quantize.CheckpointOptions, extraBlocks []int, evalText string, evalCtx int, stderr io.Writer) ([]string, error) {
	tmp, err := os.MkdirTemp("", "cafeq-report-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var configs []quantize.Options
	for _, m := range []quantize.Method{quantize.MethodRTN, quantize.MethodHadamard} {
		o := opt.Options
		o.Method, o.Refine, o.Rounding = m, 0, false // the baselines stay plain
		configs = append(configs, o)
	}
	for _, b := range extraBlocks {
		o := opt.Options
		o.Method, o.Block = quantize.MethodCafeQ, b
		configs = append(configs, o)
	}
	comps := []quantize.Comparison{main}
	files := []string{mainFile}
	for _, o := range configs {
		label := comparisonLabel(o)
		if slices.ContainsFunc(comps, func(c quantize.Comparison) bool { return c.Label == label }) {
			continue
		}
		fmt.Fprintf(stderr, "report: quantizing with %s\n", label)
		path := filepath.Join(tmp, fmt.Sprintf("%d.cq", len(files)))
		co := opt
		co.Options = o
		co.Progress = nil
		rep, err := quantize.QuantizeCheckpoint(ck, tok, path, co)
		if err != nil {
			return nil, fmt.Errorf("report: %s: %w", label, err)
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		comps = append(comps, quantize.NewComparison(label, o, rep, st.Size()))
		files = append(files, path)
	}
	if evalText != "" {
		if err := evaluateComparisons(comps, files, ckPath, evalText, evalCtx, stderr); err != nil {
			return nil, err
		}
	}
	return quantize.WriteReport(dir, quantize.Report{Model: ckPath, Methods: comps})
}

// evaluateComparisons scores every quantized file against the checkpoint.
func evaluateComparisons(comps []quantize.Comparison, files []string, ckPath, textPath string, ctx int, stderr io.Writer) error {
	text, err := os.ReadFile(textPath)
	if err != nil {
		return err
	}
	// perplexity's defaults: all cores, f32 KV cache.
	opts := engineOptions(0, &loadFlags{})
	ref, err := runtime.Load(ckPath, opts)
	if err != nil {
		return err
	}
	defer ref.Close()
	engines := make([]*runtime.Engine, len(files))
	for i, f := range files {
		if engines[i], err = runtime.Load(f, opts); err != nil {
			return err
		}
		defer engines[i].Close()
	}
	tokens := ref.Tokenizer.Encode(string(text))
	if len(tokens) == 0 {
		return fmt.Errorf("%s holds no tokens", textPath)
	}
	res, err := eval.Compare(ref, engines, tokens, ctx, evalProgress(stderr))
	if err != nil {
		return err
	}
	for i := range comps {
		r := res[i]
		comps[i].Quality = &quantize.Quality{KLD: *r.KLD, Top1Agree: *r.Top1Agree, PPL: r.PPL, RefPPL: *r.RefPPL, Tokens: r.Tokens}
	}
	return nil
}
