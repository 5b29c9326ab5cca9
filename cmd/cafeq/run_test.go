package main

import (
	"bytes"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cafeq/cafeq/kernels"
)

// runIn invokes `cafeq run` in-process with stdin and returns exit code,
// stdout and stderr.
func runIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := exitCode(runPrompt(args, strings.NewReader(stdin), &out, &errOut), "run", &errOut)
	return code, out.String(), errOut.String()
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		code, out, stderr := run(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		for _, want := range []string{"cafeq ", "commit ", goruntime.Version(), "kernels " + kernels.CurrentTier().String()} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: %q lacks %q", args, out, want)
			}
		}
	}
	if code, _, _ := run(t, "version", "extra"); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}

// TestRunPromptSources: the prompt from -p, the last argument, -f FILE and
// piped standard input gives the same greedy text.
func TestRunPromptSources(t *testing.T) {
	common := []string{"-m", shakespeare, "-n", "12", "-temp", "0"}
	code, want, stderr := runIn(t, "", append(common, "-p", "ROMEO:")...)
	if code != 0 || strings.TrimSpace(want) == "" {
		t.Fatalf("-p: exit %d %q %s", code, want, stderr)
	}
	file := filepath.Join(t.TempDir(), "prompt.txt")
	os.WriteFile(file, []byte("ROMEO:\n"), 0o644)
	for name, c := range map[string]struct {
		stdin string
		args  []string
	}{
		"argument": {"", append(common, "ROMEO:")},
		"-f":       {"ignored", append(common, "-f", file)},
		"stdin":    {"ROMEO:\n", common},
	} {
		if code, got, stderr := runIn(t, c.stdin, c.args...); code != 0 || got != want {
			t.Errorf("%s: exit %d, %q, want %q (%s)", name, code, got, want, stderr)
		}
	}
	if code, _, _ := runIn(t, "", append(common, "-p", "x", "-f", file)...); code != 2 {
		t.Errorf("-p and -f together: exit %d, want 2", code)
	}
	if code, _, _ := runIn(t, "", append(common, "-f", file+".missing")...); code != 1 {
		t.Errorf("-f missing file: exit %d, want 1", code)
	}
}

var summaryRe = regexp.MustCompile(`\[(\d+) prompt tokens, (\d+) generated .* finish: (\w+)\]`)

// TestRunZeroMeansUnlimited: -n 0 generates until a stop token or the
// context is full, as its help says, not one or two tokens.
func TestRunZeroMeansUnlimited(t *testing.T) {
	code, _, stderr := runIn(t, "", "-m", shakespeare, "-n", "0", "-ctx", "48", "-temp", "0", "ROMEO:")
	m := summaryRe.FindStringSubmatch(stderr)
	if code != 0 || m == nil {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	prompt, _ := strconv.Atoi(m[1])
	gen, _ := strconv.Atoi(m[2])
	// The context holds 48 tokens; the last one sampled need not enter it.
	if m[3] == "length" && prompt+gen != 49 || m[3] == "stop" && gen < 3 {
		t.Errorf("-n 0: %d prompt + %d generated, finish %s; want the context of 48 filled or a stop", prompt, gen, m[3])
	}
	_, help, _ := func() (int, string, string) {
		var errOut bytes.Buffer
		runPrompt([]string{"-h"}, strings.NewReader(""), &errOut, &errOut)
		return 0, errOut.String(), ""
	}()
	if !strings.Contains(help, "0: until a stop token or the context is full") {
		t.Errorf("-h does not say what -n 0 does:\n%s", help)
	}
}

func TestRunVerboseTimings(t *testing.T) {
	code, _, stderr := runIn(t, "", "-m", shakespeare, "-n", "5", "-temp", "0", "-verbose", "ROMEO:")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"load duration:", "prompt eval count:    3 token(s)", "prompt eval duration:",
		"prompt eval rate:", "eval count:           5 token(s)", "eval duration:", "eval rate:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("-verbose output lacks %q:\n%s", want, stderr)
		}
	}
	if _, _, quiet := runIn(t, "", "-m", shakespeare, "-n", "5", "ROMEO:"); strings.Contains(quiet, "eval rate") {
		t.Errorf("timings printed without -verbose:\n%s", quiet)
	}
}

func TestRunContextBeyondTrained(t *testing.T) {
	// The Shakespeare model is trained on 512 positions.
	code, _, stderr := runIn(t, "", "-m", shakespeare, "-ctx", "513", "ROMEO:")
	if code != 1 || !strings.Contains(stderr, "exceeds the model's trained context of 512") {
		t.Errorf("-ctx 513: exit %d, %q", code, stderr)
	}
}

// interruptingWriter sends this process SIGINT on the first token and waits
// until the signal has been delivered, as a user pressing Ctrl-C mid-reply.
type interruptingWriter struct {
	bytes.Buffer
	once      sync.Once
	delivered chan os.Signal
}

func (w *interruptingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		select {
		case <-w.delivered:
		case <-time.After(10 * time.Second):
		}
	})
	return w.Buffer.Write(p)
}

func TestRunInterrupt(t *testing.T) {
	// A second receiver of SIGINT tells the writer when the signal landed;
	// the command's own receiver cancels the generation at the same time.
	out := interruptingWriter{delivered: make(chan os.Signal, 1)}
	signal.Notify(out.delivered, os.Interrupt)
	defer signal.Stop(out.delivered)
	var errOut bytes.Buffer
	err := runPrompt([]string{"-m", shakespeare, "-n", "0", "-temp", "0", "ROMEO:"}, strings.NewReader(""), &out, &errOut)
	if code := exitCode(err, "run", &errOut); code != 130 {
		t.Fatalf("exit %d, want 130: %s", code, errOut.String())
	}
	if m := summaryRe.FindStringSubmatch(errOut.String()); m == nil || m[3] != "interrupted" {
		t.Errorf("summary does not say finish: interrupted: %q", errOut.String())
	}
}

// TestFlagErrorOnce: a flag mistake is reported once, with a pointer to -h.
func TestFlagErrorOnce(t *testing.T) {
	code, _, stderr := run(t, "run", "-bogus")
	if code != 2 || strings.Count(stderr, "-bogus") != 1 || !strings.Contains(stderr, "cafeq run -h") {
		t.Errorf("exit %d, %q", code, stderr)
	}
}
