package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/cafeq/cafeq/model/hub"
)

// pullFlags choose how a Hugging Face repository is quantized when a
// command gets hf:ORG/NAME as its model. Unset, they leave quantize's
// defaults (a size of -bpw 4.5); -bits and -group pick one grid instead.
type pullFlags struct {
	bpw         float64
	bits, group int
	method      string
	rev         string
}

func (p *pullFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&p.bpw, "bpw", 0, "with hf:REPO: size in bits per linear weight; 0: quantize's default")
	fs.IntVar(&p.bits, "bits", 0, "with hf:REPO: instead of -bpw, one grid of this many bits, 4 or 3")
	fs.IntVar(&p.group, "group", 0, "with hf:REPO and -bits: quantization group size, 32, 64 or 128 (larger: smaller file); 0: 32")
	fs.StringVar(&p.method, "method", "cafeq", "with hf:REPO: quantization method, rtn, hadamard or cafeq")
	fs.StringVar(&p.rev, "rev", "main", "with hf:REPO: branch, tag or commit")
}

func (p *pullFlags) validate() error {
	switch {
	case p.bits != 0 && p.bits != 3 && p.bits != 4:
		return usagef("-bits must be 3 or 4")
	case p.group != 0 && p.group != 32 && p.group != 64 && p.group != 128:
		return usagef("-group must be 32, 64 or 128")
	case p.group != 0 && p.bits == 0:
		return usagef("-group goes with -bits")
	case p.bpw != 0 && p.bits != 0:
		return usagef("give either -bpw or -bits/-group")
	case p.bpw < 0:
		return usagef("-bpw must be > 0")
	case p.method != "rtn" && p.method != "hadamard" && p.method != "cafeq":
		return usagef("-method must be rtn, hadamard or cafeq")
	}
	return nil
}

// quantizeArgs are the size flags passed to quantize, and the name they
// give the cached file.
func (p *pullFlags) quantizeArgs() (args []string, name string) {
	switch {
	case p.bits != 0:
		group := p.group
		if group == 0 {
			group = 32
		}
		return []string{"-bits", fmt.Sprint(p.bits), "-group", fmt.Sprint(group)}, fmt.Sprintf("q%d_g%d", p.bits, group)
	case p.bpw != 0:
		return []string{"-bpw", fmt.Sprint(p.bpw)}, fmt.Sprintf("bpw%g", p.bpw)
	}
	return nil, "default"
}

// hfPrefix marks a model given as a Hugging Face repository.
const hfPrefix = "hf:"

// cafeqHome is where quantized downloads are kept: $CAFEQ_HOME, else
// ~/.cache/cafeq.
func cafeqHome() (string, error) {
	if h := os.Getenv("CAFEQ_HOME"); h != "" {
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set CAFEQ_HOME (%v)", err)
	}
	return filepath.Join(home, ".cache", "cafeq"), nil
}

// wantedFile picks the files of a repository that quantize reads.
func wantedFile(name string) bool {
	if strings.Contains(name, "/") {
		return false // original/, onnx/, gguf folders …
	}
	switch name {
	case "config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json":
		return true
	}
	return path.Ext(name) == ".safetensors"
}

// resolveModel turns hf:ORG/NAME into a quantized .cq file, downloading and
// quantizing it unless the cache has it; any other model is returned as is.
func resolveModel(m string, p pullFlags, stderr io.Writer) (string, error) {
	repo, ok := strings.CutPrefix(m, hfPrefix)
	if !ok {
		return m, nil
	}
	return pull(repo, p, stderr)
}

func pull(repo string, p pullFlags, stderr io.Writer) (string, error) {
	if !hub.ValidRepo(repo) {
		return "", usagef("%q is not a Hugging Face repository like google/gemma-2-2b-it", repo)
	}
	c, err := hub.FromEnvironment()
	if err != nil {
		return "", err
	}
	bar := newByteProgress(stderr)
	c.Progress = bar.update
	snap, err := c.Download(context.Background(), repo, p.rev, wantedFile)
	bar.finish()
	if err != nil {
		return "", err
	}
	home, err := cafeqHome()
	if err != nil {
		return "", err
	}
	commit := filepath.Base(snap)
	sizeArgs, sizeName := p.quantizeArgs()
	out := filepath.Join(home, "models", strings.ReplaceAll(repo, "/", "--"),
		fmt.Sprintf("%s-%s-%s.cq", commit[:12], p.method, sizeName))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(stderr, "quantizing %s (%s, %s) into %s\n", repo, p.method, sizeName, out)
	// quantize writes to a temporary name and renames when complete, so an
	// interrupted run leaves no half-written file in the cache.
	err = cmdQuantize(append([]string{"-m", snap, "-o", out, "-method", p.method}, sizeArgs...), stderr, stderr)
	if err != nil {
		return "", fmt.Errorf("quantizing %s: %w", repo, err)
	}
	return out, nil
}

func cmdPull(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pull", "[-bpw 4.5 | -bits 4|3 [-group 32|64|128]] [-method cafeq] [-rev main] ORG/NAME", stderr)
	var p pullFlags
	p.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := p.validate(); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one repository, like google/gemma-2-2b-it")
	}
	out, err := pull(strings.TrimPrefix(fs.Arg(0), hfPrefix), p, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, out)
	return nil
}

// byteProgress draws "file  45% 120.3/268.0 MiB  12.1 MiB/s  ETA 12s" for
// downloads: redrawn in place at most five times a second on a terminal,
// one line per file elsewhere.
type byteProgress struct {
	w     io.Writer
	tty   bool
	file  string
	start time.Time
	first int64 // bytes the file had when this run started (resumed)
	last  time.Time
	line  string
}

func newByteProgress(w io.Writer) *byteProgress {
	return &byteProgress{w: w, tty: isTerminal(w)}
}

func (b *byteProgress) update(file string, done, total int64) {
	now := time.Now()
	if file != b.file {
		b.finish()
		b.file, b.start, b.first, b.last = file, now, done, time.Time{}
	}
	if done < total && now.Sub(b.last) < 200*time.Millisecond {
		return
	}
	b.last = now
	elapsed := now.Sub(b.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done-b.first) / elapsed
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(total-done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	const mib = 1 << 20
	b.line = fmt.Sprintf("%s %3d%% %.1f/%.1f MiB %.1f MiB/s ETA %s", file, done*100/max(total, 1),
		float64(done)/mib, float64(total)/mib, rate/mib, eta)
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", b.line)
	}
}

// finish ends the current file's line.
func (b *byteProgress) finish() {
	if b.line == "" {
		return
	}
	if b.tty {
		fmt.Fprintln(b.w)
	} else {
		fmt.Fprintln(b.w, b.line)
	}
	b.line = ""
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
