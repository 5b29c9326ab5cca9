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
	kv    *kvCacheFlag
}

func (f *sampleFlags) register(fs *flag.FlagSet, defaultN int) {
	fs.StringVar(&f.model, "m", "", "model: a Hugging Face checkpoint directory or a .cq file (required)")
	fs.IntVar(&f.n, "n", defaultN, "most tokens to generate")
	fs.Float64Var(&f.temp, "temp", 0.8, "temperature; 0 is greedy")
	fs.IntVar(&f.topK, "top-k", 40, "sample from the k most likely tokens; 0: all")
	fs.Float64Var(&f.topP, "top-p", 0.95, "nucleus sampling threshold; 1: off")
	fs.Int64Var(&f.seed, "seed", -1, "random seed; -1: from the clock")
	fs.IntVar(&f.ctx, "ctx", 0, "context length in tokens; 0: the model's, at most 4096")
	fs.IntVar(&f.thr, "threads", 0, "worker threads; 0: all cores")
	f.kv = registerKVCache(fs, true)
}

func (f *sampleFlags) validate() error {
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
// capped at 4096 (what llama.cpp and ollama default to).
func contextLength(flagCtx int, e *runtime.Engine) int {
	if flagCtx > 0 {
		return flagCtx
	}
	return min(e.Config.MaxPositionEmbeddings, 4096)
}

// interruptContext is cancelled on Ctrl-C, so generation stops cleanly.
func interruptContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "-m MODEL [flags] [-p] PROMPT", stderr)
	var sf sampleFlags
	sf.register(fs, 128)
	prompt := fs.String("p", "", "prompt text (BOS is added)")
	if err := parseFlags(fs, args); err != nil {
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
	e, err := loadEngine(sf.model, engineOptions(sf.thr, sf.kv), stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	tok := e.Tokenizer
	ids := append([]int{tok.BOS()}, tok.Encode(*prompt)...)
	ctxLen := sf.ctx
	if ctxLen == 0 {
		ctxLen = min(len(ids)+max(sf.n, 1), e.Config.MaxPositionEmbeddings)
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
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "[%d prompt tokens, %d generated in %.2fs (%.1f tok/s overall), finish: %s]\n",
		res.PromptTokens, res.Generated, secs, float64(res.Generated)/secs, res.FinishReason)
	return nil
}

func cmdChat(args []string, stdout, stderr io.Writer) error {
	return chat(args, os.Stdin, stdout, stderr)
}

func chat(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("chat", "-m MODEL [flags]", stderr)
	var sf sampleFlags
	sf.register(fs, 512)
	system := fs.String("system", "", "system prompt (folded into the first user turn)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := sf.validate(); err != nil {
		return err
	}
	e, err := loadEngine(sf.model, engineOptions(sf.thr, sf.kv), stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	s, err := e.NewSession(contextLength(sf.ctx, e))
	if err != nil {
		return err
	}
	opts := sf.options()
	opts.StopTokens = e.StopTokens()
	var history []runtime.ChatMessage
	if *system != "" {
		history = append(history, runtime.ChatMessage{Role: "system", Content: *system})
	}
	fmt.Fprintln(stderr, "Type a message and press Enter. /reset starts over, /exit (or Ctrl-D) quits.")
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(stdout)
	for {
		fmt.Fprint(stderr, "> ")
		if !in.Scan() {
			fmt.Fprintln(stderr)
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		switch line {
		case "":
			continue
		case "/exit", "/quit":
			return nil
		case "/reset":
			history = history[:0]
			if *system != "" {
				history = append(history, runtime.ChatMessage{Role: "system", Content: *system})
			}
			s.Reset()
			continue
		}
		history = append(history, runtime.ChatMessage{Role: "user", Content: line})
		ids, err := runtime.ChatPrompt(e.Tokenizer, history)
		if err != nil {
			return err
		}
		if len(ids) >= s.MaxContext() {
			fmt.Fprintf(stderr, "[the conversation no longer fits the context of %d tokens; starting over]\n", s.MaxContext())
			history = history[len(history)-1:]
			if ids, err = runtime.ChatPrompt(e.Tokenizer, history); err != nil {
				return err
			}
			if len(ids) >= s.MaxContext() {
				history = history[:0]
				fmt.Fprintln(stderr, "[message too long for the context]")
				continue
			}
		}
		dec := e.Tokenizer.NewStreamDecoder()
		var reply strings.Builder
		ctx, stop := interruptContext()
		_, err = s.Generate(ctx, ids, opts, func(id int) bool {
			text := dec.Add(id)
			reply.WriteString(text)
			out.WriteString(text)
			out.Flush()
			return true
		})
		stop()
		rest := dec.Flush()
		reply.WriteString(rest)
		out.WriteString(rest + "\n")
		out.Flush()
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		history = append(history, runtime.ChatMessage{Role: "assistant", Content: reply.String()})
	}
}
