package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/runtime/eval"
)

// run invokes the CLI in-process and returns exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cafeq(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

const tiny = "../../testdata/gemma2-tiny"

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.cq")
	os.WriteFile(garbage, []byte("this is not a model"), 0o644)
	cases := []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"nosuch"}, 2},
		{[]string{"run"}, 2},
		{[]string{"run", "-m", tiny, "-p", "x", "-temp", "-1"}, 2},
		{[]string{"run", "-m", tiny, "-bogus"}, 2},
		{[]string{"run", "-m", tiny, "-p", "x", "y"}, 2},
		{[]string{"run", "-m", tiny, "x", "y"}, 2},
		{[]string{"run", "-m", tiny, "-kv", "q8", "x"}, 2},
		{[]string{"bench", "-m", tiny, "-kv", "f64"}, 2},
		{[]string{"run", "-m", filepath.Join(dir, "missing"), "-p", "x"}, 1},
		{[]string{"run", "-m", garbage, "-p", "x"}, 1},
		{[]string{"tokenize", "-m", tiny}, 2},
		{[]string{"logits", "-m", tiny, "-ids", "2,x", "-o", filepath.Join(dir, "a.npy")}, 2},
		{[]string{"logits", "-m", tiny, "-ids", "2,100000", "-o", filepath.Join(dir, "a.npy")}, 1},
		{[]string{"perplexity", "-m", tiny, "-f", filepath.Join(dir, "missing.txt")}, 1},
		{[]string{"inspect", garbage}, 1},
		{[]string{"inspect", "-verify", tiny}, 1},
		{[]string{"quantize", "-m", tiny, "-o", filepath.Join(dir, "x.cq"), "-bits", "5"}, 2},
		{[]string{"run", "-h"}, 0},
	}
	for _, c := range cases {
		code, _, stderr := run(t, c.args...)
		if code != c.code {
			t.Errorf("cafeq %v: exit %d, want %d (stderr %q)", c.args, code, c.code, stderr)
		}
		if code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("cafeq %v: error is not one line: %q", c.args, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.npy")); err == nil {
		t.Error("a failed logits run left its output behind")
	}
}

func TestTokenize(t *testing.T) {
	code, out, _ := run(t, "tokenize", "-m", tiny, "-bos", "Once upon a time")
	if code != 0 || strings.TrimSpace(out) != "[2,400,314,386,264,262,376]" {
		t.Fatalf("exit %d, %q", code, out)
	}
}

// TestQuantizeRunPipeline quantizes the tiny golden model, checks the file,
// and runs run, logits, perplexity -ref and bench on it.
func TestQuantizeRunPipeline(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte("Once upon a time there was a small red fox. The fox liked to run in the tall grass."), 0o644)
	for _, method := range []string{"rtn", "hadamard", "cafeq"} {
		cq := filepath.Join(dir, method+".cq")
		args := []string{"quantize", "-m", tiny, "-o", cq, "-bits", "4", "-group", "32", "-method", method, "-block", "64", "-steps", "5", "-json"}
		var sum quantizeSummary
		if code, out, stderr := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		} else if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.FileBytes == 0 {
			t.Fatalf("quantize -json: %q %v", out, err)
		}
		if code, _, stderr := run(t, "inspect", "-verify", cq); code != 0 {
			t.Fatalf("inspect -verify: %s", stderr)
		}
		// Both commands count the same bits; q4_g32_asym is 5 bits per
		// weight before M⁻¹, which only rtn has none of.
		code, out, stderr := run(t, "inspect", "-json", cq)
		var info inspectJSON
		if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
			t.Fatalf("inspect -json: exit %d %q %s", code, out, stderr)
		}
		if info.Size != sum.Size || sum.LinearBPW != info.Size.LinearBPW || len(info.Tensors) == 0 {
			t.Errorf("%s: inspect counts %+v, quantize %+v", method, info.Size, sum.Size)
		}
		if bpw := info.Size.LinearBPW; (method == "rtn") != (bpw == 5) || bpw < 5 {
			t.Errorf("%s: %.3f bits per linear weight", method, bpw)
		}
		code, withFlag, stderr := run(t, "run", "-m", cq, "-p", "Once upon", "-n", "8", "-temp", "0")
		if code != 0 || withFlag == "" {
			t.Fatalf("run: exit %d %s", code, stderr)
		}
		if code, out, stderr := run(t, "run", "-m", cq, "-n", "8", "-temp", "0", "Once upon"); code != 0 || out != withFlag {
			t.Fatalf("run with the prompt as an argument: exit %d, %q, want %q; %s", code, out, withFlag, stderr)
		}
		code, out, stderr = run(t, "perplexity", "-m", cq, "-ref", tiny, "-f", text, "-ctx", "16", "-json")
		if code != 0 {
			t.Fatalf("perplexity: %s", stderr)
		}
		var res eval.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.KLD == nil || res.Top1Agree == nil {
			t.Fatalf("perplexity -json: %q %v", out, err)
		}
		t.Logf("%s: ppl %.3f, ref %.3f, kld %.5f, top-1 %.3f", method, res.PPL, *res.RefPPL, *res.KLD, *res.Top1Agree)
		if *res.Top1Agree < 0.8 {
			t.Errorf("%s: 4-bit top-1 agreement %.3f on the tiny model", method, *res.Top1Agree)
		}
	}
	npy := filepath.Join(dir, "l.npy")
	if code, _, stderr := run(t, "logits", "-m", filepath.Join(dir, "cafeq.cq"), "-p", "Once upon", "-o", npy); code != 0 {
		t.Fatalf("logits: %s", stderr)
	}
	// depth 0 (llama-bench's default), inside the prompt, and beyond it
	for _, depth := range []string{"0", "5", "12"} {
		if code, out, stderr := run(t, "bench", "-m", filepath.Join(dir, "cafeq.cq"), "-p", "8", "-n", "4", "-d", depth, "-rounds", "1", "-json"); code != 0 {
			t.Fatalf("bench -d %s: %s", depth, stderr)
		} else {
			var b benchResult
			if err := json.Unmarshal([]byte(out), &b); err != nil || b.DecodeTokS <= 0 || b.TransformOverheadPct == nil || fmt.Sprint(b.Depth) != depth {
				t.Fatalf("bench -d %s -json: %q %v", depth, out, err)
			}
			if goruntime.GOOS == "linux" && (b.CPUsBusy == nil || *b.CPUsBusy <= 0 || b.CPUWaitPct == nil || *b.CPUWaitPct < 0) {
				t.Errorf("bench -json on Linux: no CPU use reported: %q", out)
			}
		}
	}
	if code, _, _ := run(t, "bench", "-m", filepath.Join(dir, "cafeq.cq"), "-d", "-1"); code != 2 {
		t.Errorf("bench -d -1: exit %d, want 2", code)
	}
}

