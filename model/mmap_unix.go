//go:build unix

package model

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cafeq/cafeq/model/internal/regfile"
)

// MappedFile is a read-only view of a whole file. On unix it is memory-mapped,
// so opening a multi-gigabyte model costs no reads until pages are touched.
type MappedFile struct {
	Data   []byte
	mapped bool
}

// MapFile maps path read-only. An empty file gives an empty Data.
func MapFile(path string) (*MappedFile, error) {
	f, st, err := regfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	size := st.Size()
	if size == 0 {
		return &MappedFile{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("model: %s is too large to map", path)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("model: mmap %s: %w", path, err)
	}
	return &MappedFile{Data: data, mapped: true}, nil
}

// Release tells the kernel that b, a part of Data, will not be read soon:
// its pages leave this process's resident set (they stay in the page cache,
// and reading b again faults them back in). A loader that copies a tensor
// into another layout calls it so the mapped original does not count twice.
func (m *MappedFile) Release(b []byte) {
	if m == nil || !m.mapped || len(b) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(&m.Data[0]))
	start := uintptr(unsafe.Pointer(&b[0]))
	if start < base || start+uintptr(len(b)) > base+uintptr(len(m.Data)) {
		return
	}
	page := uintptr(os.Getpagesize())
	lo := (start - base + page - 1) &^ (page - 1) // whole pages inside b only
	hi := (start - base + uintptr(len(b))) &^ (page - 1)
	if lo < hi {
		_ = unix.Madvise(m.Data[lo:hi], unix.MADV_DONTNEED) // advice only: failure changes nothing
	}
}

// Close unmaps the file; Data must not be used afterwards.
func (m *MappedFile) Close() error {
	if m == nil || !m.mapped {
		return nil
	}
	m.mapped = false
	data := m.Data
	m.Data = nil
	return unix.Munmap(data)
}
