package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cafeq/cafeq/kernels"
)

// TestReportFile: -report prints its table at the end, and report.json has
// one key style (snake_case), format names as everywhere else, units and
// the settings it was made with.
func TestReportFile(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "eval.txt")
	os.WriteFile(text, []byte("Once upon a time there was a small red fox. The fox liked to run in the tall grass."), 0o644)
	code, out, stderr := run(t, "quantize", "-m", tiny, "-o", filepath.Join(dir, "m.cq"), "-method", "rtn", "-block", "64", "-bits", "4", "-group", "32",
		"-report", filepath.Join(dir, "rep"), "-eval", text, "-eval-ctx", "16")
	if code != 0 {
		t.Fatal(stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || !strings.Contains(lines[len(lines)-4], "mean rel err") || !strings.HasPrefix(lines[len(lines)-3], "rtn ") ||
		!strings.HasPrefix(lines[len(lines)-2], "hadamard b64 ") || !strings.Contains(lines[len(lines)-1], "quality on") {
		t.Errorf("no summary table at the end of the output:\n%s", out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "rep", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z0-9_]+$`)
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !snake.MatchString(k) {
					t.Errorf("report.json key %q is not snake_case", k)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	var rep struct {
		Units   map[string]string `json:"units"`
		Methods []struct {
			Grid    string `json:"grid"`
			Tensors []struct {
				Grid string `json:"grid"`
			} `json:"tensors"`
		} `json:"methods"`
	}
	json.Unmarshal(data, &rep)
	var raw struct {
		Settings map[string]any `json:"settings"`
	}
	json.Unmarshal(data, &raw)
	for _, k := range []string{"version", "created", "format", "steps", "seed", "eval_file", "eval_ctx"} {
		if _, ok := raw.Settings[k]; !ok {
			t.Errorf("settings lack %s: %v", k, raw.Settings)
		}
	}
	if raw.Settings["format"] != "q4_g32_asym" || raw.Settings["eval_file"] != text || raw.Settings["eval_ctx"] != 16.0 {
		t.Errorf("settings %v", raw.Settings)
	}
	for _, u := range []string{"rel_err", "kld", "seconds", "file_bytes"} {
		if rep.Units[u] == "" {
			t.Errorf("no unit for %s", u)
		}
	}
	// Format names as kernels writes them everywhere: q4_g32_asym, q4_g32.
	isFormat := func(s string) bool {
		f, err := kernels.ParseFormat(s)
		return err == nil && f.String() == s
	}
	for _, m := range rep.Methods {
		if !isFormat(m.Grid) || len(m.Tensors) == 0 || !isFormat(m.Tensors[0].Grid) {
			t.Errorf("format names %q / %+v", m.Grid, m.Tensors[:min(1, len(m.Tensors))])
		}
	}
}

// TestReportFileBudget: with a size budget (quantize's default) the report
// records the budget instead of one format.
func TestReportFileBudget(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := run(t, "quantize", "-m", tiny, "-o", filepath.Join(dir, "m.cq"), "-method", "rtn", "-report", filepath.Join(dir, "rep")); code != 0 {
		t.Fatal(stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, "rep", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Settings map[string]any `json:"settings"`
	}
	if err := json.Unmarshal(data, &raw); err != nil || raw.Settings["bpw_target"] != 4.5 {
		t.Errorf("settings %v (%v)", raw.Settings, err)
	}
}
