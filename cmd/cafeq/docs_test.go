package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestServeHelp: the default address is printed once, and the queue's real
// default, not "0".
func TestServeHelp(t *testing.T) {
	code, _, stderr := run(t, "serve", "-h")
	if code != 0 || strings.Count(stderr, "127.0.0.1:8080") != 1 || !strings.Contains(stderr, "(default 16)") {
		t.Errorf("serve -h: exit %d\n%s", code, stderr)
	}
}

// TestInspectTakesM: inspect takes -m like every other command, and the
// model last as before.
func TestInspectTakesM(t *testing.T) {
	code, withM, stderr := run(t, "inspect", "-m", shakespeare)
	if code != 0 {
		t.Fatal(stderr)
	}
	if code, last, _ := run(t, "inspect", shakespeare); code != 0 || last != withM {
		t.Errorf("inspect MODEL: exit %d, output differs from inspect -m MODEL", code)
	}
	if code, _, _ := run(t, "inspect", "-m", shakespeare, shakespeare); code != 2 {
		t.Errorf("inspect with two models: exit %d, want 2", code)
	}
}

// TestReadmeLogitsExample runs README's logits example on the shipped model.
func TestReadmeLogitsExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`cafeq logits -m (testdata/\S+) -ids (\S+) -o out\.npy`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no logits -ids example on the shipped model")
	}
	out := filepath.Join(t.TempDir(), "out.npy")
	if code, _, stderr := run(t, "logits", "-m", filepath.Join("../..", string(m[1])), "-ids", string(m[2]), "-o", out); code != 0 {
		t.Errorf("README's example fails: %s", stderr)
	}
}
