package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/cafeq/cafeq/kernels"
)

// buildVersion describes this binary: the module version (a tag under `go
// install …@vX`, "(devel)" in a clone), the commit it was built from, the Go
// release and the kernel tier the CPU runs.
func buildVersion() string {
	version, commit, dirty := "(devel)", "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if dirty {
		commit += "+dirty"
	}
	return fmt.Sprintf("cafeq %s (commit %s, %s %s/%s, kernels %s)",
		version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, kernels.CurrentTier())
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("version takes no arguments")
	}
	fmt.Fprintln(stdout, buildVersion())
	return nil
}
