package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/cafeq/cafeq/runtime"
)

// sampleFlags are the sampling flags run and chat share.
type sampleFlags struct {
	temp  float64
	topK  int
	topP  float64
	seed  int64
	n     int
	ctx   int
	model string
	thr   int
	kv    *loadFlags
	pull  pullFlags

	verbose bool
}

func (f *sampleFlags) register(fs *flag.FlagSet, defaultN int) {
	fs.StringVar(&f.model, "m", "", "model: a Hugging Face checkpoint directory, a .cq file, or hf:ORG/NAME to download and quantize (required)")
	fs.IntVar(&f.n, "n", defaultN, "most tokens to generate; 0: until a stop token or the context is full")
	fs.Float64Var(&f.temp, "temp", 0.8, "temperature; 0 is greedy")
	fs.IntVar(&f.topK, "top-k", 40, "sample from the k most likely tokens; 0: all")
	fs.Float64Var(&f.topP, "top-p", 0.95, "nucleus sampling threshold; 1: off")
	fs.Int64Var(&f.seed, "seed", -1, "random seed; -1: from the clock")
	fs.IntVar(&f.ctx, "ctx", 0, "context length in tokens; 0: the model's, at most 4096")
	fs.IntVar(&f.thr, "threads", 0, "worker threads; 0: all cores")
	f.kv = registerLoadFlags(fs, true)
	fs.BoolVar(&f.verbose, "verbose", false, "print timings: load, prompt eval and eval counts, durations and rates")
	f.pull.register(fs)
}

// modelArg takes a leading hf:ORG/NAME argument as the model, as `ollama
// run MODEL` takes it, and parses the flags that follow it.
func modelArg(fs *flag.FlagSet, model *string) error {
	if *model == "" && fs.NArg() > 0 && strings.HasPrefix(fs.Arg(0), hfPrefix) {
		*model = fs.Arg(0)
		return parseFlags(fs, fs.Args()[1:])
	}
	return nil
}

func (f *sampleFlags) validate() error {
	if err := f.pull.validate(); err != nil {
		return err
	}
	switch {
	case f.model == "":
		return usagef("-m MODEL is required")
	case f.temp < 0:
		return usagef("-temp must be >= 0")
	case f.topK < 0:
		return usagef("-top-k must be >= 0")
	case f.topP <= 0 || f.topP > 1:
		return usagef("-top-p must be in (0, 1]")
	case f.n < 0:
		return usagef("-n must be >= 0")
	case f.ctx < 0:
		return usagef("-ctx must be >= 0")
	}
	return nil
}

func (f *sampleFlags) options() runtime.GenerateOptions {
	seed := uint64(f.seed)
	if f.seed < 0 {
		seed = uint64(time.Now().UnixNano())
	}
	return runtime.GenerateOptions{
		SampleOptions: runtime.SampleOptions{Temperature: float32(f.temp), TopK: f.topK, TopP: float32(f.topP), Seed: seed},
		MaxTokens:     f.n,
	}
}

// contextLength picks the KV cache size: the flag, else the model's maximum
// capped at 4096 (what llama.cpp and ollama default to). Beyond the trained
// length the model's positions are untrained, so that is refused.
func contextLength(flagCtx int, e *runtime.Engine) (int, error) {
	trained := e.Config.MaxPositionEmbeddings
	switch {
	case flagCtx > trained:
		return 0, fmt.Errorf("-ctx %d exceeds the model's trained context of %d tokens", flagCtx, trained)
	case flagCtx > 0:
		return flagCtx, nil
	}
	return min(trained, 4096), nil
}

// interruptContext is cancelled on Ctrl-C, so generation stops cleanly.
func interruptContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

// errInterrupted ends a generation the user stopped with Ctrl-C; the
// command exits 130, as a shell reports a process killed by SIGINT.
var errInterrupted = errors.New("interrupted")

func cmdRun(args []string, stdout, stderr io.Writer) error {
	return runPrompt(args, os.Stdin, stdout, stderr)
}

