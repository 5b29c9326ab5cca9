//go:build !unix

package model

import (
	"fmt"
	"math"

	"github.com/cafeq/cafeq/model/internal/regfile"
)

// MappedFile is a read-only view of a whole file; without mmap it is read into memory.
type MappedFile struct {
	Data []byte
}

// MapFile reads path into memory.
func MapFile(path string) (*MappedFile, error) {
	data, err := regfile.ReadFile(path, math.MaxInt)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return &MappedFile{Data: data}, nil
}

// Close releases the data.
func (m *MappedFile) Close() error {
	if m != nil {
		m.Data = nil
	}
	return nil
}

// Release is a no-op without mmap.
func (m *MappedFile) Release(b []byte) {}
