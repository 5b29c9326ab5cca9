package model

import (
	"errors"
	"runtime/debug"
)

// ErrFileChanged marks a mapped file that was truncated while it was read:
// its pages past the new end fault (SIGBUS), which ReadMapped and the other
// readers here turn into this error instead of a crash.
var ErrFileChanged = errors.New("model file was truncated while it was read")

// guardMapped runs read, which reads a memory-mapped file, and returns
// ErrFileChanged if a page of it faults. Any other panic is re-raised.
func guardMapped(read func()) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); fault {
				err = ErrFileChanged
				return
			}
			panic(r)
		}
	}()
	read()
	return nil
}

// ReadMapped copies src, a part of a mapped file, into dst (the lengths must
// match). A fault while reading is ErrFileChanged, not a crash.
func ReadMapped(dst, src []byte) error {
	if len(dst) != len(src) {
		panic("model: ReadMapped: lengths differ")
	}
	return guardMapped(func() { copy(dst, src) })
}
