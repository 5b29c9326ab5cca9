package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/cafeq/cafeq/model/tokenizer"
	"github.com/cafeq/cafeq/runtime"
)

func cmdChat(args []string, stdout, stderr io.Writer) error {
	return chat(args, os.Stdin, stdout, stderr)
}

const chatHelp = `Commands:
  /help        this list
  /reset       forget the conversation (asks first)
  /bye, /exit  quit (or Ctrl-D)
  """          begin and end a message of several lines
Ctrl-C stops a reply. When the conversation outgrows the context, the oldest turns are
dropped; the system text stays.`

func chat(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("chat", "(-m MODEL | hf:ORG/NAME) [flags]", stderr)
	var sf sampleFlags
	sf.register(fs, 512)
	system := fs.String("system", "", "system prompt (folded into the first user turn)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := modelArg(fs, &sf.model); err != nil {
		return err
	}
	if err := sf.validate(); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	e, load, err := openModel(sf.model, sf.pull, engineOptions(sf.thr, sf.kv), stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	ctxLen, err := contextLength(sf.ctx, e)
	if err != nil {
		return err
	}
	s, err := e.NewSession(ctxLen)
	if err != nil {
		return err
	}
	opts := sf.options()
	opts.StopTokens = e.StopTokens()
	var history []runtime.ChatMessage
	if *system != "" {
		history = append(history, runtime.ChatMessage{Role: "system", Content: *system})
	}
	in := newLineReader(stdin, stdout)
	defer in.close()
	fmt.Fprintln(stderr, "Type a message and press Enter; /help lists the commands, /bye quits.")
	out := bufio.NewWriter(stdout)
	for {
		msg, err := readMessage(in)
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(stderr)
			return nil
		}
		if err != nil {
			return err
		}
		switch cmd := strings.TrimSpace(msg); {
		case cmd == "":
			continue
		case cmd == "/bye" || cmd == "/exit" || cmd == "/quit":
			return nil
		case cmd == "/help" || cmd == "/?":
			fmt.Fprintln(stderr, chatHelp)
			continue
		case cmd == "/reset":
			answer, err := in.readLine("Forget the conversation? [y/N] ")
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if a := strings.ToLower(strings.TrimSpace(answer)); a == "y" || a == "yes" {
				history = history[:0]
				if *system != "" {
					history = append(history, runtime.ChatMessage{Role: "system", Content: *system})
				}
				s.Reset()
				fmt.Fprintln(stderr, "[conversation forgotten]")
			}
			continue
		case strings.HasPrefix(cmd, "/") && !strings.ContainsAny(cmd, " \n"):
			fmt.Fprintf(stderr, "unknown command %s; /help lists the commands\n", cmd)
			continue
		}
		history = append(history, runtime.ChatMessage{Role: "user", Content: msg})
		var ids []int
		var dropped int
		history, ids, dropped, err = fitConversation(e.Tokenizer, history, s.MaxContext())
		if err != nil {
			return err
		}
		if dropped > 0 {
			fmt.Fprintf(stderr, "[dropped the %d oldest turns to fit the context of %d tokens]\n", dropped, s.MaxContext())
		}
		if ids == nil {
			fmt.Fprintf(stderr, "[message too long for the context of %d tokens]\n", s.MaxContext())
			continue
		}
		dec := e.Tokenizer.NewStreamDecoder()
		var reply strings.Builder
		ctx, stop := interruptContext()
		start := time.Now()
		res, err := s.Generate(ctx, ids, opts, func(id int) bool {
			text := dec.Add(id)
			reply.WriteString(text)
			out.WriteString(text)
			out.Flush()
			return true
		})
		stop()
		rest := dec.Flush()
		reply.WriteString(rest)
		out.WriteString(rest + "\n")
		out.Flush()
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		if sf.verbose {
			printTimings(stderr, load+time.Since(start), load, res)
			load = 0 // loaded once, before the first turn
		}
		history = append(history, runtime.ChatMessage{Role: "assistant", Content: reply.String()})
	}
}

// fitConversation renders history and, while it leaves no room for a reply
// in maxCtx tokens, drops the oldest user/assistant pair after the system
// text (as ollama and llama.cpp do, instead of starting over). It returns
// the kept history, its prompt, and how many turns were dropped; ids is nil
// when even the last message alone does not fit (it is then removed).
func fitConversation(tok *tokenizer.Tokenizer, history []runtime.ChatMessage, maxCtx int) ([]runtime.ChatMessage, []int, int, error) {
	first := 0
	if len(history) > 0 && history[0].Role == "system" {
		first = 1
	}
	dropped := 0
	for {
		ids, err := runtime.ChatPrompt(tok, history)
		if err != nil {
			return history, nil, dropped, err
		}
		if len(ids) < maxCtx {
			return history, ids, dropped, nil
		}
		if len(history)-first <= 1 {
			// Only the new message is left, and it alone is too long.
			return history[:len(history)-1], nil, dropped, nil
		}
		n := min(2, len(history)-first-1) // a user turn and its reply
		history = append(history[:first], history[first+n:]...)
		dropped += n
	}
}

// readMessage reads one message: a line, or with """ several lines up to
// the closing """ (as in ollama).
func readMessage(in lineReader) (string, error) {
	line, err := in.readLine(">>> ")
	if err != nil {
		return line, err
	}
	body, ok := strings.CutPrefix(strings.TrimLeft(line, " \t"), `"""`)
	if !ok {
		return line, nil
	}
	if text, closed := strings.CutSuffix(body, `"""`); closed {
		return text, nil
	}
	lines := []string{body}
	for {
		next, err := in.readLine("... ")
		if err != nil {
			return strings.Join(lines, "\n"), err
		}
		if text, closed := strings.CutSuffix(next, `"""`); closed {
			return strings.TrimPrefix(strings.Join(append(lines, text), "\n"), "\n"), nil
		}
		lines = append(lines, next)
	}
}

// lineReader reads lines with a prompt.
type lineReader interface {
	readLine(prompt string) (string, error)
	close()
}

// newLineReader edits lines in place, with history, when stdin and stdout
// are a terminal, and reads plain lines otherwise (pipes, files).
func newLineReader(stdin io.Reader, stdout io.Writer) lineReader {
	inF, ok1 := stdin.(*os.File)
	outF, ok2 := stdout.(*os.File)
	if ok1 && ok2 && term.IsTerminal(int(inF.Fd())) && term.IsTerminal(int(outF.Fd())) {
		rw := struct {
			io.Reader
			io.Writer
		}{inF, outF}
		return &termReader{fd: int(inF.Fd()), t: term.NewTerminal(rw, "")}
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &plainReader{sc: sc}
}

// termReader puts the terminal in raw mode only while a line is read, so
// Ctrl-C during a reply still interrupts it.
type termReader struct {
	fd int
	t  *term.Terminal
}

func (r *termReader) readLine(prompt string) (string, error) {
	st, err := term.MakeRaw(r.fd)
	if err != nil {
		return "", err
	}
	defer term.Restore(r.fd, st)
	r.t.SetPrompt(prompt)
	return r.t.ReadLine()
}

func (r *termReader) close() {}

// plainReader reads piped input; it shows no prompts, which would only
// clutter a transcript.
type plainReader struct{ sc *bufio.Scanner }

func (r *plainReader) readLine(string) (string, error) {
	if !r.sc.Scan() {
		if err := r.sc.Err(); err != nil {
			return "", err
		}
		return "", io.EOF
	}
	return r.sc.Text(), nil
}

func (r *plainReader) close() {}
