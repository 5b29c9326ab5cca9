//go:build unix

package model

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestReadTruncatedMapping: reading a mapped file that was truncated meanwhile
// faults (SIGBUS); the readers turn that into ErrFileChanged.
func TestReadTruncatedMapping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.cq")
	newCQSample(1).write(t, path, nil)
	f, err := OpenCQ(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	tensors := f.Tensors()
	last := tensors[len(tensors)-1]
	if err := f.ReadTensor(last, make([]byte, last.Size), true); !errors.Is(err, ErrFileChanged) {
		t.Fatalf("ReadTensor of a truncated file: %v, want ErrFileChanged", err)
	}
	if err := f.Verify(); !errors.Is(err, ErrFileChanged) {
		t.Fatalf("Verify of a truncated file: %v, want ErrFileChanged", err)
	}
}
