package model

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNPYRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.npy")
	w, err := CreateNPY(path, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]float32{1, 2, 3})
	w.Write([]float32{4, 5, -6.5})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	shape, v, err := ReadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 2 || shape[0] != 2 || shape[1] != 3 || v[5] != -6.5 {
		t.Fatalf("got %v %v", shape, v)
	}
	// The golden logits written by numpy parse too.
	shape, v, err = ReadNPY("../testdata/gemma2-tiny/logits.npy")
	if err != nil || len(shape) != 2 || shape[0]*shape[1] != len(v) {
		t.Fatalf("golden: %v %v", shape, err)
	}
}

func TestNPYIncompleteLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	w, _ := CreateNPY(filepath.Join(dir, "a.npy"), 4)
	w.Write([]float32{1})
	if err := w.Close(); err == nil {
		t.Fatal("incomplete array accepted")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left files behind: %v", ents)
	}
}

func FuzzParseNPY(f *testing.F) {
	if data, err := os.ReadFile("../testdata/gemma2-tiny/logits.npy"); err == nil {
		f.Add(data[:256])
	}
	f.Add([]byte("\x93NUMPY\x01\x00\x10\x00{'shape': (1,)}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		shape, v, err := parseNPY(data)
		if err == nil {
			n := 1
			for _, d := range shape {
				n *= d
			}
			if n != len(v) {
				t.Fatalf("shape %v but %d values", shape, len(v))
			}
		}
	})
}
