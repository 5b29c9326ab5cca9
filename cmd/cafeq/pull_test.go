package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cafeq/cafeq/model/hub/hubtest"
)

// TestPullAndRunHF: `cafeq pull` downloads a repository from a Hub-like
// server into Hugging Face's cache and quantizes it into cafeq's; `cafeq run
// hf:REPO` then reuses both, without a download or a second quantization.
func TestPullAndRunHF(t *testing.T) {
	repo, err := hubtest.Dir(shakespeare)
	if err != nil {
		t.Fatal(err)
	}
	gated, _ := hubtest.Dir(shakespeare)
	gated.Token = "hf_good"
	hub := hubtest.New(map[string]*hubtest.Repo{"bard/shakespeare": repo, "google/gated": gated})
	defer hub.Close()
	home := t.TempDir()
	t.Setenv("HF_ENDPOINT", hub.URL)
	t.Setenv("HF_HOME", filepath.Join(home, "hf"))
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_TOKEN", "")
	t.Setenv("CAFEQ_HOME", filepath.Join(home, "cafeq"))

	code, out, stderr := run(t, "pull", "-method", "rtn", "-bits", "4", "-group", "64", "bard/shakespeare")
	if code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	cq := strings.TrimSpace(out)
	if !strings.HasPrefix(cq, filepath.Join(home, "cafeq", "models", "bard--shakespeare")) || !strings.HasSuffix(cq, "-rtn-q4_g64.cq") {
		t.Fatalf("pull wrote %q", cq)
	}
	if _, err := os.Stat(filepath.Join(home, "hf", "hub", "models--bard--shakespeare", "snapshots", hub.Commit, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "model.safetensors 100%") || !strings.Contains(stderr, "MiB/s") {
		t.Errorf("no download progress with rate in:\n%s", stderr)
	}
	st, _ := os.Stat(cq)
	downloads := len(hub.Downloads())

	code, viaHF, stderr := run(t, "run", "hf:bard/shakespeare", "-method", "rtn", "-bits", "4", "-group", "64", "-n", "8", "-temp", "0", "ROMEO:")
	if code != 0 {
		t.Fatalf("run hf: exit %d: %s", code, stderr)
	}
	_, direct, _ := run(t, "run", "-m", cq, "-n", "8", "-temp", "0", "ROMEO:")
	if viaHF != direct || viaHF == "" {
		t.Errorf("run hf: %q, the .cq directly %q", viaHF, direct)
	}
	if st2, _ := os.Stat(cq); !st2.ModTime().Equal(st.ModTime()) || len(hub.Downloads()) != downloads || strings.Contains(stderr, "quantizing") {
		t.Errorf("run hf: downloaded or quantized again: %s", stderr)
	}

	code, _, stderr = run(t, "pull", "-method", "rtn", "google/gated")
	if code != 1 || !strings.Contains(stderr, "HF_TOKEN") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("gated pull without a token: exit %d, %q", code, stderr)
	}
	if code, _, _ := run(t, "pull", "not a repo"); code != 2 {
		t.Errorf("pull of a bad name: exit %d, want 2", code)
	}
	// Without size flags, quantize's default size (-bpw) is used and named.
	code, out, stderr = run(t, "pull", "-method", "rtn", "bard/shakespeare")
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "-rtn-default.cq") {
		t.Errorf("pull with quantize's defaults: exit %d, %q: %s", code, out, stderr)
	}
	if code, _, _ := run(t, "pull", "-bpw", "4.5", "-bits", "4", "bard/shakespeare"); code != 2 {
		t.Errorf("-bpw with -bits: exit %d, want 2", code)
	}
}
