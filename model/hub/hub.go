// Package hub downloads model repositories from the Hugging Face Hub into
// Hugging Face's own cache layout, so that files huggingface-cli or
// transformers already fetched are reused and the other way round.
//
// It speaks the Hub's HTTP API:
//
//	GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true
//	    -> {"sha": commit, "siblings": [{"rfilename", "blobId", "size", "lfs": {"sha256", "size"}}]}
//	GET {endpoint}/{repo}/resolve/{commit}/{file}   (Range: bytes=N- to resume)
//
// with HF_TOKEN as a bearer token, and the cache layout
//
//	{cache}/models--{org}--{name}/
//	    refs/{rev}                  the commit rev resolved to
//	    blobs/{etag}                file contents: LFS files by sha256, others by git blob sha1
//	    blobs/{etag}.incomplete     a download in progress, resumed with Range
//	    snapshots/{commit}/{file}   relative symlinks into blobs
//
// Every downloaded file is verified before it enters blobs/: LFS files
// against their sha256, others against their git blob id.
package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the Hub; HF_ENDPOINT overrides it, as in huggingface_hub.
const DefaultEndpoint = "https://huggingface.co"

// Client downloads repositories. The zero value is not usable; see
// FromEnvironment.
type Client struct {
	Endpoint string       // e.g. https://huggingface.co, without a trailing slash
	Token    string       // bearer token; "" for public repositories
	CacheDir string       // the hub cache: $HF_HOME/hub
	HTTP     *http.Client // nil: http.DefaultClient
	// Progress, if set, is called as a file downloads: bytes done (resumed
	// bytes included) of total.
	Progress func(file string, done, total int64)
	// Retries is how many times a dropped download is resumed.
	Retries int
}

// FromEnvironment configures a client as huggingface_hub does: HF_ENDPOINT,
// HF_TOKEN, HF_HUB_CACHE or HF_HOME (default ~/.cache/huggingface).
func FromEnvironment() (*Client, error) {
	c := &Client{Endpoint: DefaultEndpoint, Token: os.Getenv("HF_TOKEN"), Retries: 5}
	if e := os.Getenv("HF_ENDPOINT"); e != "" {
		c.Endpoint = strings.TrimRight(e, "/")
	}
	switch {
	case os.Getenv("HF_HUB_CACHE") != "":
		c.CacheDir = os.Getenv("HF_HUB_CACHE")
	case os.Getenv("HF_HOME") != "":
		c.CacheDir = filepath.Join(os.Getenv("HF_HOME"), "hub")
	default:
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("hub: no cache directory: set HF_HOME (%w)", err)
		}
		c.CacheDir = filepath.Join(home, ".cache", "huggingface", "hub")
	}
	return c, nil
}

// Sibling is one file of a repository revision.
type Sibling struct {
	Name   string `json:"rfilename"`
	BlobID string `json:"blobId"` // git blob sha1
	Size   int64  `json:"size"`
	LFS    *struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	} `json:"lfs"`
}

// etag is the blob's name in the cache, as huggingface_hub names it.
func (s Sibling) etag() string {
	if s.LFS != nil {
		return s.LFS.SHA256
	}
	return s.BlobID
}

func (s Sibling) size() int64 {
	if s.LFS != nil {
		return s.LFS.Size
	}
	return s.Size
}

// Revision is a repository at one commit.
type Revision struct {
	Commit   string    `json:"sha"`
	Siblings []Sibling `json:"siblings"`
}

// ErrAuth is returned (wrapped) for 401 and 403 answers.
var ErrAuth = errors.New("hub: not authorised")

var repoRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidRepo reports whether repo looks like "org/name".
func ValidRepo(repo string) bool { return repoRe.MatchString(repo) && !strings.Contains(repo, "..") }

// hexRe matches the hashes used as blob names, so a hostile listing cannot
// name a path outside blobs/.
var hexRe = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) get(ctx context.Context, u string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("User-Agent", "cafeq")
	return c.httpClient().Do(req)
}

