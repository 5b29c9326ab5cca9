package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/model/tokenizer"
	"github.com/cafeq/cafeq/quantize"
)

// quantizeSummary is what `cafeq quantize -json` prints.
type quantizeSummary struct {
	Output     string  `json:"output"`
	Method     string  `json:"method"`
	Format     string  `json:"format"`
	Block      int     `json:"block,omitempty"`
	Seconds    float64 `json:"seconds"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	FileBytes  int64   `json:"file_bytes"`
	MeanRelErr float64 `json:"mean_rel_err"`
	MeanRTNErr float64 `json:"mean_rtn_rel_err"`
	Tensors    int     `json:"tensors"`
	// LinearBPW is bits per linear weight, everything counted (scales,
	// mins, M⁻¹); Size breaks the file down.
	LinearBPW   float64    `json:"linear_bits_per_weight"`
	BPW         float64    `json:"bpw_target,omitempty"` // -bpw: the budget LinearBPW stays within
	Size        model.Size `json:"size"`
	ReportFiles []string   `json:"report_files,omitempty"`
}

// defaultBPW is the size of a file made with no size flag: Q4_0's 4.5 bits
// per linear weight, everything counted.
const defaultBPW = 4.5

func cmdQuantize(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("quantize", "-m HF_DIR -o OUT.cq [-bpw 4.5 | -bits 4|3 -group 32|64|128] [-method rtn|hadamard|cafeq] [flags]", stderr)
	in := fs.String("m", "", "Hugging Face checkpoint directory (required)")
	out := fs.String("o", "", "output .cq file (required)")
	bpw := fs.Float64("bpw", defaultBPW, "size in bits per linear weight, everything counted (scales, mins, transforms): each tensor gets the grid, group and bit width that minimise the proxy loss within it")
	bits := fs.Int("bits", 4, "instead of -bpw: one grid of this many bits (4 or 3) for every linear weight, with -group and -sym")
	group := fs.Int("group", 32, "quantization group along the input axis: 32, 64 or 128")
	sym := fs.Bool("sym", false, "symmetric grid (scale only) instead of min-max (scale and min)")
	superblock := fs.Bool("k", false, "K-style superblock grids (formats q4_k, q3_k, q5_k, q6_k): groups of 32 whose scales (and mins) are 6-bit codes under f16 super-scales per 256 weights. With -bpw (or no size flag) they are among the candidates unless -k=false; with -bits, -k stores every linear weight on one (needs -group 32 and -block 0 or 256)")
	method := fs.String("method", "cafeq", "rtn (plain min-max round to nearest), hadamard (random rotation) or cafeq")
	block := fs.Int("block", 0, "block of the run-time input transform M (cafeq: 32..256; hadamard: a power of two, default 256); 0: cafeq applies none, only transforms folded into the weights")
	noDiag := fs.Bool("no-diag", false, "cafeq: skip the diagonal input transforms folded into the norms and up_proj (free at run time)")
	steps := fs.Int("steps", quantize.DefaultSteps, "Adam steps per start and block (cafeq); time grows linearly")
	noClip := fs.Bool("no-clip", false, "cafeq: skip the per-group range (clipping) search")
	noLSQ := fs.Bool("no-lsq", false, "cafeq: skip the HQQ-style least-squares scale/min updates")
	noRounding := fs.Bool("no-rounding", false, "cafeq: skip alternating rounding of the V/O pairs")
	noInputCov := fs.Bool("no-input-cov", false, "cafeq: skip re-rounding q/k/v and gate/up for the input covariance the embedding implies (GPTQ without calibration data; only with -block 0)")
	transformDown := fs.Bool("transform-down", false, "cafeq: also transform down_proj's input (costly at run time)")
	embed := fs.String("embed", "q6", "format of the embedding/output matrix: q6, q8, q5, f16, bf16, f32, or a 4/3-bit format such as q4_g32_asym")
	transformFormat := fs.String("transform-format", "q8", "format of the stored M⁻¹: q8 or f32")
	seed := fs.Uint64("seed", 1, "seed of random starts and rotations")
	reportDir := fs.String("report", "", "also quantize with rtn and hadamard (and cafeq at -compare-blocks) and write a comparison (report.json, loss.svg) into this directory")
	compareBlocks := fs.String("compare-blocks", "", "with -report: comma-separated extra cafeq transform blocks to compare, e.g. 32,256")
	evalText := fs.String("eval", "", "with -report: a text file on which every method's KL divergence and top-1 agreement against the checkpoint are measured")
	evalCtx := fs.Int("eval-ctx", 256, "with -eval: window length in tokens")
	asJSON := fs.Bool("json", false, "print a JSON summary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["bpw"] && (set["bits"] || set["group"] || set["sym"]):
		return usagef("-bpw chooses bits, group and grid per tensor: give either -bpw or -bits/-group/-sym")
	case *bpw <= 0 || *bpw > 16:
		return usagef("-bpw must be in (0, 16]")
	case *in == "" || *out == "":
		return usagef("-m HF_DIR and -o OUT.cq are required")
	case *bits != 3 && *bits != 4:
		return usagef("-bits must be 3 or 4")
	case *group != 32 && *group != 64 && *group != 128:
		return usagef("-group must be 32, 64 or 128")
	case *superblock && *group != 32:
		return usagef("-k takes groups of 32")
	case *method != "rtn" && *method != "hadamard" && *method != "cafeq":
		return usagef("-method must be rtn, hadamard or cafeq")
	case *steps < 0:
		return usagef("-steps must be >= 0")
	}
	if st, err := os.Stat(*out); err == nil && st.IsDir() {
		return usagef("-o %s is a directory; give the output file's name", *out)
	}
	if err := model.CheckOutputFile(*out, *in, *evalText); err != nil {
		return err
	}
	embedFormat, err := kernels.ParseFormat(*embed)
	if err != nil {
		return usagef("-embed: %v", err)
	}
	trFormat, err := kernels.ParseFormat(*transformFormat)
	if err != nil || (trFormat.Type != kernels.Q8 && trFormat.Type != kernels.F32) {
		return usagef("-transform-format must be q8 or f32")
	}
	opt := quantize.CheckpointOptions{
		Options: quantize.Options{
			Method: quantize.Method(*method),
			Grid:   quantize.Grid{Bits: *bits, Group: *group, Asym: !*sym},
			Block:  *block, Steps: *steps, Seed: *seed,
		},
		EmbedFormat: embedFormat, TransformFormat: trFormat, TransformDown: *transformDown,
		Metadata: map[string]string{"source": *in, "created": time.Now().UTC().Format(time.RFC3339)},
	}
	if *method == "cafeq" {
		if !*noClip {
			opt.Refine |= quantize.RefineClip
		}
		if !*noLSQ {
			opt.Refine |= quantize.RefineLSQ
		}
		opt.Rounding = !*noRounding
		opt.Diag = !*noDiag
		opt.InputCov = !*noInputCov
		if *block == 0 {
			opt.NoBlock, opt.Block = true, 256
		}
	}
	if *method == "hadamard" && *block == 0 {
		opt.Block = 256
	}
	// -k: with -bits it asks for the superblock grid; with -bpw the
	// superblock grids are candidates unless it is set to false.
	if !set["bits"] && !set["group"] && !set["sym"] {
		opt.BPW = *bpw
		opt.NoSuperGrids = set["k"] && !*superblock
	} else {
		opt.Grid.Super = *superblock
	}
	ck, err := model.OpenCheckpoint(*in)
	if err != nil {
		return err
	}
	defer ck.Close()
	tok, err := tokenizer.Load(*in)
	if err != nil {
		return err
	}
	// Progress comes in estimated work units (tensor weights times passes);
	// the bar shows their share.
	bar := newProgress(stderr, "quantize", "", 1000)
	opt.Progress = func(done, total int, what string) {
		bar.update(int(int64(done) * 1000 / int64(max(total, 1))))
	}
	rep, err := quantize.QuantizeCheckpoint(ck, tok, *out, opt)
	if err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	info, err := model.Describe(*out, false)
	if err != nil {
		return err
	}
	sum := quantizeSummary{Output: *out, Method: *method, Format: opt.Grid.Format().String(), Seconds: rep.Seconds,
		PeakRSSMiB: peakRSSMiB(), FileBytes: st.Size(), Tensors: len(rep.Entries),
		LinearBPW: info.Size.LinearBPW, Size: info.Size}
	if *method != "rtn" && !opt.NoBlock {
		sum.Block = opt.Block
	}
	if opt.BPW > 0 {
		sum.Format, sum.BPW = "per tensor", opt.BPW
	}
	for _, e := range rep.Entries {
		sum.MeanRelErr += e.RelErr / float64(len(rep.Entries))
		sum.MeanRTNErr += e.RTNRelErr / float64(len(rep.Entries))
	}
	if *reportDir != "" {
		var extra []int
		if *compareBlocks != "" {
			if extra, err = parseIDs(*compareBlocks); err != nil {
				return usagef("-compare-blocks: %v", err)
			}
		}
		main := quantize.NewComparison(comparisonLabel(opt.Options), opt.Options, rep, st.Size())
		if opt.BPW > 0 {
			main.Grid = fmt.Sprintf("bpw %g", opt.BPW)
		}
		files, rep, err := writeComparison(*reportDir, ck, tok, *in, *out, main, opt, extra, *evalText, *evalCtx, stderr)
		if err != nil {
			return err
		}
		sum.ReportFiles = files
		// The table goes where the summary goes: stderr when stdout is JSON.
		table := stdout
		if *asJSON {
			table = stderr
		}
		defer printReportTable(table, rep)
	}
	if *asJSON {
		data, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(data))
		return nil
	}
	fmt.Fprintf(stdout, "wrote %s: %s %s, %.1f MiB in %.1fs, peak RSS %.0f MiB\n",
		*out, *method, sum.Format, float64(sum.FileBytes)/(1<<20), sum.Seconds, sum.PeakRSSMiB)
	fmt.Fprintf(stdout, "size: %s\n", sum.Size)
	fmt.Fprintf(stdout, "mean relative weight error: %.4f (plain RTN on the same grid: %.4f)\n", sum.MeanRelErr, sum.MeanRTNErr)
	return nil
}
