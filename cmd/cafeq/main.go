// Command cafeq quantizes Gemma 2 checkpoints with CafeQ and runs them on CPUs.
//
// Exit codes: 0 on success, 1 on a runtime error (one line on stderr), 2 on a
// usage error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/cafeq/cafeq/model"
)

// command is one subcommand; run returns a usageError for bad flags or
// arguments and any other error for failures.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"run":        {"generate text from a prompt", cmdRun},
	"chat":       {"interactive chat with Gemma's chat template", cmdChat},
	"tokenize":   {"print the token ids of a text as JSON", cmdTokenize},
	"logits":     {"write every position's logits as a .npy array", cmdLogits},
	"perplexity": {"perplexity of a text file (and KL divergence against a reference)", cmdPerplexity},
	"serve":      {"OpenAI-compatible HTTP server", cmdServe},
	"quantize":   {"quantize a Hugging Face checkpoint into a .cq file", cmdQuantize},
	"bench":      {"measure prefill and decode speed", cmdBench},
	"synth":      {"write a random-weight checkpoint of a real Gemma 2 shape", cmdSynth},
	"outliers":   {"write a copy of a checkpoint with planted outlier channels (same function)", cmdOutliers},
	"inspect":    {"show a model's architecture, sizes and dtypes", cmdInspect},
	"version":    {"print the version, commit, Go release and kernel tier", cmdVersion},
	"pull":       {"download a Hugging Face repository and quantize it into the cache", cmdPull},
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// writesFiles are the commands that write output files: interrupted by
// SIGINT or SIGTERM, they remove their partial output before exiting. (run,
// chat and serve handle those signals themselves.)
var writesFiles = map[string]bool{"quantize": true, "synth": true, "outliers": true, "logits": true, "pull": true}

func main() {
	if len(os.Args) > 1 && writesFiles[os.Args[1]] {
		removePartialOutputOnSignal()
	}
	os.Exit(cafeq(os.Args[1:], os.Stdout, os.Stderr))
}

// removePartialOutputOnSignal makes SIGINT and SIGTERM remove the temporary
// files being written, then exit with 128 + the signal's number, as a shell
// reports a process the signal killed.
func removePartialOutputOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		model.RemoveTempFiles()
		fmt.Fprintf(os.Stderr, "cafeq: %v: stopped; partial output removed\n", sig)
		code := 130
		if sig == syscall.SIGTERM {
			code = 143
		}
		os.Exit(code)
	}()
}

// cafeq runs the command line and returns the exit code.
func cafeq(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "-version" || args[0] == "--version" {
		args[0] = "version"
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "cafeq: unknown command %q\n", args[0])
		printUsage(stderr)
		return 2
	}
	return exitCode(cmd.run(args[1:], stdout, stderr), args[0], stderr)
}

// exitCode reports err on stderr (once, on one line) and returns the exit
// code for it.
func exitCode(err error, name string, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errInterrupted):
		return 130
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "cafeq %s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "cafeq %s: %v\n", name, oneLine(err.Error()))
		return 1
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: cafeq <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'cafeq <command> -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cafeq %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns flag errors into usage errors. The flag
// package's own report is silenced so that a mistake is printed once, by
// cafeq, with a pointer to -h; -h itself prints the usage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return usagef("%v (cafeq %s -h lists the flags)", err, fs.Name())
	}
	return nil
}