// statusError explains a failed answer, in words a user can act on.
func (c *Client) statusError(repo string, resp *http.Response) error {
	page := c.Endpoint + "/" + repo
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if c.Token == "" {
			return fmt.Errorf("%w: %s is gated or private: set HF_TOKEN to a token of an account that has accepted its licence at %s", ErrAuth, repo, page)
		}
		return fmt.Errorf("%w: the Hub refused HF_TOKEN for %s (401): check that the token is valid", ErrAuth, repo)
	case http.StatusForbidden:
		return fmt.Errorf("%w: HF_TOKEN has no access to %s (403): accept its licence at %s with the token's account, or use a token with read access to gated repositories", ErrAuth, repo, page)
	case http.StatusNotFound:
		hint := ""
		if c.Token == "" {
			hint = " (if it is private, set HF_TOKEN)"
		}
		return fmt.Errorf("hub: %s not found at %s%s", repo, c.Endpoint, hint)
	}
	return fmt.Errorf("hub: %s: %s from %s", repo, resp.Status, resp.Request.URL.Redacted())
}

// Revision lists the files of repo at rev (a branch, tag or commit).
func (c *Client) Revision(ctx context.Context, repo, rev string) (*Revision, error) {
	if !ValidRepo(repo) {
		return nil, fmt.Errorf("hub: %q is not a repository name like org/name", repo)
	}
	u := fmt.Sprintf("%s/api/models/%s/revision/%s?blobs=true", c.Endpoint, repo, url.PathEscape(rev))
	resp, err := c.get(ctx, u, nil)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.statusError(repo, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxListingBytes+1))
	if err != nil {
		return nil, fmt.Errorf("hub: %s: %w", repo, err)
	}
	r, err := parseRevision(data)
	if err != nil {
		return nil, fmt.Errorf("hub: %s: %w", repo, err)
	}
	return r, nil
}

// maxListingBytes bounds a revision listing (a large repository's is a few
// hundred KiB).
const maxListingBytes = 16 << 20

// parseRevision reads and checks a revision listing: a 40-hex commit, and
// files whose names stay inside the snapshot and whose hashes can name
// blobs.
func parseRevision(data []byte) (*Revision, error) {
	if len(data) > maxListingBytes {
		return nil, fmt.Errorf("revision listing over %d bytes", maxListingBytes)
	}
	var r Revision
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("bad revision listing: %w", err)
	}
	if len(r.Commit) != 40 || !hexRe.MatchString(r.Commit) {
		return nil, fmt.Errorf("bad commit %q in the revision listing", r.Commit)
	}
	for _, s := range r.Siblings {
		if !hexRe.MatchString(s.etag()) || !safeName(s.Name) || s.size() < 0 {
			return nil, fmt.Errorf("bad file entry %q in the revision listing", s.Name)
		}
	}
	return &r, nil
}

// safeName refuses names that would escape the snapshot directory or name
// the directory itself (".").
func safeName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.HasPrefix(name, "/") &&
		path.Clean(name) == name && !strings.HasPrefix(name, "../")
}

// RepoDir is the cache directory of repo.
func (c *Client) RepoDir(repo string) string {
	return filepath.Join(c.CacheDir, "models--"+strings.ReplaceAll(repo, "/", "--"))
}

// Download fetches the files of repo at rev for which want is true (all if
// want is nil) into the cache, reusing what is there, and returns the
// snapshot directory that holds them.
func (c *Client) Download(ctx context.Context, repo, rev string, want func(name string) bool) (string, error) {
	r, err := c.Revision(ctx, repo, rev)
	if err != nil {
		return "", err
	}
	dir := c.RepoDir(repo)
	snap := filepath.Join(dir, "snapshots", r.Commit)
	for _, s := range r.Siblings {
		if want != nil && !want(s.Name) {
			continue
		}
		if err := c.fetch(ctx, repo, r.Commit, dir, snap, s); err != nil {
			return "", err
		}
	}
	if rev != r.Commit {
		refs := filepath.Join(dir, "refs", filepath.FromSlash(rev))
		if err := os.MkdirAll(filepath.Dir(refs), 0o755); err != nil {
			return "", fmt.Errorf("hub: %w", err)
		}
		if err := os.WriteFile(refs, []byte(r.Commit), 0o644); err != nil {
			return "", fmt.Errorf("hub: %w", err)
		}
	}
	return snap, nil
}

