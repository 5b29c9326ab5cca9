package quantize

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cafeq/cafeq/model"
)

// Comparison is one method's run in a report: its settings, its per-tensor
// entries and, when evaluated on text, its quality against the unquantized
// model.
type Comparison struct {
	Label   string   `json:"label"` // e.g. "cafeq b256"
	Method  Method   `json:"method"`
	Grid    string   `json:"grid"`
	Block   int      `json:"block,omitempty"`
	Entries []Entry  `json:"tensors"`
	MeanRel float64  `json:"mean_rel_err"`
	Seconds float64  `json:"seconds"`
	Bytes   int64    `json:"file_bytes"`
	Quality *Quality `json:"quality,omitempty"`
}

// Quality is a quantized model measured against its reference on text.
type Quality struct {
	KLD       float64 `json:"kld"`        // mean KL(ref ‖ quantized) per token, nats
	Top1Agree float64 `json:"top1_agree"` // share of positions with the same argmax
	PPL       float64 `json:"ppl"`
	RefPPL    float64 `json:"ref_ppl"`
	Tokens    int     `json:"tokens"`
}

// Report is what `cafeq quantize -report DIR` writes as report.json.
//
// The relative proxy loss of a tensor is ||W - Ŵ||_F / ||W||_F with Ŵ what
// the runtime effectively multiplies by (transforms included). For CafeQ's
// coupled V/O pairs, v and o both carry the paired product error
// ||O·V - Ô·V̂||_F / ||O·V||_F instead, since the folded transform changes
// each factor but not their product.
type Report struct {
	Model    string            `json:"model"`
	Settings ReportSettings    `json:"settings"`
	Units    map[string]string `json:"units"`
	Methods  []Comparison      `json:"methods"`
}

// ReportSettings record how a report was made, so it can be reproduced.
type ReportSettings struct {
	Version  string  `json:"version"` // the cafeq build
	Created  string  `json:"created"` // RFC 3339, UTC
	Method   Method  `json:"method"`
	Format   string  `json:"format,omitempty"`     // one grid for every tensor, e.g. q4_g32_asym
	BPW      float64 `json:"bpw_target,omitempty"` // or a size budget, bits per linear weight
	Block    int     `json:"block,omitempty"`
	Steps    int     `json:"steps"`
	Seed     uint64  `json:"seed"`
	EvalFile string  `json:"eval_file,omitempty"` // text of the quality measurements
	EvalCtx  int     `json:"eval_ctx,omitempty"`  // their window, in tokens
}

// ReportUnits names the unit of every measured field in report.json.
var ReportUnits = map[string]string{
	"rel_err":      "relative Frobenius error ||W - Ŵ||_F / ||W||_F (dimensionless)",
	"rtn_rel_err":  "the same for plain RTN on the same grid",
	"mean_rel_err": "mean of rel_err over the tensors",
	"seconds":      "wall-clock seconds",
	"file_bytes":   "bytes",
	"kld":          "nats per token, mean KL(reference || quantized)",
	"top1_agree":   "share of positions (0..1) where both models' most likely token agree",
	"ppl":          "perplexity per token",
	"tokens":       "tokens scored",
}

// NewComparison summarises a quantization run.
func NewComparison(label string, opt Options, rep *CheckpointReport, fileBytes int64) Comparison {
	c := Comparison{Label: label, Method: opt.Method, Grid: opt.Grid.String(), Entries: rep.Entries, Seconds: rep.Seconds, Bytes: fileBytes}
	if opt.Method != MethodRTN {
		c.Block = opt.Block
	}
	for _, e := range rep.Entries {
		c.MeanRel += e.RelErr / float64(len(rep.Entries))
	}
	return c
}

// WriteReport writes report.json and loss.svg (relative proxy loss per layer
// and matrix type, one line per method) into dir and returns their paths.
func WriteReport(dir string, rep Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("quantize: report: %w", err)
	}
	if rep.Units == nil {
		rep.Units = ReportUnits
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("quantize: report: %w", err)
	}
	jsonPath := filepath.Join(dir, "report.json")
	if err := model.WriteFileAtomic(jsonPath, data); err != nil {
		return nil, err
	}
	svgPath := filepath.Join(dir, "loss.svg")
	if err := model.WriteFileAtomic(svgPath, []byte(lossSVG(rep))); err != nil {
		return nil, err
	}
	return []string{jsonPath, svgPath}, nil
}

// lossSVG draws one panel per matrix type (q, k, v, o, gate, up, down): the
// relative proxy loss against the layer index, one coloured line per method.
func lossSVG(rep Report) string {
	kinds := model.LinearKinds
	const panelW, panelH, pad, left, top = 300, 200, 30, 50, 40
	cols := 4
	rows := (len(kinds) + cols - 1) / cols
	width := cols*(panelW+left+pad) + 280
	height := rows*(panelH+top+pad) + 30
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}
	// series[method][kind][layer] = loss
	type series map[string]map[int]float64
	all := make([]series, len(rep.Methods))
	maxLoss, maxLayer := 0.0, 0
	for i, m := range rep.Methods {
		all[i] = series{}
		for _, e := range m.Entries {
			l, kind, ok := model.SplitLayerName(e.Name)
			if !ok {
				continue
			}
			if all[i][kind] == nil {
				all[i][kind] = map[int]float64{}
			}
			all[i][kind][l] = e.RelErr
			maxLoss = max(maxLoss, e.RelErr)
			maxLayer = max(maxLayer, l)
		}
	}
	if maxLoss == 0 {
		maxLoss = 1
	}
	maxLoss *= 1.1 // headroom above the highest line
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="18" font-size="14">Relative proxy loss ||W-Ŵ||/||W|| per layer (%s)</text>`+"\n", html.EscapeString(rep.Model))
	for p, kind := range kinds {
		x0 := left + (p%cols)*(panelW+left+pad)
		y0 := top + (p/cols)*(panelH+top+pad)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`, x0, y0, panelW, panelH)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13">%s</text>`, x0+5, y0-6, kind)
		for t := 0; t <= 4; t++ {
			v := maxLoss * float64(t) / 4
			y := float64(y0+panelH) - float64(panelH)*v/maxLoss
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.3f</text><line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`,
				x0-4, y+4, v, x0, x0+panelW, y, y)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">layer</text><text x="%d" y="%d">0</text><text x="%d" y="%d" text-anchor="end">%d</text>`+"\n",
			x0+panelW/2, y0+panelH+14, x0, y0+panelH+14, x0+panelW, y0+panelH+14, maxLayer)
		for i := range rep.Methods {
			pts := all[i][kind]
			layers := make([]int, 0, len(pts))
			for l := range pts {
				layers = append(layers, l)
			}
			sort.Ints(layers)
			var path []string
			for _, l := range layers {
				x := float64(x0) + float64(panelW)*float64(l)/float64(max(maxLayer, 1))
				y := float64(y0+panelH) - float64(panelH)*pts[l]/maxLoss
				path = append(path, fmt.Sprintf("%.1f,%.1f", x, y))
			}
			if len(path) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", colors[i%len(colors)], strings.Join(path, " "))
			}
		}
	}
	lx := cols*(panelW+left+pad) + 10
	for i, m := range rep.Methods {
		y := top + 20*i
		label := fmt.Sprintf("%s (mean %.4f)", m.Label, m.MeanRel)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, lx+20, y, y, colors[i%len(colors)], lx+25, y+4, html.EscapeString(label))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10">cafeq v/o: paired error ||OV-ÔV̂||/||OV||</text>`+"\n", lx, top+20*len(rep.Methods)+10)
	b.WriteString("</svg>\n")
	return b.String()
}
