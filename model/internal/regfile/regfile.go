// Package regfile opens the files a model is read from (model files,
// config.json, tokenizers) and refuses anything that is not a regular file
// without blocking on it: opening a FIFO for reading waits for a writer, and
// a device such as /dev/zero never ends.
package regfile

import (
	"fmt"
	"io"
	"math"
	"os"
)

// Open opens path for reading if it is a regular file. On unix the open does
// not block (O_NONBLOCK, which changes nothing for regular files), so a FIFO
// is refused at once instead of hanging until someone writes to it.
func Open(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file (%s)", path, st.Mode().Type())
	}
	return f, st, nil
}

// ReadFile reads a whole regular file of at most limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, st, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d this file may have", path, st.Size(), limit)
	}
	// Read one byte past the limit so that a file that grew since Stat is caught.
	data, err := io.ReadAll(io.LimitReader(f, min(limit, math.MaxInt64-1)+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is more than %d bytes", path, limit)
	}
	return data, nil
}
