package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/cafeq/cafeq/runtime"
	"github.com/cafeq/cafeq/runtime/eval"
)

func cmdPerplexity(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("perplexity", "-m MODEL -f TEXT_FILE [-ctx 512] [-ref MODEL] [-json]", stderr)
	modelPath := fs.String("m", "", "model (required)")
	textPath := fs.String("f", "", "text file (required)")
	ctxLen := fs.Int("ctx", 512, "window length in tokens, BOS included")
	refPath := fs.String("ref", "", "reference model: also report KL(ref ‖ model) and top-1 agreement")
	asJSON := fs.Bool("json", false, "print one JSON object")
	threads := fs.Int("threads", 0, "worker threads; 0: all cores")
	kv := registerLoadFlags(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *modelPath == "":
		return usagef("-m MODEL is required")
	case *textPath == "":
		return usagef("-f TEXT_FILE is required")
	case *ctxLen < 2:
		return usagef("-ctx must be at least 2")
	}
	text, err := os.ReadFile(*textPath)
	if err != nil {
		return err
	}
	opts := engineOptions(*threads, kv)
	e, err := loadEngine(*modelPath, opts, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	var ref *runtime.Engine
	if *refPath != "" {
		if ref, err = loadEngine(*refPath, opts, stderr); err != nil {
			return err
		}
		defer ref.Close()
		if ref.Config.VocabSize != e.Config.VocabSize {
			return fmt.Errorf("reference vocabulary %d differs from the model's %d", ref.Config.VocabSize, e.Config.VocabSize)
		}
	}
	tokens := e.Tokenizer.Encode(string(text))
	if len(tokens) == 0 {
		return fmt.Errorf("%s holds no tokens", *textPath)
	}
	res, err := eval.Perplexity(e, ref, tokens, *ctxLen, evalProgress(stderr))
	if err != nil {
		return err
	}
	if *asJSON {
		data, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(data))
		return nil
	}
	fmt.Fprintf(stdout, "perplexity: %.4f over %d tokens (ctx %d) in %.1fs\n", res.PPL, res.Tokens, res.Ctx, res.Seconds)
	if res.KLD != nil {
		fmt.Fprintf(stdout, "reference perplexity: %.4f\nmean KL(ref || model): %.6f nats/token\ntop-1 agreement: %.4f\n", *res.RefPPL, *res.KLD, *res.Top1Agree)
	}
	return nil
}

// evalProgress draws the windows' progress bar on stderr.
func evalProgress(stderr io.Writer) func(done, total int) {
	var bar *progress
	return func(done, total int) {
		if bar == nil {
			bar = newProgress(stderr, "perplexity", "windows", total)
		}
		if done > 0 {
			bar.update(done)
		}
	}
}
