package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"path/filepath"
	"testing"
)

// FuzzReadCQ feeds arbitrary bytes to the .cq parser. Seeds (valid files,
// truncations, foreign formats) are in testdata/fuzz/FuzzReadCQ. Each input
// is parsed twice: as is, and with its prefix repaired (file length and
// header checksum made to match), so that mutations reach the JSON and
// directory checks behind the checksum. Whatever parses must be consistent
// and acceptable to CQWriter.
func FuzzReadCQ(f *testing.F) {
	f.Add(sampleFile(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsedCQ(t, data)
		if len(data) >= cqPrefixSize && string(data[:len(cqMagic)]) == cqMagic {
			fixed := bytes.Clone(data)
			le := binary.LittleEndian
			le.PutUint64(fixed[24:], uint64(len(fixed)))
			if hlen := le.Uint64(fixed[16:]); hlen <= uint64(len(fixed)-cqPrefixSize) {
				le.PutUint32(fixed[12:], crc32.Checksum(fixed[cqPrefixSize:cqPrefixSize+hlen], castagnoli))
			}
			if cf := checkParsedCQ(t, fixed); cf != nil {
				rewriteCQ(t, cf)
			}
		}
	})
}

// checkParsedCQ parses data and checks the result's invariants; it returns
// the file when it parsed.
func checkParsedCQ(t *testing.T, data []byte) *CQFile {
	cf, err := ParseCQ(data)
	if err != nil {
		for _, sentinel := range []error{ErrBadMagic, ErrVersion, ErrTruncated, ErrChecksum, ErrMalformed} {
			if errors.Is(err, sentinel) {
				return nil
			}
		}
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	for _, tn := range cf.Tensors() {
		if tn.Offset%cqAlign != 0 || tn.Offset < cqPrefixSize || int64(len(tn.Data)) != tn.Size || tn.Offset+tn.Size > int64(len(data)) {
			t.Fatalf("tensor %q: offset %d size %d data %d in a %d-byte file", tn.Name, tn.Offset, tn.Size, len(tn.Data), len(data))
		}
		if &tn.Data[0] != &data[tn.Offset] {
			t.Fatalf("tensor %q: Data does not alias the file at its offset", tn.Name)
		}
		if got, err := cf.Tensor(tn.Name); err != nil || got.Offset != tn.Offset {
			t.Fatalf("Tensor(%q): %v", tn.Name, err)
		}
	}
	if err := cf.Verify(); err != nil && !errors.Is(err, ErrChecksum) {
		t.Fatalf("Verify: %v", err)
	}
	return cf
}

// rewriteCQ feeds a parsed file to CQWriter, which must accept whatever the
// reader does. It aborts instead of closing: Close's fsync would slow the
// fuzzer down a hundredfold, and the writer's output is checked by the
// round-trip tests.
func rewriteCQ(t *testing.T, cf *CQFile) {
	list := cf.Tensors()
	specs := make([]CQTensorSpec, len(list))
	for i, tn := range list {
		specs[i] = tn.CQTensorSpec
	}
	w, err := CreateCQ(filepath.Join(t.TempDir(), "re.cq"), cf.Header, specs)
	if err != nil {
		t.Fatalf("CreateCQ rejects what ParseCQ accepted: %v", err)
	}
	defer w.Abort()
	for _, tn := range list {
		if err := w.WriteTensor(tn.Name, tn.Data); err != nil {
			t.Fatal(err)
		}
	}
}
