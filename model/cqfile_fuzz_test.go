package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
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
	// What the format rules out must not parse: a header that is not UTF-8,
	// a checksum not in lowercase hex, an unknown tokenizer kind.
	header := data[cqPrefixSize : cqPrefixSize+binary.LittleEndian.Uint64(data[16:])]
	if !utf8.Valid(header) {
		t.Fatal("accepted a header that is not UTF-8")
	}
	for _, m := range regexp.MustCompile(`"crc32c":\s*"([^"]*)"`).FindAllSubmatch(header, -1) {
		if !regexp.MustCompile(`^[0-9a-f]{8}$`).Match(m[1]) {
			t.Fatalf("accepted crc32c %q", m[1])
		}
	}
	if k := cf.Header.Tokenizer.Kind; len(cf.Header.Tokenizer.Data) > 0 && k != TokenizerSentencePiece && k != TokenizerHFJSON {
		t.Fatalf("accepted tokenizer kind %q", k)
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

// TestWriteCQFuzzSeeds regenerates the hand-made seeds of FuzzReadCQ for the
// rules added after a review (CAFEQ_WRITE_SEEDS=1 go test -run WriteCQFuzzSeeds).
func TestWriteCQFuzzSeeds(t *testing.T) {
	if os.Getenv("CAFEQ_WRITE_SEEDS") == "" {
		t.Skip("set CAFEQ_WRITE_SEEDS=1 to rewrite the seeds")
	}
	const tensor = `{"name":"a","format":"f32","shape":[2,8],"offset":0,"size":64,"crc32c":"CRC"}`
	base := `{"config":{},"quantization":{"method":"none","bits":0,"group":0,"asym":false},"tensors":[` + tensor + `]}`
	crc := fmt.Sprintf("%08x", crc32.Checksum(make([]byte, 64), castagnoli))
	good := strings.Replace(base, "CRC", crc, 1)
	seeds := map[string]string{
		"crc_uppercase":          strings.Replace(base, "CRC", strings.ToUpper(crc), 1),
		"header_not_utf8":        strings.Replace(good, `"none"`, "\"n\xffne\"", 1),
		"tokenizer_kind_unknown": strings.Replace(good, `"tensors"`, `"tokenizer":{"kind":"tokenizer.bin","offset":64,"size":5,"crc32c":"`+fmt.Sprintf("%08x", crc32.Checksum(make([]byte, 5), castagnoli))+`"},"tensors"`, 1),
	}
	if _, err := ParseCQ(craftCQ(good, 64)); err != nil {
		t.Fatalf("the valid crafted file is rejected: %v", err)
	}
	for name, header := range seeds {
		dataLen := int64(64)
		if strings.Contains(header, "tokenizer") {
			dataLen = 128 // the tokenizer's 5 zero bytes after the tensor
		}
		data := craftCQ(header, dataLen)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join("testdata/fuzz/FuzzReadCQ", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
