package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/runtime/eval"
)

const shakespeare = "../../testdata/shakespeare-gemma2"

// heldOut writes the first n bytes of the model's unseen evaluation text
// (cut at a line end) to a file and returns its path.
func heldOut(t *testing.T, n int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(shakespeare, "eval.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for n < len(data) && data[n-1] != '\n' {
		n++
	}
	p := filepath.Join(t.TempDir(), "heldout.txt")
	os.WriteFile(p, data[:min(n, len(data))], 0o644)
	return p
}

func perplexityAgainstRef(t *testing.T, cq, text string) eval.Result {
	t.Helper()
	code, out, stderr := run(t, "perplexity", "-m", cq, "-ref", shakespeare, "-f", text, "-ctx", "256", "-json")
	if code != 0 {
		t.Fatalf("perplexity: %s", stderr)
	}
	var r eval.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.KLD == nil {
		t.Fatalf("perplexity -json: %q %v", out, err)
	}
	return r
}

// TestShakespeare4Bit: the trained model at 4 bits, group 32, keeps its
// top-1 token on at least 90% of unseen positions and its perplexity within 5%.
func TestShakespeare4Bit(t *testing.T) {
	if testing.Short() {
		t.Skip("quality test")
	}
	cq := filepath.Join(t.TempDir(), "q4.cq")
	if code, _, stderr := run(t, "quantize", "-m", shakespeare, "-o", cq, "-bits", "4", "-group", "32", "-method", "rtn"); code != 0 {
		t.Fatal(stderr)
	}
	r := perplexityAgainstRef(t, cq, heldOut(t, 12000))
	t.Logf("4-bit g32 rtn: ppl %.3f (ref %.3f), KL %.5f, top-1 %.4f over %d tokens", r.PPL, *r.RefPPL, *r.KLD, *r.Top1Agree, r.Tokens)
	if *r.Top1Agree < 0.90 {
		t.Errorf("top-1 agreement %.4f < 0.90", *r.Top1Agree)
	}
	if r.PPL > 1.05**r.RefPPL || r.PPL < *r.RefPPL/1.05 {
		t.Errorf("perplexity %.3f not within 5%% of %.3f", r.PPL, *r.RefPPL)
	}
}

