package model

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/cafeq/cafeq/model/internal/regfile"
)

// NumPy .npy version 1.0 files, as `cafeq logits` writes them:
//
//	bytes [0, 6)    magic "\x93NUMPY"
//	bytes [6, 8)    version 1, 0
//	bytes [8, 10)   header length H, little-endian uint16
//	bytes [10, 10+H) ASCII dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (50, 512), }
//	                padded with spaces and a final '\n' so the data starts 64-byte aligned
//	then            the float32 values in C (row-major) order, little-endian

// ErrNPY marks a malformed or unsupported .npy file.
var ErrNPY = errors.New("unsupported npy file")

var npyShape = regexp.MustCompile(`'shape':\s*\(([0-9,\s]*)\)`)

// parseNPY reads a little-endian float32 array in C order and returns its
// shape and values.
func parseNPY(data []byte) (shape []int, values []float32, err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("model: npy: "+format+": %w", append(args, ErrNPY)...)
	}
	if len(data) < 10 || string(data[:6]) != "\x93NUMPY" {
		return nil, nil, bad("missing magic")
	}
	var hlen, start int
	switch data[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(data[8:10])), 10
	case 2, 3:
		if len(data) < 12 {
			return nil, nil, bad("truncated header")
		}
		hlen, start = int(binary.LittleEndian.Uint32(data[8:12])), 12
	default:
		return nil, nil, bad("version %d", data[6])
	}
	if hlen > len(data)-start {
		return nil, nil, bad("header length %d beyond the file", hlen)
	}
	header := string(data[start : start+hlen])
	if !strings.Contains(header, "'descr': '<f4'") {
		return nil, nil, bad("only little-endian float32 ('<f4') is supported")
	}
	if !strings.Contains(header, "'fortran_order': False") {
		return nil, nil, bad("only C order is supported")
	}
	m := npyShape.FindStringSubmatch(header)
	if m == nil {
		return nil, nil, bad("no shape in header")
	}
	count := 1
	for _, f := range strings.Split(m[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || (n > 0 && count > math.MaxInt32/n) {
			return nil, nil, bad("bad shape %q", m[1])
		}
		count *= n
		shape = append(shape, n)
	}
	body := data[start+hlen:]
	if len(body) != 4*count {
		return nil, nil, bad("shape %v needs %d bytes of data, file has %d", shape, 4*count, len(body))
	}
	values = make([]float32, count)
	for i := range values {
		values[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return shape, values, nil
}

// ReadNPY reads a float32 .npy file.
func ReadNPY(path string) ([]int, []float32, error) {
	data, err := regfile.ReadFile(path, math.MaxInt)
	if err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	return parseNPY(data)
}

// NPYWriter streams a float32 array of a known shape to a .npy file. Rows are
// appended with Write; Close checks the count and renames the temporary file
// into place, so an interrupted run leaves no half-written output.
type NPYWriter struct {
	f    *AtomicFile
	w    *bufio.Writer
	left int // values still expected
	buf  []byte
}

// CreateNPY starts a .npy file of the given shape.
func CreateNPY(path string, shape ...int) (*NPYWriter, error) {
	count := 1
	dims := make([]string, len(shape))
	for i, n := range shape {
		count *= n
		dims[i] = strconv.Itoa(n)
	}
	shapeText := strings.Join(dims, ", ")
	if len(shape) == 1 {
		shapeText += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shapeText)
	pad := 64 - (10+len(header)+1)%64
	if pad == 64 {
		pad = 0
	}
	header += strings.Repeat(" ", pad) + "\n"
	f, err := CreateAtomic(path)
	if err != nil {
		return nil, err
	}
	w := &NPYWriter{f: f, w: bufio.NewWriterSize(f, 1<<20), left: count}
	head := append([]byte("\x93NUMPY\x01\x00"), byte(len(header)), byte(len(header)>>8))
	w.w.Write(head)
	w.w.WriteString(header)
	return w, nil
}

// Write appends values in C order.
func (w *NPYWriter) Write(values []float32) error {
	if len(values) > w.left {
		return fmt.Errorf("model: npy: %d values more than the shape holds", len(values)-w.left)
	}
	w.left -= len(values)
	w.buf = w.buf[:0]
	for _, v := range values {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, math.Float32bits(v))
	}
	_, err := w.w.Write(w.buf)
	return err
}

// Close completes the file and moves it into place; on any error the
// temporary file is removed.
func (w *NPYWriter) Close() error {
	if w.left != 0 {
		w.f.Abort()
		return fmt.Errorf("model: npy: %d values missing", w.left)
	}
	if err := w.w.Flush(); err != nil {
		w.f.Abort()
		return fmt.Errorf("model: npy: %w", err)
	}
	return w.f.Commit()
}

// Abort removes the partial file.
func (w *NPYWriter) Abort() { w.f.Abort() }

var _ io.Closer = (*NPYWriter)(nil)
