package model

import (
	"fmt"
	"os"
	"path/filepath"
)

// AtomicFile is an output file written under a temporary name next to its
// destination and renamed into place by Commit, so that readers never see a
// half-written file and a failed run leaves nothing behind.
type AtomicFile struct {
	*os.File
	path string
}

// CreateAtomic starts writing path.
func CreateAtomic(path string) (*AtomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return &AtomicFile{File: f, path: path}, nil
}

// Commit flushes the file to disk and moves it to its destination (mode
// 0644, as os.Create would give under the usual umask). On error the
// temporary file is removed.
func (f *AtomicFile) Commit() error {
	err := f.Chmod(0o644)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("model: writing %s: %w", f.path, err)
	}
	return nil
}

// Abort removes the temporary file.
func (f *AtomicFile) Abort() {
	f.Close()
	os.Remove(f.Name())
}

// WriteFileAtomic writes data to path through an AtomicFile.
func WriteFileAtomic(path string, data []byte) error {
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("model: writing %s: %w", path, err)
	}
	return f.Commit()
}
