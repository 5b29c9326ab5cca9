package model

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// AtomicFile is an output file written under a temporary name next to its
// destination and renamed into place by Commit, so that readers never see a
// half-written file and a failed run leaves nothing behind.
type AtomicFile struct {
	*os.File
	path string
}

// CreateAtomic starts writing path. The temporary file, .NAME.tmp-N next
// to path, is locked while it is written (on unix), so that temporary files
// a killed run left behind for the same destination, which nobody holds
// locked, are recognised as stale and removed here.
func CreateAtomic(path string) (*AtomicFile, error) {
	removeStaleTemps(path)
	// Creating and registering happen under one lock, so a signal that
	// arrives as soon as the file exists still finds it in liveTemps.
	liveTemps.Lock()
	defer liveTemps.Unlock()
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix(path)+"*")
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	lockTemp(f)
	liveTemps.names[f.Name()] = struct{}{}
	return &AtomicFile{File: f, path: path}, nil
}

func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// liveTemps holds the names of the temporary files being written, for
// RemoveTempFiles.
var liveTemps = struct {
	sync.Mutex
	names map[string]struct{}
}{names: map[string]struct{}{}}

func forgetTemp(name string) {
	liveTemps.Lock()
	delete(liveTemps.names, name)
	liveTemps.Unlock()
}

// RemoveTempFiles removes every temporary file still being written, for a
// command interrupted by a signal (SIGINT, SIGTERM) before it exits.
func RemoveTempFiles() {
	liveTemps.Lock()
	defer liveTemps.Unlock()
	for name := range liveTemps.names {
		os.Remove(name)
	}
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
	forgetTemp(f.Name())
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
	forgetTemp(f.Name())
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

// CheckOutputFile fails, before any long work starts, when the file out
// cannot or must not be written: its directory does not exist, or writing it
// would replace an input (see CheckOutputDir).
func CheckOutputFile(out string, inputs ...string) error {
	if _, err := os.Stat(out); err != nil {
		if dir := filepath.Dir(out); !isDir(dir) {
			return fmt.Errorf("model: cannot write %s: directory %s does not exist", out, dir)
		}
	}
	return CheckOutputDir(out, inputs...)
}

// CheckOutputDir fails when writing out would replace one of the inputs:
// out, resolved through symlinks and hard links (os.SameFile), is an input
// file, a file of an input directory, or an input directory itself. An
// output that does not exist yet replaces nothing (a directory output is
// created with its parents); one that exists must be a regular file or a
// directory.
func CheckOutputDir(out string, inputs ...string) error {
	ost, err := os.Stat(out)
	if err != nil {
		return nil // nothing there yet, or unreachable: the write itself will say
	}
	if !ost.IsDir() && !ost.Mode().IsRegular() {
		// Renaming a file onto /dev/null or a FIFO would replace it.
		return fmt.Errorf("model: output %s exists and is not a regular file (%s); refusing to replace it", out, ost.Mode().Type())
	}
	for _, in := range inputs {
		ist, err := os.Stat(in)
		if err != nil {
			continue
		}
		if os.SameFile(ost, ist) {
			return fmt.Errorf("model: output %s is the input %s; refusing to overwrite it", out, in)
		}
		if !ist.IsDir() {
			continue
		}
		entries, err := os.ReadDir(in)
		if err != nil {
			return fmt.Errorf("model: %w", err)
		}
		for _, e := range entries {
			p := filepath.Join(in, e.Name())
			if st, err := os.Stat(p); err == nil && os.SameFile(ost, st) {
				return fmt.Errorf("model: output %s is %s of the input %s; refusing to overwrite it", out, e.Name(), in)
			}
		}
	}
	return nil
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}
