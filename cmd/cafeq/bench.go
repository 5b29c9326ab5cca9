package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/runtime"
)

// benchResult is what `cafeq bench -json` prints.
type benchResult struct {
	Model                string   `json:"model"`
	PrefillTokS          float64  `json:"prefill_tok_s"`
	DecodeTokS           float64  `json:"decode_tok_s"`
	Threads              int      `json:"threads"`
	ModelBytes           int64    `json:"model_bytes"`
	BandwidthGBs         float64  `json:"bandwidth_gbs"`
	DecodeGBs            float64  `json:"decode_gbs"`      // model bytes × decode tok/s
	BandwidthShare       float64  `json:"bandwidth_share"` // decode_gbs / bandwidth_gbs
	TransformOverheadPct *float64 `json:"transform_overhead_pct,omitempty"`
	Prompt               int      `json:"prompt_tokens"`
	Gen                  int      `json:"gen_tokens"`
	Depth                int      `json:"depth"`
	KVCache              string   `json:"kv_cache"` // f16 or f32
	Rounds               int      `json:"rounds"`
	Kernels              string   `json:"kernels"`
	CPU                  string   `json:"cpu"`
	// On Linux, what the threads got from the CPUs during the measured
	// rounds: CPU-seconds per second (at most threads when nothing else
	// runs), and the share of threads × time spent runnable but waiting
	// for a CPU. On a shared machine decode, a median over seconds, can get
	// much less than the short bandwidth passes, which keep their best.
	CPUsBusy   *float64 `json:"cpus_busy,omitempty"`
	CPUWaitPct *float64 `json:"cpu_wait_pct,omitempty"`
}

func cmdBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "-m MODEL [-p 128] [-n 64] [-d 0] [-kv f16] [-threads N] [-rounds 3] [-json]", stderr)
	modelPath := fs.String("m", "", "model (required)")
	prompt := fs.Int("p", 128, "prefill tokens")
	gen := fs.Int("n", 64, "decode tokens")
	depth := fs.Int("d", 0, "context depth decode starts from (tokens already in the KV cache), as llama-bench's -d")
	threads := fs.Int("threads", 0, "worker threads; 0: all cores")
	kv := registerLoadFlags(fs, true)
	rounds := fs.Int("rounds", 3, "repetitions; medians are reported")
	asJSON := fs.Bool("json", false, "print one JSON object")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured runs to this file (go tool pprof)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *modelPath == "":
		return usagef("-m MODEL is required")
	case *prompt < 1 || *gen < 1 || *rounds < 1:
		return usagef("-p, -n and -rounds must be at least 1")
	case *depth < 0:
		return usagef("-d must be >= 0")
	}
	e, err := loadEngine(*modelPath, engineOptions(*threads, kv), stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	if max(*prompt, *depth)+*gen+1 > e.Config.MaxPositionEmbeddings {
		return usagef("-p (or -d) + -n exceed the model's %d positions", e.Config.MaxPositionEmbeddings)
	}
	size, err := modelBytes(*modelPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: %s, %d threads, kernels %s, %s KV cache\n", *modelPath, e.Threads(), kernels.CurrentTier(), &kv.kv)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	// Each round is shown as it finishes: benchstat-readable lines (name-procs,
	// iterations, values with units) on stdout, or with -json a progress
	// line on stderr.
	name := strings.NewReplacer(" ", "_", "/", "_").Replace(filepath.Base(*modelPath))
	onRound := func(r int, p, d time.Duration) {
		if *asJSON {
			fmt.Fprintf(stderr, "round %d/%d: prefill %.2f tok/s, decode %.2f tok/s\n", r+1, *rounds, float64(*prompt)/p.Seconds(), float64(*gen)/d.Seconds())
			return
		}
		fmt.Fprintf(stdout, "BenchmarkPrefill/model=%s/tokens=%d-%d\t1\t%d ns/op\t%.2f tok/s\n", name, *prompt, e.Threads(), p.Nanoseconds(), float64(*prompt)/p.Seconds())
		fmt.Fprintf(stdout, "BenchmarkDecode/model=%s/depth=%d/tokens=%d-%d\t%d\t%d ns/op\t%.2f tok/s\n", name, *depth, *gen, e.Threads(), *gen, d.Nanoseconds()/int64(*gen), float64(*gen)/d.Seconds())
	}
	use0, useOK := readCPUUse()
	start := time.Now()
	res, err := e.Bench(runtime.BenchOptions{Prompt: *prompt, Gen: *gen, Depth: *depth, Rounds: *rounds, OnRound: onRound})
	wall := time.Since(start)
	use1, ok := readCPUUse()
	useOK = useOK && ok
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	bw := e.MeasureReadBandwidth(1 << 30)
	out := benchResult{
		Model: *modelPath, PrefillTokS: res.PrefillTokS, DecodeTokS: res.DecodeTokS, Threads: e.Threads(),
		ModelBytes: size, BandwidthGBs: bw, DecodeGBs: float64(size) * res.DecodeTokS / 1e9,
		TransformOverheadPct: res.TransformOverheadPct, Prompt: *prompt, Gen: *gen, Depth: *depth, Rounds: *rounds,
		KVCache: kv.kv.String(), Kernels: kernels.CurrentTier().String(), CPU: kernels.CPUFeatures(),
	}
	out.BandwidthShare = out.DecodeGBs / bw
	if useOK {
		busy := (use1.busy - use0.busy).Seconds() / wall.Seconds()
		wait := 100 * (use1.wait - use0.wait).Seconds() / (wall.Seconds() * float64(e.Threads()))
		out.CPUsBusy, out.CPUWaitPct = &busy, &wait
	}
	if *asJSON {
		data, _ := json.Marshal(out)
		fmt.Fprintln(stdout, string(data))
		return nil
	}
	fmt.Fprintf(stdout, "# prefill %.2f tok/s, decode %.2f tok/s (medians); model %.1f MiB; decode reads %.1f GB/s of %.1f GB/s measured bandwidth (%.0f%%)\n",
		res.PrefillTokS, res.DecodeTokS, float64(size)/(1<<20), out.DecodeGBs, bw, 100*out.BandwidthShare)
	if useOK {
		fmt.Fprintf(stdout, "# threads busy %.2f of %d CPUs, waiting for a CPU %.0f%% of the time\n", *out.CPUsBusy, e.Threads(), *out.CPUWaitPct)
	}
	if res.TransformOverheadPct != nil {
		fmt.Fprintf(stdout, "# transform overhead: %.2f%% of decode time\n", *res.TransformOverheadPct)
	}
	return nil
}

// modelBytes is the size of a .cq file or of a checkpoint's weight files.
func modelBytes(path string) (int64, error) {
	isFile, err := model.IsCQFile(path)
	if err != nil {
		return 0, err
	}
	if isFile {
		st, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	info, err := model.Describe(path, false)
	if err != nil {
		return 0, err
	}
	return info.Bytes, nil
}

func cmdSynth(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("synth", "-preset 2b|9b|27b -o DIR [-seed N] [-tokenizer tokenizer.json]", stderr)
	preset := fs.String("preset", "2b", "model size: 2b, 9b or 27b")
	out := fs.String("o", "", "output directory (required)")
	seed := fs.Uint64("seed", 1, "random seed")
	tokPath := fs.String("tokenizer", "", "tokenizer.json or tokenizer.model to copy in (the real Gemma one for benchmarks)")
	layers := fs.Int("layers", 0, "override the number of layers (smaller test models); 0: the preset's")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("-o DIR is required")
	}
	cfg, err := model.Preset(*preset)
	if err != nil {
		return usageError{err.Error()}
	}
	if *layers < 0 {
		return usagef("-layers must be >= 0")
	}
	if *layers > 0 {
		cfg.NumHiddenLayers = *layers
	}
	var tokData []byte
	tokName := ""
	if *tokPath != "" {
		if tokData, err = os.ReadFile(*tokPath); err != nil {
			return err
		}
		tokName = filepath.Base(*tokPath)
		if tokName != "tokenizer.json" && tokName != "tokenizer.model" {
			return usagef("-tokenizer must name a tokenizer.json or tokenizer.model file")
		}
	}
	bar := newProgress(stderr, "synth", "tensors", 1)
	if err := model.WriteSynthetic(*out, cfg, *seed, func(done, total int) {
		bar.total = total
		bar.update(done)
	}); err != nil {
		return err
	}
	if tokData != nil {
		if err := os.WriteFile(filepath.Join(*out, tokName), tokData, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %s: Gemma 2 %s shape, %d layers, %.2fB parameters\n", *out, *preset, cfg.NumHiddenLayers, float64(cfg.ParamCount())/1e9)
	return nil
}

func cmdOutliers(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("outliers", "-m HF_DIR -o DIR [-seed N]", stderr)
	in := fs.String("m", "", "Hugging Face checkpoint directory (required)")
	out := fs.String("o", "", "output directory (required)")
	seed := fs.Uint64("seed", 1, "seed of the channel scales")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return usagef("-m HF_DIR and -o DIR are required")
	}
	ck, err := model.OpenCheckpoint(*in)
	if err != nil {
		return err
	}
	defer ck.Close()
	if err := model.CheckOutputDir(*out, *in); err != nil {
		return err
	}
	if err := model.WriteOutlierCheckpoint(ck, *out, *seed); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s with outlier input channels in every linear layer (float32, same function)\n", *out, *in)
	return nil
}