// fetch makes snapshots/{commit}/{name} point at a verified blob.
func (c *Client) fetch(ctx context.Context, repo, commit, dir, snap string, s Sibling) error {
	blob := filepath.Join(dir, "blobs", s.etag())
	link := filepath.Join(snap, filepath.FromSlash(s.Name))
	if _, err := os.Stat(link); err == nil {
		return nil // already in this snapshot (it resolves, so the blob is there)
	}
	if _, err := os.Stat(blob); err != nil {
		if err := c.downloadBlob(ctx, repo, commit, blob, s); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	rel, err := filepath.Rel(filepath.Dir(link), blob)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	os.Remove(link) // a dangling link from an interrupted run
	if err := os.Symlink(rel, link); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// downloadBlob downloads s into blob via blob.incomplete, resuming a
// previous partial download and retrying dropped connections with Range
// requests, and renames it into place only once its hash matches.
func (c *Client) downloadBlob(ctx context.Context, repo, commit, blob string, s Sibling) error {
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	part := blob + ".incomplete"
	u := fmt.Sprintf("%s/%s/resolve/%s/%s", c.Endpoint, repo, commit, escapePath(s.Name))
	total := s.size()
	var lastErr error
	for attempt := 0; attempt <= c.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		done, err := c.downloadPart(ctx, repo, u, part, s.Name, total)
		if err == nil {
			break
		}
		if errors.Is(err, ErrAuth) || ctx.Err() != nil || errors.Is(err, errPermanent) {
			return err
		}
		lastErr = fmt.Errorf("%w (after %d of %d bytes)", err, done, total)
		if attempt == c.Retries {
			return fmt.Errorf("hub: downloading %s: %w", s.Name, lastErr)
		}
	}
	if err := verify(part, s); err != nil {
		os.Remove(part)
		return fmt.Errorf("hub: %s of %s: %w", s.Name, repo, err)
	}
	if err := os.Rename(part, blob); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

var errPermanent = errors.New("hub: permanent failure")

// downloadPart appends the rest of the file to part, starting from its
// current length, and returns the bytes part holds at the end.
func (c *Client) downloadPart(ctx context.Context, repo, u, part, name string, total int64) (int64, error) {
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	if have > total {
		// Longer than the file: start over.
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		have, _ = f.Seek(0, io.SeekStart)
	}
	if have == total {
		return have, nil
	}
	header := http.Header{}
	if have > 0 {
		header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := c.get(ctx, u, header)
	if err != nil {
		return have, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		// The server ignored Range: take the whole file again.
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		if have, err = f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return have, fmt.Errorf("%w: %w", errPermanent, c.statusError(repo, resp))
	default:
		return have, c.statusError(repo, resp)
	}
	w := &progressWriter{f: f, done: have, total: total, name: name, report: c.Progress}
	_, err = io.Copy(w, resp.Body)
	if err == nil && w.done != total {
		err = fmt.Errorf("got %d of %d bytes", w.done, total)
	}
	return w.done, err
}

type progressWriter struct {
	f           *os.File
	done, total int64
	name        string
	report      func(string, int64, int64)
}

func (w *progressWriter) Write(p []byte) (int, error) {
	if w.done+int64(len(p)) > w.total {
		return 0, fmt.Errorf("more bytes than the listed %d", w.total)
	}
	n, err := w.f.Write(p)
	w.done += int64(n)
	if w.report != nil {
		w.report(w.name, w.done, w.total)
	}
	return n, err
}

// verify checks a downloaded file against the listing: the sha256 of an LFS
// file, the git blob sha1 ("blob {size}\0" + content) of any other.
func verify(file string, s Sibling) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var h hash.Hash
	want := s.etag()
	if s.LFS != nil {
		h = sha256.New()
	} else {
		h = sha1.New()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "blob %d\x00", st.Size())
	}
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("checksum mismatch: got %s, the Hub lists %s; the download was discarded", got, want)
	}
	return nil
}

func escapePath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
