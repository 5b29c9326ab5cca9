//go:build unix

package model

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MappedFile is a read-only view of a whole file. On unix it is memory-mapped,
// so opening a multi-gigabyte model costs no reads until pages are touched.
type MappedFile struct {
	Data   []byte
	mapped bool
}

// MapFile maps path read-only. An empty file gives an empty Data.
func MapFile(path string) (*MappedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("model: %s is not a regular file", path)
	}
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
