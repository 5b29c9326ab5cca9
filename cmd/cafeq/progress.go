package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress prints "label  done/total unit  pct  ETA" (without done/total
// when unit is "") on one stderr line,
// redrawn at most five times a second on a terminal, or every 10% elsewhere
// (so CI logs stay short).
type progress struct {
	w          io.Writer
	label      string
	unit       string
	total      int
	start      time.Time
	last       time.Time
	lastDecile int
	tty        bool
}

func newProgress(w io.Writer, label, unit string, total int) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, label: label, unit: unit, total: max(total, 1), start: time.Now(), tty: tty, lastDecile: -1}
}

func (p *progress) update(done int) {
	now := time.Now()
	decile := done * 10 / p.total
	if p.tty {
		if done < p.total && now.Sub(p.last) < 200*time.Millisecond {
			return
		}
	} else if decile == p.lastDecile && done < p.total {
		return
	}
	p.last, p.lastDecile = now, decile
	elapsed := now.Sub(p.start)
	eta := "?"
	if done > 0 {
		eta = (time.Duration(float64(elapsed) * float64(p.total-done) / float64(done))).Round(time.Second).String()
	}
	count := fmt.Sprintf(" %d/%d %s", done, p.total, p.unit)
	if p.unit == "" {
		count = "" // a share of estimated work: the percentage says it
	}
	line := fmt.Sprintf("%s%s %3d%% elapsed %s ETA %s", p.label, count, done*100/p.total, elapsed.Round(time.Second), eta)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		if done >= p.total {
			fmt.Fprintln(p.w)
		}
	} else {
		fmt.Fprintln(p.w, line)
	}
}