// TestQuantizeSuperFlag: with -bits, -k stores every linear weight on the
// superblock grid and is refused with groups other than 32; without it no
// tensor is on one.
func TestQuantizeSuperFlag(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		k    bool
		want string
	}{{true, "q4_k_asym"}, {false, "q4_g32_asym"}} {
		cq := filepath.Join(dir, c.want+".cq")
		if code, _, stderr := run(t, "quantize", "-m", tiny, "-o", cq, "-bits", "4", "-method", "rtn", fmt.Sprintf("-k=%v", c.k)); code != 0 {
			t.Fatalf("-k=%v: exit %d: %s", c.k, code, stderr)
		}
		code, out, stderr := run(t, "inspect", "-json", cq)
		var info inspectJSON
		if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
			t.Fatalf("inspect -json: exit %d %s", code, stderr)
		}
		linear := 0
		for _, ts := range info.Tensors {
			if _, kind, ok := model.SplitLayerName(ts.Name); ok && !strings.HasSuffix(kind, "norm") {
				linear++
				if ts.Format != c.want {
					t.Errorf("-bits 4 -k=%v: %s is %s, want %s", c.k, ts.Name, ts.Format, c.want)
				}
			}
		}
		if linear == 0 {
			t.Errorf("-bits 4 -k=%v: no linear tensors in the file", c.k)
		}
	}
	if code, _, _ := run(t, "quantize", "-m", tiny, "-o", filepath.Join(dir, "x.cq"), "-bits", "4", "-k", "-group", "64"); code != 2 {
		t.Errorf("-k -group 64: exit %d, want 2", code)
	}
}

// TestCorruptModelFile flips bytes in a quantized file and truncates it:
// loading must fail with an error (exit 1), never panic.
func TestCorruptModelFile(t *testing.T) {
	dir := t.TempDir()
	cq := filepath.Join(dir, "m.cq")
	if code, _, stderr := run(t, "quantize", "-m", tiny, "-o", cq, "-method", "rtn"); code != 0 {
		t.Fatal(stderr)
	}
	data, _ := os.ReadFile(cq)
	for _, cut := range []int{10, 100, len(data) / 2, len(data) - 1} {
		p := filepath.Join(dir, "cut.cq")
		os.WriteFile(p, data[:cut], 0o644)
		if code, _, _ := run(t, "run", "-m", p, "-p", "x", "-n", "1"); code != 1 {
			t.Errorf("truncated at %d: exit %d", cut, code)
		}
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)-100] ^= 0xff
	p := filepath.Join(dir, "flip.cq")
	os.WriteFile(p, bad, 0o644)
	if code, _, stderr := run(t, "inspect", "-verify", p); code != 1 || !strings.Contains(stderr, "checksum") {
		t.Errorf("flipped byte: exit %d, %q", code, stderr)
	}
}