// TestShakespeare3BitCafeQ: at 3 bits, CafeQ's KL divergence on unseen text
// is at most 0.8x RTN's at the same grid, and its relative proxy loss is below
// both RTN's and Hadamard's.
func TestShakespeare3BitCafeQ(t *testing.T) {
	if testing.Short() {
		t.Skip("quality test")
	}
	dir := t.TempDir()
	cq := filepath.Join(dir, "cafeq.cq")
	code, out, stderr := run(t, "quantize", "-m", shakespeare, "-o", cq, "-bits", "3", "-group", "32", "-method", "cafeq",
		"-block", "256", "-report", filepath.Join(dir, "report"), "-json")
	if code != 0 {
		t.Fatal(stderr)
	}
	var sum quantizeSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "report", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Methods []struct {
			Label   string  `json:"label"`
			MeanRel float64 `json:"mean_rel_err"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(data, &rep); err != nil || len(rep.Methods) != 3 {
		t.Fatalf("report: %v %+v", err, rep)
	}
	for _, m := range rep.Methods[1:] {
		t.Logf("proxy loss: %s %.4f, %s %.4f", rep.Methods[0].Label, rep.Methods[0].MeanRel, m.Label, m.MeanRel)
		if rep.Methods[0].MeanRel >= m.MeanRel {
			t.Errorf("cafeq proxy loss %.4f not below %s's %.4f", rep.Methods[0].MeanRel, m.Label, m.MeanRel)
		}
	}
	rtn := filepath.Join(dir, "rtn.cq")
	if code, _, stderr := run(t, "quantize", "-m", shakespeare, "-o", rtn, "-bits", "3", "-group", "32", "-method", "rtn"); code != 0 {
		t.Fatal(stderr)
	}
	text := heldOut(t, 12000)
	rc, rr := perplexityAgainstRef(t, cq, text), perplexityAgainstRef(t, rtn, text)
	t.Logf("3-bit g32: cafeq KL %.5f top-1 %.4f; rtn KL %.5f top-1 %.4f", *rc.KLD, *rc.Top1Agree, *rr.KLD, *rr.Top1Agree)
	if *rc.KLD > 0.8**rr.KLD {
		t.Errorf("cafeq KL %.5f > 0.8 x rtn KL %.5f", *rc.KLD, *rr.KLD)
	}
}

// outlierModel writes the trained model with planted outlier channels
// (`cafeq outliers`) into a temporary directory.
func outlierModel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "outliers")
	if code, _, stderr := run(t, "outliers", "-m", shakespeare, "-o", dir, "-seed", "1"); code != 0 {
		t.Fatal(stderr)
	}
	return dir
}

// TestOutlierModelSameFunction: the outlier model's weights differ from the
// trained model's, but its next-token distributions are the same (KL below
// 1e-9 nats, every top-1 equal), since the symmetries are exact.
func TestOutlierModelSameFunction(t *testing.T) {
	dir := outlierModel(t)
	r := perplexityAgainstRef(t, dir, heldOut(t, 3000))
	t.Logf("outlier model against the original: KL %.3g, top-1 %.4f over %d tokens", *r.KLD, *r.Top1Agree, r.Tokens)
	if *r.KLD > 1e-9 || *r.Top1Agree != 1 {
		t.Errorf("outlier model differs from the original: KL %.3g, top-1 %.4f", *r.KLD, *r.Top1Agree)
	}
}

// TestOutlierModelQuantizes: quantized with the default settings, the
// outlier model's KL on unseen text stays within 3x the trained model's
// (plain RTN's grows about 30x): the learned diagonals fold the outlier
// channels back into the norms and up_proj. (-steps 8 for time.) The ratio
// was 1.96 (0.00494 / 0.00252) until the bit budget counted the blocks after
// each one (blockGains), which lowered the trained model's KL here to 0.00236
// and moved the outlier model's to 0.00515 (2.2x); on all of eval.txt at 64
// steps the outlier model's was 0.00516 before and 0.00518 after. With the
// superblock grids among the default candidates: 0.00444 / 0.00206 (2.2x);
// with the 5-bit grids too: 0.00405 / 0.00189 (2.1x). The input covariances
// lowered both and the trained model's more: 0.00300 / 0.00123 (2.4x), so the
// bound went from 2.5x to 3x; the absolute bound stays.
func TestOutlierModelQuantizes(t *testing.T) {
	if testing.Short() {
		t.Skip("quality test")
	}
	text := heldOut(t, 6000)
	kl := map[string]float64{}
	for name, src := range map[string]string{"trained": shakespeare, "outliers": outlierModel(t)} {
		cq := filepath.Join(t.TempDir(), name+".cq")
		if code, _, stderr := run(t, "quantize", "-m", src, "-o", cq, "-steps", "8"); code != 0 {
			t.Fatal(stderr)
		}
		r := perplexityAgainstRef(t, cq, text)
		kl[name] = *r.KLD
		t.Logf("%s: KL %.5f, top-1 %.4f over %d tokens", name, *r.KLD, *r.Top1Agree, r.Tokens)
	}
	if kl["outliers"] > 3*kl["trained"] || kl["outliers"] > 0.01 {
		t.Errorf("outlier model KL %.5f: above 0.01 or 3x the trained model's %.5f", kl["outliers"], kl["trained"])
	}
}

// TestInputCovariances: the default re-rounding for the input covariances
// the model itself gives (quantize/inputcov.go) lowers the trained model's
// KL on unseen text well below -no-input-cov's (all of eval.txt at 64
// steps: 0.00122 against 0.00183). (-steps 8 for time.)
func TestInputCovariances(t *testing.T) {
	if testing.Short() {
		t.Skip("quality test")
	}
	text := heldOut(t, 6000)
	kl := map[string]float64{}
	for name, extra := range map[string][]string{"default": nil, "none": {"-no-input-cov"}} {
		cq := filepath.Join(t.TempDir(), name+".cq")
		args := append([]string{"quantize", "-m", shakespeare, "-o", cq, "-steps", "8"}, extra...)
		if code, _, stderr := run(t, args...); code != 0 {
			t.Fatal(stderr)
		}
		r := perplexityAgainstRef(t, cq, text)
		kl[name] = *r.KLD
		t.Logf("%s: KL %.5f, top-1 %.4f over %d tokens", name, *r.KLD, *r.Top1Agree, r.Tokens)
	}
	if kl["default"] > 0.85*kl["none"] {
		t.Errorf("KL %.5f with input covariances, %.5f without: want at most 0.85x", kl["default"], kl["none"])
	}
}

// TestBitBudget: -bpw 3.44 on the trained model gives a file of at most
// 3.44 bits per linear weight, everything counted, and spends most of it
// (at least 3.3); every tensor's grid is in the file. The superblock grids
// are among the candidates (the trained model gets some) unless -k=false
// (then it gets none). A budget below the smallest grid is a clear error,
// and -bpw with -bits a usage error.
func TestBitBudget(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"", "-k=false"} { // "": the default candidates
		cq := filepath.Join(dir, "b.cq")
		args := []string{"quantize", "-m", shakespeare, "-o", cq, "-bpw", "3.44", "-steps", "2", "-no-rounding", "-json"}
		if k != "" {
			args = append(args, k)
		}
		code, out, stderr := run(t, args...)
		if code != 0 {
			t.Fatal(stderr)
		}
		var sum quantizeSummary
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatal(err)
		}
		code, out, stderr = run(t, "inspect", "-json", cq)
		var info inspectJSON
		if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
			t.Fatalf("inspect -json: %s", stderr)
		}
		formats := map[string]int{}
		onSuper := 0
		for _, ts := range info.Tensors {
			if _, kind, ok := model.SplitLayerName(ts.Name); ok && !strings.HasSuffix(kind, "norm") {
				formats[ts.Format]++
				if f, err := kernels.ParseFormat(ts.Format); err != nil {
					t.Fatal(err)
				} else if f.Super {
					onSuper++
				}
			}
		}
		bpw := info.Size.LinearBPW
		t.Logf("-bpw 3.44 %s: %.4f bits per linear weight, everything counted; formats %v", k, bpw, formats)
		if bpw > 3.44 || bpw < 3.3 || sum.LinearBPW != bpw || sum.BPW != 3.44 {
			t.Errorf("-bpw 3.44 %s gave %.4f (quantize says %.4f, budget %.2f)", k, bpw, sum.LinearBPW, sum.BPW)
		}
		if (onSuper == 0) != (k != "") {
			t.Errorf("-bpw 3.44 %s: %d linear tensors on superblock grids", k, onSuper)
		}
	}
	if code, _, stderr := run(t, "quantize", "-m", shakespeare, "-o", filepath.Join(dir, "c.cq"), "-bpw", "2.5"); code != 1 || !strings.Contains(stderr, "smallest") {
		t.Errorf("-bpw 2.5: exit %d, %s", code, stderr)
	}
	if code, _, _ := run(t, "quantize", "-m", shakespeare, "-o", filepath.Join(dir, "d.cq"), "-bpw", "4", "-bits", "4"); code != 2 {
		t.Errorf("-bpw with -bits: exit %d, want 2", code)
	}
}
