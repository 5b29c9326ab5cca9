package hub_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cafeq/cafeq/model/hub"
	"github.com/cafeq/cafeq/model/hub/hubtest"
)

const modelDir = "../../testdata/shakespeare-gemma2"

func newHub(t *testing.T, repos map[string]*hubtest.Repo) *hubtest.Server {
	t.Helper()
	s := hubtest.New(repos)
	t.Cleanup(s.Close)
	return s
}

func shakespeare(t *testing.T) *hubtest.Repo {
	t.Helper()
	r, err := hubtest.Dir(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func client(s *hubtest.Server, cache, token string) *hub.Client {
	return &hub.Client{Endpoint: s.URL, Token: token, CacheDir: cache, Retries: 3}
}

// checkSnapshot compares every downloaded file with the original.
func checkSnapshot(t *testing.T, snap string, repo *hubtest.Repo) {
	t.Helper()
	for name, want := range repo.Files {
		got, err := os.ReadFile(filepath.Join(snap, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, want %d (%v)", name, len(got), len(want), err)
		}
	}
}

func TestDownloadAndReuse(t *testing.T) {
	repo := shakespeare(t)
	s := newHub(t, map[string]*hubtest.Repo{"org/shakespeare": repo})
	cache := t.TempDir()
	c := client(s, cache, "")
	var progressCalls int
	c.Progress = func(string, int64, int64) { progressCalls++ }
	snap, err := c.Download(context.Background(), "org/shakespeare", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap, repo)
	if progressCalls == 0 {
		t.Error("no progress reported")
	}
	// Hugging Face's layout: refs/main holds the commit; snapshot files are
	// relative links into blobs/ named by sha256 (LFS) or git blob id.
	dir := filepath.Join(cache, "models--org--shakespeare")
	if ref, _ := os.ReadFile(filepath.Join(dir, "refs", "main")); string(ref) != s.Commit {
		t.Errorf("refs/main = %q", ref)
	}
	if snap != filepath.Join(dir, "snapshots", s.Commit) {
		t.Errorf("snapshot %s", snap)
	}
	link, err := os.Readlink(filepath.Join(snap, "model.safetensors"))
	if err != nil || !strings.HasPrefix(link, filepath.Join("..", "..", "blobs")+string(filepath.Separator)) {
		t.Errorf("model.safetensors links to %q (%v)", link, err)
	}
	n := len(s.Downloads())
	if _, err := c.Download(context.Background(), "org/shakespeare", "main", nil); err != nil {
		t.Fatal(err)
	}
	if len(s.Downloads()) != n {
		t.Errorf("a second download fetched %d files again", len(s.Downloads())-n)
	}
}

// TestReuseHuggingFaceCache: blobs that huggingface-cli left in the cache
// (under another snapshot) are linked, not downloaded.
func TestReuseHuggingFaceCache(t *testing.T) {
	repo := shakespeare(t)
	s := newHub(t, map[string]*hubtest.Repo{"org/shakespeare": repo})
	cache := t.TempDir()
	if _, err := client(s, cache, "").Download(context.Background(), "org/shakespeare", "main", nil); err != nil {
		t.Fatal(err)
	}
	// Keep blobs/, drop the snapshot, as a cache of another revision would look.
	os.RemoveAll(filepath.Join(cache, "models--org--shakespeare", "snapshots"))
	n := len(s.Downloads())
	snap, err := client(s, cache, "").Download(context.Background(), "org/shakespeare", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap, repo)
	if len(s.Downloads()) != n {
		t.Errorf("%d files downloaded although their blobs were cached", len(s.Downloads())-n)
	}
}

func TestGated(t *testing.T) {
	repo := shakespeare(t)
	repo.Token = "hf_right"
	s := newHub(t, map[string]*hubtest.Repo{"google/gated": repo})
	for _, c := range []struct{ token, want string }{
		{"", "set HF_TOKEN"},
		{"hf_wrong", "no access"},
	} {
		_, err := client(s, t.TempDir(), c.token).Download(context.Background(), "google/gated", "main", nil)
		if !errors.Is(err, hub.ErrAuth) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), s.URL+"/google/gated") {
			t.Errorf("token %q: %v, want ErrAuth saying %q and the repository's page", c.token, err, c.want)
		}
	}
	snap, err := client(s, t.TempDir(), "hf_right").Download(context.Background(), "google/gated", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap, repo)
	if _, err := client(s, t.TempDir(), "").Download(context.Background(), "org/missing", "main", nil); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing repository: %v", err)
	}
}

// TestResumeAfterDrop: a connection dropped mid-file is resumed with a
// Range request, and the file is whole.
func TestResumeAfterDrop(t *testing.T) {
	repo := shakespeare(t)
	repo.DropAfter = 1 << 20
	s := newHub(t, map[string]*hubtest.Repo{"org/flaky": repo})
	snap, err := client(s, t.TempDir(), "").Download(context.Background(), "org/flaky", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap, repo)
	var ranges []string
	for _, r := range s.Downloads() {
		if r.File == "model.safetensors" {
			ranges = append(ranges, r.Range)
		}
	}
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes=1048576-" {
		t.Errorf("model.safetensors requests with ranges %q, want a full request then bytes=1048576-", ranges)
	}
}

func TestBadChecksum(t *testing.T) {
	repo := shakespeare(t)
	repo.Corrupt = true
	s := newHub(t, map[string]*hubtest.Repo{"org/corrupt": repo})
	cache := t.TempDir()
	_, err := client(s, cache, "").Download(context.Background(), "org/corrupt", "main", nil)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("corrupt download: %v", err)
	}
	blobs, _ := os.ReadDir(filepath.Join(cache, "models--org--corrupt", "blobs"))
	for _, b := range blobs {
		data, _ := os.ReadFile(filepath.Join(cache, "models--org--corrupt", "blobs", b.Name()))
		if len(data) == len(repo.Files["model.safetensors"]) || strings.HasSuffix(b.Name(), ".incomplete") {
			t.Errorf("the corrupt file stayed in the cache as %s", b.Name())
		}
	}
}

func TestFromEnvironment(t *testing.T) {
	t.Setenv("HF_ENDPOINT", "http://hub.example/")
	t.Setenv("HF_TOKEN", "hf_x")
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", "/tmp/hfhome")
	c, err := hub.FromEnvironment()
	if err != nil || c.Endpoint != "http://hub.example" || c.Token != "hf_x" || c.CacheDir != "/tmp/hfhome/hub" {
		t.Errorf("%+v %v", c, err)
	}
}
