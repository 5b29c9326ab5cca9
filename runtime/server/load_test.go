package server

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Load test shape: 8 concurrent streaming clients x 25 requests each.
const (
	loadClients  = 8
	loadRequests = 25
)

// baseline records goroutines and live heap so a test can check that both
// come back after the server is gone.
type baseline struct {
	goroutines int
	heap       uint64
}

func heapAlloc() uint64 {
	goruntime.GC()
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func takeBaseline() baseline {
	http.DefaultClient.CloseIdleConnections()
	return baseline{goroutines: goruntime.NumGoroutine(), heap: heapAlloc()}
}

// check waits for the goroutine count to return to the baseline and checks
// that the live heap grew by less than slack bytes.
func (b baseline) check(t *testing.T, slack uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := goruntime.NumGoroutine()
		if n <= b.goroutines {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:goruntime.Stack(buf, true)]
			t.Fatalf("%d goroutines, baseline %d:\n%s", n, b.goroutines, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h := heapAlloc(); h > b.heap+slack {
		t.Errorf("live heap %d bytes after the test, baseline %d (slack %d)", h, b.heap, slack)
	}
}

// runLoad sends loadClients x loadRequests streaming requests, each with a
// prompt from prompts, and checks every reply against want.
func runLoad(t *testing.T, url string, prompts []string, body func(prompt string) string, want func(prompt string) (text, finish string)) {
	t.Helper()
	client := &http.Client{}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, loadClients*loadRequests)
	for c := range loadClients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for r := range loadRequests {
				p := prompts[rng.IntN(len(prompts))]
				resp, err := client.Post(url, "application/json", strings.NewReader(body(p)))
				if err != nil {
					errs <- fmt.Errorf("client %d request %d: %w", c, r, err)
					return
				}
				if resp.StatusCode != 200 {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					errs <- fmt.Errorf("client %d request %d: status %d: %s", c, r, resp.StatusCode, b)
					return
				}
				st := readStream(t, resp.Body)
				resp.Body.Close()
				wt, wf := want(p)
				if !st.done || st.text != wt || st.finish != wf {
					errs <- fmt.Errorf("client %d request %d prompt %q: got %q finish %q done %v, want %q finish %q",
						c, r, p, st.text, st.finish, st.done, wt, wf)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("... %d errors in all", n)
	}
}

func TestLoadFake(t *testing.T) {
	base := takeBaseline()
	func() {
		f := newFake()
		f.delay = 100 * time.Microsecond
		s, err := New(f, Options{Parallel: 3, QueueSize: loadClients})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s)
		defer ts.Close()
		prompts := []string{"alpha", "beta gamma", "delta: δέλτα", "epsilon"}
		runLoad(t, ts.URL+"/v1/chat/completions", prompts,
			func(p string) string {
				return fmt.Sprintf(`{"messages":[{"role":"user","content":%q}],"temperature":0,"stream":true}`, p)
			},
			func(p string) (string, string) {
				return fakeReply(chatPromptText(t, f, Message{"user", p}), GenerateOptions{}), "stop"
			})
		if got := f.started.Load(); got != loadClients*loadRequests {
			t.Errorf("%d generations, want %d", got, loadClients*loadRequests)
		}
		if got := f.maxActive.Load(); got > 3 {
			t.Errorf("%d generations at once, parallel is 3", got)
		}
	}()
	base.check(t, 1<<20)
}
