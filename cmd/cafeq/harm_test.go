//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQuantizeNeverOverwritesItsInput: `quantize -m CK -o CK/model.safetensors`
// exited 0 and left CK unloadable; so did -o CK/config.json. Any output that
// resolves, through symlinks or hard links, to an input is refused, and the
// input is left as it was.
func TestQuantizeNeverOverwritesItsInput(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck")
	os.Mkdir(ck, 0o755)
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.model"} {
		data, err := os.ReadFile(filepath.Join(tiny, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(ck, f), data, 0o644)
	}
	before, _ := os.ReadFile(filepath.Join(ck, "model.safetensors"))
	os.Symlink(ck, filepath.Join(dir, "link"))
	os.Link(filepath.Join(ck, "config.json"), filepath.Join(dir, "hard.json"))
	// An existing non-regular output (a FIFO here, a device like /dev/null alike)
	// must not be replaced by the rename.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	text := filepath.Join(dir, "eval.txt")
	os.WriteFile(text, []byte("to be or not to be"), 0o644)
	for _, out := range []string{
		filepath.Join(ck, "model.safetensors"),
		filepath.Join(ck, "config.json"),
		filepath.Join(ck, "tokenizer.model"),
		filepath.Join(dir, "link", "model.safetensors"),
		filepath.Join(dir, "hard.json"),
		ck,
		fifo,
	} {
		code, _, stderr := run(t, "quantize", "-m", ck, "-o", out, "-bits", "4", "-method", "rtn")
		if code == 0 || !strings.Contains(stderr, "refusing") && !strings.Contains(stderr, "directory") {
			t.Errorf("-o %s: exit %d, stderr %q", out, code, stderr)
		}
	}
	code, _, stderr := run(t, "quantize", "-m", ck, "-o", text, "-bits", "4", "-method", "rtn", "-report", filepath.Join(dir, "rep"), "-eval", text)
	if code == 0 || !strings.Contains(stderr, "refusing") {
		t.Errorf("-o the -eval text: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = run(t, "outliers", "-m", ck, "-o", filepath.Join(dir, "link"))
	if code == 0 || !strings.Contains(stderr, "refusing") {
		t.Errorf("outliers -o the input: exit %d, stderr %q", code, stderr)
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO given as -o was replaced: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(ck, "model.safetensors"))
	if !bytes.Equal(before, after) {
		t.Fatal("the input checkpoint changed")
	}
	if code, _, stderr := run(t, "inspect", ck); code != 0 {
		t.Fatalf("the input no longer loads: %s", stderr)
	}
}

// TestQuantizeMissingOutputDirFailsFirst: -o in a directory that does not
// exist used to fail only after the whole model was quantized.
func TestQuantizeMissingOutputDirFailsFirst(t *testing.T) {
	out := filepath.Join(t.TempDir(), "no-such-dir", "m.cq")
	code, stdout, stderr := run(t, "quantize", "-m", tiny, "-o", out, "-method", "rtn")
	if code == 0 || !strings.Contains(stderr, "does not exist") || strings.Contains(stderr, "100%") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	out = filepath.Join(t.TempDir(), "no-such-dir", "l.npy")
	if code, _, stderr := run(t, "logits", "-m", tiny, "-o", out, "-p", "hi"); code == 0 || !strings.Contains(stderr, "does not exist") {
		t.Fatalf("logits: exit %d, stderr %q", code, stderr)
	}
}

// TestQuantizeSignalRemovesPartialOutput: an interrupted quantize left its
// hidden .NAME.cq.tmp-N file, up to the model's size. On SIGTERM (and
// SIGINT) it is removed before the process exits.
func TestQuantizeSignalRemovesPartialOutput(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	if os.Getenv("CAFEQ_TEST_MAIN") == "1" {
		os.Args = append([]string{"cafeq"}, strings.Fields(os.Getenv("CAFEQ_TEST_ARGS"))...)
		main()
		return
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		dir := t.TempDir()
		out := filepath.Join(dir, "m.cq")
		cmd := exec.Command(os.Args[0], "-test.run=^TestQuantizeSignalRemovesPartialOutput$")
		// CafeQ with many steps: slow enough to be caught while writing.
		cmd.Env = append(os.Environ(), "CAFEQ_TEST_MAIN=1", "CAFEQ_TEST_ARGS=quantize -m "+tiny+" -o "+out+" -method cafeq -steps 100000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if m, _ := filepath.Glob(filepath.Join(dir, ".m.cq.tmp-*")); len(m) > 0 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("no temporary file appeared")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(sig) {
			t.Errorf("%v: exit %v, want %d", sig, err, 128+int(sig))
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("%v: left %v", sig, left)
		}
	}
}
