// Package hubtest serves model directories the way the Hugging Face Hub
// does, for tests of downloads that cannot reach the Hub: the revision
// listing with blob ids and LFS hashes, resolve URLs with Range requests,
// gated repositories, dropped connections and corrupted files.
package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Repo is one served repository.
type Repo struct {
	Files map[string][]byte // name -> contents
	// Token, if set, makes the repository gated: 401 without a bearer
	// token, 403 with another one.
	Token string
	// DropAfter, if > 0, drops the connection of the first download of each
	// file larger than that after sending DropAfter bytes.
	DropAfter int
	// Corrupt flips a byte of every served .safetensors file, so its
	// contents do not match the listed sha256.
	Corrupt bool
}

// Server is a Hub-like HTTP server.
type Server struct {
	*httptest.Server
	Commit string

	mu       sync.Mutex
	repos    map[string]*Repo
	dropped  map[string]bool
	Requests []Request // every file download, in order
}

// Request records one resolve request.
type Request struct {
	Repo, File, Range string
}

// Dir reads a model directory's regular files into a Repo.
func Dir(dir string) (*Repo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	r := &Repo{Files: map[string][]byte{}}
	for _, e := range entries {
		if e.Type().IsRegular() {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			r.Files[e.Name()] = data
		}
	}
	return r, nil
}

// New starts a server with repos, keyed by "org/name".
func New(repos map[string]*Repo) *Server {
	s := &Server{Commit: strings.Repeat("c0ffee", 6) + "abcd", repos: repos, dropped: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Lfs reports whether a file is stored with Git LFS (as the Hub stores
// weights).
func Lfs(name string) bool {
	return strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".model")
}

type sibling struct {
	Name   string `json:"rfilename"`
	BlobID string `json:"blobId"`
	Size   int    `json:"size"`
	LFS    *struct {
		SHA256 string `json:"sha256"`
		Size   int    `json:"size"`
	} `json:"lfs,omitempty"`
}

func gitBlobID(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	var repoName, file string
	api := strings.HasPrefix(p, "api/models/")
	if api {
		rest := strings.TrimPrefix(p, "api/models/")
		i := strings.Index(rest, "/revision/")
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		repoName = rest[:i]
	} else {
		parts := strings.SplitN(p, "/", 5) // org, name, "resolve", commit, file
		if len(parts) != 5 || parts[2] != "resolve" {
			http.NotFound(w, r)
			return
		}
		repoName, file = parts[0]+"/"+parts[1], parts[4]
	}
	s.mu.Lock()
	repo := s.repos[repoName]
	s.mu.Unlock()
	if repo == nil {
		http.Error(w, `{"error":"Repository not found"}`, http.StatusNotFound)
		return
	}
	if repo.Token != "" {
		switch auth := r.Header.Get("Authorization"); {
		case auth == "":
			http.Error(w, `{"error":"Access to model `+repoName+` is restricted. You must be authenticated to access it."}`, http.StatusUnauthorized)
			return
		case auth != "Bearer "+repo.Token:
			http.Error(w, `{"error":"Access to model `+repoName+` is restricted and you are not in the authorized list."}`, http.StatusForbidden)
			return
		}
	}
	if api {
		var sibs []sibling
		names := make([]string, 0, len(repo.Files))
		for n := range repo.Files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			data := repo.Files[n]
			sb := sibling{Name: n, BlobID: gitBlobID(data), Size: len(data)}
			if Lfs(n) {
				sum := sha256.Sum256(data)
				sb.LFS = &struct {
					SHA256 string `json:"sha256"`
					Size   int    `json:"size"`
				}{hex.EncodeToString(sum[:]), len(data)}
			}
			sibs = append(sibs, sb)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": repoName, "sha": s.Commit, "siblings": sibs})
		return
	}
	data, ok := repo.Files[file]
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.Requests = append(s.Requests, Request{Repo: repoName, File: file, Range: r.Header.Get("Range")})
	drop := repo.DropAfter > 0 && len(data) > repo.DropAfter && !s.dropped[repoName+"/"+file]
	if drop {
		s.dropped[repoName+"/"+file] = true
	}
	s.mu.Unlock()
	if repo.Corrupt && strings.HasSuffix(file, ".safetensors") {
		data = bytes.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	if drop {
		// Promise the whole file, send part of it, and cut the connection.
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:repo.DropAfter])
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	http.ServeContent(w, r, file, time.Unix(0, 0), bytes.NewReader(data))
}

// Downloads returns the resolve requests made so far.
func (s *Server) Downloads() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.Requests...)
}
