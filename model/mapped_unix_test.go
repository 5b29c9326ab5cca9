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

// TestStaleTempFilesRemoved: a killed quantize run left .NAME.cq.tmp-N files
// as large as the model that nothing removed. Creating the same destination
// again removes those no live writer holds, and keeps one being written.
func TestStaleTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "m.cq")
	stale := filepath.Join(dir, ".m.cq.tmp-123456")
	os.WriteFile(stale, make([]byte, 1000), 0o600)
	other := filepath.Join(dir, ".other.cq.tmp-1")
	os.WriteFile(other, nil, 0o600)
	live, err := CreateAtomic(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary file still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another destination's temporary file was removed: %v", err)
	}
	second, err := CreateAtomic(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Abort()
	if _, err := os.Stat(live.Name()); err != nil {
		t.Errorf("a temporary file being written was removed: %v", err)
	}
	RemoveTempFiles()
	for _, f := range []*AtomicFile{live, second} {
		if _, err := os.Stat(f.Name()); !os.IsNotExist(err) {
			t.Errorf("RemoveTempFiles left %s", f.Name())
		}
	}
}

// TestCheckpointTruncatedWhileRead: a safetensors file truncated under an
// open checkpoint (while quantize reads it) gave SIGBUS; it is an error.
func TestCheckpointTruncatedWhileRead(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join("../testdata/gemma2-tiny", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), data, 0o644)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if err := os.Truncate(filepath.Join(dir, "model.safetensors"), 0); err != nil {
		t.Fatal(err)
	}
	tn, err := ck.Tensor(NameEmbed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.Float32s(); !errors.Is(err, ErrFileChanged) {
		t.Fatalf("Float32s of a truncated file: %v, want ErrFileChanged", err)
	}
	row := make([]float32, tn.Shape[1])
	if err := tn.RowFloat32s(tn.Shape[0]-1, row); !errors.Is(err, ErrFileChanged) {
		t.Fatalf("RowFloat32s of a truncated file: %v, want ErrFileChanged", err)
	}
}
