//go:build unix

package model

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cafeq/cafeq/model/internal/regfile"
)

// lockTemp takes an exclusive lock on a temporary file being written; the
// kernel drops it when the process ends, however it ends.
func lockTemp(f *os.File) { _ = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }

// removeStaleTemps removes the temporary files of path's destination that no
// process holds locked: left by a run that was killed.
func removeStaleTemps(path string) {
	dir, prefix := filepath.Dir(path), tempPrefix(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		f, _, err := regfile.Open(name) // never blocks, even on a FIFO swapped in
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(name) // unlocked: its writer is gone
		}
		f.Close()
	}
}