func runPrompt(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("run", "(-m MODEL | hf:ORG/NAME) [flags] [-p PROMPT | -f FILE | PROMPT | < FILE]", stderr)
	var sf sampleFlags
	sf.register(fs, 128)
	prompt := fs.String("p", "", "prompt text (BOS is added)")
	promptFile := fs.String("f", "", "read the prompt from this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := modelArg(fs, &sf.model); err != nil {
		return err
	}
	if err := sf.validate(); err != nil {
		return err
	}
	// The prompt may also come last without -p, as `ollama run` takes it.
	switch {
	case fs.NArg() == 1 && *prompt == "":
		*prompt = fs.Arg(0)
	case fs.NArg() > 0:
		return usagef("unexpected argument %q (the prompt is one argument, or -p)", fs.Arg(0))
	}
	text, err := readPrompt(*prompt, *promptFile, stdin)
	if err != nil {
		return err
	}
	e, load, err := openModel(sf.model, sf.pull, engineOptions(sf.thr, sf.kv), stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	tok := e.Tokenizer
	ids := append([]int{tok.BOS()}, tok.Encode(text)...)
	ctxLen, err := contextLength(sf.ctx, e)
	if err != nil {
		return err
	}
	if sf.ctx == 0 && sf.n > 0 {
		// Only as much KV cache as this prompt and reply need.
		ctxLen = min(len(ids)+sf.n, e.Config.MaxPositionEmbeddings)
	}
	if len(ids) > ctxLen {
		return fmt.Errorf("prompt of %d tokens does not fit the context of %d", len(ids), ctxLen)
	}
	s, err := e.NewSession(ctxLen)
	if err != nil {
		return err
	}
	ctx, stop := interruptContext()
	defer stop()
	opts := sf.options()
	opts.StopTokens = e.StopTokens()
	out := bufio.NewWriter(stdout)
	dec := tok.NewStreamDecoder()
	start := time.Now()
	res, err := s.Generate(ctx, ids, opts, func(id int) bool {
		out.WriteString(dec.Add(id))
		out.Flush()
		return true
	})
	out.WriteString(dec.Flush())
	out.WriteString("\n")
	out.Flush()
	interrupted := errors.Is(err, context.Canceled)
	if err != nil && !interrupted {
		return err
	}
	if interrupted {
		res.FinishReason = "interrupted"
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "[%d prompt tokens, %d generated in %.2fs (%.1f tok/s overall), finish: %s]\n",
		res.PromptTokens, res.Generated, secs, float64(res.Generated)/secs, res.FinishReason)
	if sf.verbose {
		printTimings(stderr, load+time.Since(start), load, res)
	}
	if interrupted {
		return errInterrupted
	}
	return nil
}

// readPrompt picks the prompt: the -p text or argument, else the -f file,
// else standard input when it is a pipe or a file (`echo hi | cafeq run`).
// One final newline of a file or pipe is dropped: echo and editors add it,
// and it would otherwise start the reply on a fresh line.
func readPrompt(prompt, file string, stdin io.Reader) (string, error) {
	switch {
	case prompt != "" && file != "":
		return "", usagef("give the prompt once: -p (or an argument) or -f")
	case prompt != "":
		return prompt, nil
	case file != "":
		data, err := os.ReadFile(file)
		return trimFinalNewline(string(data)), err
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice != 0 {
			return "", usagef("no prompt: give -p PROMPT, a last argument, -f FILE or pipe it to standard input")
		}
	}
	data, err := io.ReadAll(stdin)
	if err != nil {
		return "", fmt.Errorf("reading the prompt from standard input: %w", err)
	}
	return trimFinalNewline(string(data)), nil
}

func trimFinalNewline(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// printTimings writes ollama's -verbose summary of one generation.
func printTimings(w io.Writer, total, load time.Duration, res runtime.GenerateResult) {
	evaluated := res.PromptTokens - res.CachedTokens
	rate := func(n int, d time.Duration) float64 {
		if d <= 0 {
			return 0
		}
		return float64(n) / d.Seconds()
	}
	fmt.Fprintf(w, "total duration:       %v\n", total.Round(time.Microsecond))
	fmt.Fprintf(w, "load duration:        %v\n", load.Round(time.Microsecond))
	fmt.Fprintf(w, "prompt eval count:    %d token(s)\n", evaluated)
	fmt.Fprintf(w, "prompt eval duration: %v\n", res.PromptDuration.Round(time.Microsecond))
	fmt.Fprintf(w, "prompt eval rate:     %.2f tokens/s\n", rate(evaluated, res.PromptDuration))
	fmt.Fprintf(w, "eval count:           %d token(s)\n", res.Generated)
	fmt.Fprintf(w, "eval duration:        %v\n", res.EvalDuration.Round(time.Microsecond))
	fmt.Fprintf(w, "eval rate:            %.2f tokens/s\n", rate(res.Generated, res.EvalDuration))
}
