package quantize

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WriteReport writes report.json into dir: the run's totals and, per tensor,
// the exact relative proxy loss of the method used and of plain RTN on the
// same grid. It returns the files written.
func WriteReport(dir string, rep *CheckpointReport) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("quantize: report: %w", err)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("quantize: report: %w", err)
	}
	path := filepath.Join(dir, "report.json")
	if err := writeFileAtomic(path, data); err != nil {
		return nil, err
	}
	return []string{path}, nil
}

// writeFileAtomic writes data to a temporary file and renames it into place.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("quantize: writing %s: %v", path, errorsJoin(werr, cerr))
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("quantize: %w", err)
	}
	return nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
