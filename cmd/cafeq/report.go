package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

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
	if o.Method == quantize.MethodCafeQ && o.NoBlock {
		return "cafeq, no run-time transform"
	}
	return fmt.Sprintf("%s b%d", o.Method, o.Block)
}

// writeComparison quantizes the checkpoint again with the baselines (plain
// RTN, Hadamard at the same block) and CafeQ at extra blocks, optionally
// measures each file's KL divergence and top-1 agreement against the
// checkpoint on evalText, and writes the report into dir.
func writeComparison(dir string, ck *model.Checkpoint, tok *tokenizer.Tokenizer, ckPath, mainFile string, main quantize.Comparison,
	opt quantize.CheckpointOptions, extraBlocks []int, evalText string, evalCtx int, stderr io.Writer) ([]string, quantize.Report, error) {
	rep := quantize.Report{Model: ckPath, Settings: quantize.ReportSettings{
		Version: buildVersion(), Created: time.Now().UTC().Format(time.RFC3339),
		Method: opt.Method, Steps: opt.Steps, Seed: opt.Seed,
	}}
	if opt.BPW > 0 {
		rep.Settings.BPW = opt.BPW
	} else {
		rep.Settings.Format = opt.Grid.String()
	}
	if opt.Method != quantize.MethodRTN && !opt.NoBlock {
		rep.Settings.Block = opt.Block
	}
	if evalText != "" {
		rep.Settings.EvalFile, rep.Settings.EvalCtx = evalText, evalCtx
	}
	tmp, err := os.MkdirTemp("", "cafeq-report-")
	if err != nil {
		return nil, rep, err
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
		o.Method, o.Block, o.NoBlock = quantize.MethodCafeQ, b, false
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
		run, err := quantize.QuantizeCheckpoint(ck, tok, path, co)
		if errors.Is(err, quantize.ErrBudgetTooSmall) {
			// Hadamard's M⁻¹ alone can exceed a small model's budget.
			fmt.Fprintf(stderr, "report: %s skipped: %v\n", label, err)
			continue
		}
		if err != nil {
			return nil, rep, fmt.Errorf("report: %s: %w", label, err)
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, rep, err
		}
		c := quantize.NewComparison(label, o, run, st.Size())
		if opt.BPW > 0 {
			c.Grid = fmt.Sprintf("bpw %g", opt.BPW) // each tensor's grid is in c.Entries
		}
		comps = append(comps, c)
		files = append(files, path)
	}
	if evalText != "" {
		if err := evaluateComparisons(comps, files, ckPath, evalText, evalCtx, stderr); err != nil {
			return nil, rep, err
		}
	}
	rep.Methods = comps
	written, err := quantize.WriteReport(dir, rep)
	return written, rep, err
}

// printReportTable writes one line per method of a report: file size, mean
// relative weight error, time and, when measured, quality.
func printReportTable(w io.Writer, rep quantize.Report) {
	fmt.Fprintf(w, "%-14s %-13s %8s %12s %8s", "method", "format", "MiB", "mean rel err", "seconds")
	evaluated := len(rep.Methods) > 0 && rep.Methods[0].Quality != nil
	if evaluated {
		fmt.Fprintf(w, " %10s %7s %9s", "KLD nats", "top-1", "PPL")
	}
	fmt.Fprintln(w)
	for _, m := range rep.Methods {
		fmt.Fprintf(w, "%-14s %-13s %8.2f %12.4f %8.1f", m.Label, m.Grid, float64(m.Bytes)/(1<<20), m.MeanRel, m.Seconds)
		if q := m.Quality; evaluated && q != nil {
			fmt.Fprintf(w, " %10.5f %7.3f %9.3f", q.KLD, q.Top1Agree, q.PPL)
		}
		fmt.Fprintln(w)
	}
	if evaluated {
		fmt.Fprintf(w, "quality on %s (%d tokens, windows of %d); reference PPL %.3f\n",
			rep.Settings.EvalFile, rep.Methods[0].Quality.Tokens, rep.Settings.EvalCtx, rep.Methods[0].Quality.RefPPL)
	}
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
