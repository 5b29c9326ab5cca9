package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cafeq/cafeq/runtime/server"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "-m MODEL [flags]", stderr)
	modelPath := fs.String("m", "", "model: a Hugging Face checkpoint directory, a .cq file, or hf:ORG/NAME to download and quantize (required)")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address; the default is loopback, reachable from this machine only")
	parallel := fs.Int("parallel", 1, "generations at once, each with its own KV cache")
	queue := fs.Int("queue", server.DefaultQueueSize, "requests that may wait for a slot before 429; 0: none wait")
	ctxLen := fs.Int("ctx", 0, "context per request in tokens; 0: the model's, at most 4096")
	threads := fs.Int("threads", 0, "worker threads; 0: all cores")
	kv := registerLoadFlags(fs, true)
	name := fs.String("name", "", "model id reported by the API; default: the model's file name")
	var pf pullFlags
	pf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := pf.validate(); err != nil {
		return err
	}
	switch {
	case *modelPath == "":
		return usagef("-m MODEL is required")
	case *parallel < 1:
		return usagef("-parallel must be at least 1")
	case *ctxLen < 0:
		return usagef("-ctx must be >= 0")
	case *queue < 0:
		return usagef("-queue must be >= 0")
	}
	if *queue == 0 {
		*queue = -1 // server.Options: negative means no queue
	}
	e, _, err := openModel(*modelPath, pf, engineOptions(*threads, kv), stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	maxCtx, err := contextLength(*ctxLen, e)
	if err != nil {
		return err
	}
	if *name == "" {
		*name = strings.TrimSuffix(filepath.Base(*modelPath), ".cq")
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := server.New(server.NewEngineBackend(e), server.Options{
		Parallel: *parallel, QueueSize: *queue, MaxCtx: maxCtx, ModelName: *name, Logger: logger,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stderr, "cafeq: serving %s on http://%s (parallel %d)\n", *modelPath, *addr, *parallel)
	if err := server.ListenAndServe(ctx, *addr, srv); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
