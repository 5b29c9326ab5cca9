package hub

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseRevision: no listing panics, and an accepted one names only
// files inside the snapshot and blobs that are plain hashes.
func FuzzParseRevision(f *testing.F) {
	f.Add([]byte(`{"sha":"0123456789abcdef0123456789abcdef01234567","siblings":[{"rfilename":"config.json","blobId":"0123456789abcdef0123456789abcdef01234567","size":3}]}`))
	f.Add([]byte(`{"sha":"0123456789abcdef0123456789abcdef01234567","siblings":[{"rfilename":"../x","blobId":"0123456789abcdef0123456789abcdef01234567"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRevision(data)
		if err != nil {
			return
		}
		snap := filepath.Join("cache", "snapshots", r.Commit)
		for _, s := range r.Siblings {
			p := filepath.Join(snap, filepath.FromSlash(s.Name))
			if !strings.HasPrefix(p, snap+string(filepath.Separator)) {
				t.Fatalf("file %q escapes the snapshot", s.Name)
			}
			if strings.ContainsAny(s.etag(), "/\\.") {
				t.Fatalf("blob name %q", s.etag())
			}
		}
	})
}
