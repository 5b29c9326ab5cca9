//go:build unix

package model

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFIFOInputsRefused: a FIFO given as the model file, config.json or the
// safetensors file made every command wait for a writer forever. Each must be
// refused at once.
func TestFIFOInputsRefused(t *testing.T) {
	mkfifo := func(path string) {
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			t.Skip("mkfifo:", err)
		}
	}
	within := func(what string, f func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s: got %v, want a not-a-regular-file error", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: blocked on a FIFO", what)
		}
	}
	dir := t.TempDir()
	cq := filepath.Join(dir, "m.cq")
	mkfifo(cq)
	within("OpenCQ", func() error { _, err := OpenCQ(cq); return err })

	ck := filepath.Join(dir, "ck")
	os.Mkdir(ck, 0o755)
	mkfifo(filepath.Join(ck, "config.json"))
	within("config.json", func() error { _, err := OpenCheckpoint(ck); return err })

	cfg, _ := os.ReadFile("../testdata/gemma2-tiny/config.json")
	os.Remove(filepath.Join(ck, "config.json"))
	os.WriteFile(filepath.Join(ck, "config.json"), cfg, 0o644)
	mkfifo(filepath.Join(ck, "model.safetensors"))
	within("model.safetensors", func() error { _, err := OpenCheckpoint(ck); return err })
	// Unblock nothing: the FIFOs were never opened for reading.
}
