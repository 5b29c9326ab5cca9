//go:build !unix

package model

import "os"

// Without flock a stale temporary file cannot be told from one being
// written, so none is removed.
func lockTemp(f *os.File)          {}
func removeStaleTemps(path string) {}
