package quantize

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
	"github.com/cafeq/cafeq/model/tokenizer"
	"github.com/x448/float16"
)

// CheckpointOptions configures quantizing a whole Gemma 2 checkpoint into a
// .cq file.
type CheckpointOptions struct {
	Options // method, grid, transform block, budgets for every linear weight

	// EmbedFormat stores the tied embedding / output matrix. Default q6: it
	// is both the embedding table and the output projection, and the final
	// logits are the most sensitive product in the model, so it keeps more
	// bits than the rest (as llama.cpp's Q6_K output); q8 would be 30% more
	// bytes for the largest matrix every decode step reads (see
	// docs/QUANTIZATION.md for what each costs in accuracy).
	EmbedFormat kernels.Format
	// TransformFormat stores each M⁻¹. Default q8 (8.5 bits per entry): the
	// runtime reads every M⁻¹ once per token, so its bytes count against
	// memory-bound decoding; f32 is exact.
	TransformFormat kernels.Format
	// TransformDown also learns a transform for down_proj's input. It costs
	// ffn×block multiply-adds per token, three times the others combined at
	// d_model 2304, so it is off by default.
	TransformDown bool
	// Progress, when set, is called after each tensor group with the work
	// done and in all, in units that estimate time (see work), so that
	// done/total is the share of the run's time already spent.
	Progress func(done, total int, what string)
	// Metadata is stored in the file header.
	Metadata map[string]string
	// BPW, when set, is a size in bits per linear weight, everything
	// counted: each linear tensor gets the grid that minimises the summed
	// proxy loss within it (see planBudget) instead of Grid.
	BPW float64
	// NoSuperGrids, with BPW, leaves the superblock grids (Grid.Super:
	// q4_k, q3_k, q5_k, q6_k and the asymmetric ones) out of the candidates, so
	// that every tensor gets a plain grid.
	NoSuperGrids bool
	// InputCov (cafeq, without block transforms) re-rounds q/k/v, gate/up
	// and the output projection GPTQ-style for input covariances made from
	// the model alone (see inputcov.go), keeping the result where it
	// lowers that weighted error.
	InputCov bool

	grids map[string]Grid // the budget's choice per tensor
}

// gridFor is the grid tensor name is stored on.
func (o CheckpointOptions) gridFor(name string) Grid {
	if g, ok := o.grids[name]; ok {
		return g
	}
	return o.Grid
}

// forMatrices is o's Options for quantizing the named matrices together:
// each on its own grid, transforms fitted on the first one's.
func (o CheckpointOptions) forMatrices(names ...string) Options {
	opt := o.Options
	opt.Grid = o.gridFor(names[0])
	opt.Grids = nil
	for _, n := range names {
		opt.Grids = append(opt.Grids, o.gridFor(n))
	}
	return opt
}

// transformBytes is what the M⁻¹ tensors of the plan take in the file.
func (o CheckpointOptions) transformBytes(cfg model.Config) int64 {
	specs := o.specs(cfg)
	used := map[string]bool{}
	for _, s := range specs {
		if s.Transform != nil {
			used[s.Transform.Tensor] = true
		}
	}
	var n int64
	for _, s := range specs {
		if used[s.Name] {
			n += int64(s.Shape[0]) * int64(s.Format.RowBytes(s.Shape[1]))
		}
	}
	return n
}

// CheckpointReport is the outcome of QuantizeCheckpoint.
type CheckpointReport struct {
	Entries []Entry
	Seconds float64
	Bytes   int64 // tensor bytes written
}

// layerPlan says, for one layer, which transform tensor each input gets
// ("" for none; the name is model.Input.TransformName) and whether v and o
// are quantized together by QuantizeVO (coupled, folded transform).
type layerPlan struct {
	attnIn, attnOut, ffnIn, downIn string
	useVO                          bool
}

// transform is the transform tensor of input in ("" for none).
func (p layerPlan) transform(in model.Input) string {
	switch in {
	case model.AttnIn:
		return p.attnIn
	case model.AttnOut:
		return p.attnOut
	case model.FFNIn:
		return p.ffnIn
	case model.DownIn:
		return p.downIn
	}
	return ""
}

func (o CheckpointOptions) plan(cfg model.Config, l int) layerPlan {
	p := layerPlan{}
	transformed := o.Method == MethodHadamard || o.Method == MethodCafeQ
	p.useVO = o.Method == MethodCafeQ && cfg.HeadDim%o.gridFor(model.LayerName(l, model.AttnO)).scaleBlock() == 0
	if transformed && !(o.Method == MethodCafeQ && o.NoBlock) {
		p.attnIn = model.AttnIn.TransformName(l)
		p.ffnIn = model.FFNIn.TransformName(l)
		if o.Method == MethodHadamard || o.TransformDown {
			p.downIn = model.DownIn.TransformName(l)
		}
		if o.Method == MethodHadamard {
			p.attnOut = model.AttnOut.TransformName(l)
		}
	}
	return p
}

// QuantizeCheckpoint quantizes every linear weight of ck and writes the .cq
// file at outPath. It holds about one tensor group in memory beyond the mapped
// checkpoint; the file appears only when complete.
func QuantizeCheckpoint(ck *model.Checkpoint, tok *tokenizer.Tokenizer, outPath string, opt CheckpointOptions) (*CheckpointReport, error) {
	start := time.Now()
	cfg := ck.Config
	opt.Options = opt.Options.withDefaults()
	if opt.EmbedFormat.Type == kernels.TypeInvalid {
		opt.EmbedFormat = kernels.FormatQ6
	}
	if opt.TransformFormat.Type == kernels.TypeInvalid {
		opt.TransformFormat = kernels.FormatQ8
	}
	// Checked up front, before an hour of work ends in a file nothing loads.
	if n := tok.VocabSize(); n > cfg.VocabSize {
		return nil, fmt.Errorf("quantize: the tokenizer has %d pieces, more than the model's vocab_size %d", n, cfg.VocabSize)
	}
	if err := checkVectors(ck); err != nil {
		return nil, err
	}
	if err := opt.EmbedFormat.Valid(cfg.HiddenSize); err != nil {
		return nil, fmt.Errorf("quantize: embedding format: %w", err)
	}
	blockTransforms := opt.Method == MethodHadamard || (opt.Method == MethodCafeQ && !opt.NoBlock)
	for _, cols := range []int{cfg.HiddenSize, cfg.IntermediateSize, cfg.QDim()} {
		if err := opt.Grid.Validate(cols); err != nil && opt.BPW == 0 {
			return nil, fmt.Errorf("quantize: %w", err)
		}
		if blockTransforms && cols%opt.Block != 0 {
			return nil, fmt.Errorf("quantize: transform block %d does not divide width %d", opt.Block, cols)
		}
	}
	if opt.Method != MethodRTN {
		if err := opt.TransformFormat.Valid(opt.Block); err != nil {
			return nil, fmt.Errorf("quantize: transform format: %w", err)
		}
		// Quantize against the M⁻¹ the runtime will actually apply.
		opt.InvFormat = opt.TransformFormat
	}
	if opt.BPW < 0 || math.IsNaN(opt.BPW) || math.IsInf(opt.BPW, 0) {
		return nil, fmt.Errorf("quantize: bits per weight %g", opt.BPW)
	}
	if opt.BPW > 0 {
		grids, err := planBudget(ck, opt, opt.transformBytes(cfg), opt.budgetValid(cfg, blockTransforms))
		if err != nil {
			return nil, err
		}
		opt.grids = grids
	}

	specs := opt.specs(cfg)
	configJSON, err := cfg.HFJSON()
	if err != nil {
		return nil, err
	}
	kind, tokData := tok.Source()
	tokKind := model.TokenizerSentencePiece
	if kind == tokenizer.KindHuggingFace {
		tokKind = model.TokenizerHFJSON
	}
	block := 0
	if blockTransforms {
		block = opt.Block
	}
	w, err := model.CreateCQ(outPath, model.CQHeader{
		Config:    configJSON,
		Quant:     opt.header(block),
		Metadata:  opt.Metadata,
		Tokenizer: model.CQTokenizer{Kind: tokKind, Data: tokData},
	}, specs)
	if err != nil {
		return nil, err
	}
	q := &checkpointWriter{ck: ck, w: w, opt: opt, report: &CheckpointReport{}}
	if opt.InputCov && opt.Method == MethodCafeQ && !blockTransforms {
		if q.stats, err = newInputStats(ck, opt.Seed); errors.Is(err, errNoInputCov) {
			q.stats = nil // a degenerate embedding: quantize without
		} else if err != nil {
			w.Abort()
			return nil, err
		}
	}
	if q.stats != nil {
		// The output projection is then quantized last: refuse a
		// non-finite one before the layers' work, not after it.
		if _, err := meanSquare(ck, outputName(cfg), 0); err != nil {
			w.Abort()
			return nil, err
		}
	}
	if err := q.run(); err != nil {
		w.Abort()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	q.report.Seconds = time.Since(start).Seconds()
	return q.report, nil
}

// budgetValid says which grids tensor name may use in a bit budget.
func (o CheckpointOptions) budgetValid(cfg model.Config, blockTransforms bool) func(name string, g Grid) bool {
	return func(name string, g Grid) bool {
		_, kind, _ := model.SplitLayerName(name)
		if blockTransforms && o.Block%g.scaleBlock() != 0 {
			return false
		}
		// Coupled V/O groups (superblocks) of o must not straddle heads.
		return o.Method != MethodCafeQ || (kind != model.AttnO && kind != model.AttnV) || cfg.HeadDim%g.scaleBlock() == 0
	}
}

// header records the run's settings: the grid, or the bit budget when
// each tensor has its own (then Bits and Group are 0).
func (o CheckpointOptions) header(block int) model.CQQuant {
	if o.BPW > 0 {
		return model.CQQuant{Method: string(o.Method), BPW: o.BPW, Block: block}
	}
	return model.CQQuant{Method: string(o.Method), Bits: o.Grid.Bits, Group: o.Grid.Group, Asym: o.Grid.Asym, Block: block}
}

// specs lists every tensor of the output file with its format and transform.
func (o CheckpointOptions) specs(cfg model.Config) []model.CQTensorSpec {
	d := cfg.HiddenSize
	specs := []model.CQTensorSpec{{Name: model.NameEmbed, Format: o.EmbedFormat, Shape: []int{cfg.VocabSize, d}}}
	if !cfg.TieWordEmbeddings {
		specs = append(specs, model.CQTensorSpec{Name: model.NameOutput, Format: o.EmbedFormat, Shape: []int{cfg.VocabSize, d}})
	}
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		p := o.plan(cfg, l)
		for _, t := range model.LayerTensors {
			s := model.CQTensorSpec{Name: model.LayerName(l, t.Kind), Format: kernels.FormatF32, Shape: t.Shape(cfg)}
			if t.Linear() {
				s.Format = o.gridFor(s.Name).Format()
				if name := p.transform(t.Input); name != "" {
					s.Transform = &model.CQTransform{Tensor: name, Block: o.Block}
				}
			}
			specs = append(specs, s)
		}
		// Each transform is stored once, as an (input width, block) matrix.
		for _, in := range model.Inputs {
			if name := p.transform(in); name != "" {
				specs = append(specs, model.CQTensorSpec{Name: name, Format: o.TransformFormat, Shape: []int{in.Width(cfg), o.Block}})
			}
		}
	}
	specs = append(specs, model.CQTensorSpec{Name: model.NameFinalNorm, Format: kernels.FormatF32, Shape: []int{d}})
	return specs
}

type checkpointWriter struct {
	ck     *model.Checkpoint
	w      *model.CQWriter
	opt    CheckpointOptions
	report *CheckpointReport
	done   int
	total  int
	// With opt.InputCov: what the input covariances are made from, and the
	// covariance of the input being quantized now (nil: none).
	stats *inputStats
	cov   *inputCov
}

func (q *checkpointWriter) progress(what string, work int) {
	q.done += work
	if q.opt.Progress != nil {
		q.opt.Progress(q.done, q.total, what)
	}
}

// groupWork estimates the time of quantizing one group of tensors, in
// passes over their weights: one for plain rounding (and the refinements),
// and CafeQ's Steps optimizer steps more where it learns a transform. By
// tensor groups alone, the first group (the embedding: 22% of a 2B model's
// weights, only rounded) set an ETA ten times too long for a plain RTN run.
func (q *checkpointWriter) groupWork(weights int, learned bool) int {
	if learned && q.opt.Method == MethodCafeQ {
		return weights * (1 + q.opt.Steps)
	}
	return weights
}

// layerWork is the work of layer l's four progress steps: attention input
// (q, k, v), attention output (o; with CafeQ's coupled V/O also v again),
// FFN input (gate, up) and FFN output (down).
func (q *checkpointWriter) layerWork(l int) [4]int {
	c := q.ck.Config
	p := q.opt.plan(c, l)
	d, qd, kvd, ffn := c.HiddenSize, c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim, c.IntermediateSize
	out := q.groupWork(qd*d, p.useVO)
	if p.useVO {
		out += q.groupWork(kvd*d, true)
	}
	return [4]int{
		q.groupWork(d*(qd+2*kvd), p.attnIn != ""),
		out,
		q.groupWork(2*d*ffn, p.ffnIn != ""),
		q.groupWork(ffn*d, p.downIn != ""),
	}
}

func (q *checkpointWriter) embedWork() int {
	c := q.ck.Config
	n := c.VocabSize * c.HiddenSize
	if !c.TieWordEmbeddings {
		n *= 2
	}
	return n
}

func (q *checkpointWriter) run() error {
	cfg := q.ck.Config
	q.total = q.embedWork() + cfg.HiddenSize
	for l := range cfg.NumHiddenLayers {
		for _, w := range q.layerWork(l) {
			q.total += w
		}
	}
	// The output projection (the tied embedding) is written last when the
	// stream's states at the end of the layers give its input covariance.
	output := outputName(cfg)
	if output != model.NameEmbed {
		if err := q.writeEmbedding(model.NameEmbed, nil); err != nil {
			return err
		}
	}
	if q.stats == nil {
		if err := q.writeEmbedding(output, nil); err != nil {
			return err
		}
		q.progress("embedding", q.embedWork())
	}
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		if err := q.layer(l); err != nil {
			return fmt.Errorf("quantize: layer %d: %w", l, err)
		}
	}
	if q.stats != nil {
		f, err := q.finalFactor()
		if err != nil {
			return err
		}
		if err := q.writeEmbedding(output, f); err != nil {
			return err
		}
		q.progress("embedding", q.embedWork())
	}
	if err := q.writeVector(model.NameFinalNorm, nil); err != nil {
		return err
	}
	q.progress("final norm", cfg.HiddenSize)
	return nil
}

func (q *checkpointWriter) layer(l int) error {
	cfg := q.ck.Config
	p := q.opt.plan(cfg, l)
	work := q.layerWork(l)
	// Vectors are stored as they are, except the norms before q/k/v and
	// gate/up, which take their input's diagonal transform below.
	for _, t := range model.LayerTensors {
		if t.Linear() || t.Kind == model.AttnNorm || t.Kind == model.FFNNorm {
			continue
		}
		if err := q.writeVector(model.LayerName(l, t.Kind), nil); err != nil {
			return err
		}
	}
	name := func(kind string) string { return model.LayerName(l, kind) }
	// Attention input: q, k and v share one transform of their input, whose
	// diagonal part (if any) folds into the norm before them. With CafeQ, v
	// (in that transformed basis) and o are then re-quantized as a coupled
	// pair, whose per-head transforms fold into the weights.
	qkv, err := q.loadAll(name(model.AttnQ), name(model.AttnK), name(model.AttnV))
	if err != nil {
		return err
	}
	if err := q.nextCov(); err != nil {
		return err
	}
	attn, err := q.shared(qkv, q.opt.forMatrices(name(model.AttnQ), name(model.AttnK), name(model.AttnV)), p.attnIn, !p.useVO, name(model.AttnNorm))
	if err != nil {
		return err
	}
	if err := q.writeVector(name(model.AttnNorm), attn.Diag); err != nil {
		return err
	}
	q.progress(fmt.Sprintf("layer %d attention input", l), work[0])
	if p.useVO {
		if err := q.vo(l, attn); err != nil {
			return err
		}
	} else {
		o, err := q.loadAll(name(model.AttnO))
		if err != nil {
			return err
		}
		if _, err := q.shared(o, q.methodFor(p.attnOut, name(model.AttnO)), p.attnOut, true, ""); err != nil {
			return err
		}
	}
	q.progress(fmt.Sprintf("layer %d attention output", l), work[1])
	if q.stats != nil {
		if err := q.stats.stream.attention(q, l); err != nil {
			return err
		}
		if err := q.nextCov(); err != nil {
			return err
		}
	}
	// down_proj first: the diagonal of its input folds into up's rows,
	// which gate/up then quantize as stored.
	down, err := q.loadAll(name(model.FFNDown))
	if err != nil {
		return err
	}
	downOpt := q.methodFor(p.downIn, name(model.FFNDown))
	if q.opt.Method == MethodCafeQ {
		downOpt.Method, downOpt.NoBlock = MethodCafeQ, p.downIn == ""
	}
	downRes, err := QuantizeShared(down, downOpt)
	if err != nil {
		return err
	}
	gateUp, err := q.loadAll(name(model.FFNGate), name(model.FFNUp))
	if err != nil {
		return err
	}
	if d := downRes.Diag; d != nil {
		up := gateUp[1]
		for i := range up.Data {
			up.Data[i] /= d[i/up.Cols]
		}
	}
	ffn, err := q.shared(gateUp, q.opt.forMatrices(name(model.FFNGate), name(model.FFNUp)), p.ffnIn, true, name(model.FFNNorm))
	if err != nil {
		return err
	}
	if err := q.writeVector(name(model.FFNNorm), ffn.Diag); err != nil {
		return err
	}
	q.progress(fmt.Sprintf("layer %d ffn input", l), work[2])
	if err := q.write(down, downRes, p.downIn, true); err != nil {
		return err
	}
	q.progress(fmt.Sprintf("layer %d ffn output", l), work[3])
	if q.stats != nil {
		return q.stats.stream.mlp(q, l)
	}
	return nil
}

// nextCov makes the covariance of the stream's current states the one
// the next matrices are re-rounded for (none if it is degenerate).
func (q *checkpointWriter) nextCov() error {
	if q.stats == nil {
		return nil
	}
	var err error
	if q.cov, err = q.stats.cov(); errors.Is(err, errNoInputCov) {
		q.cov = nil
		return nil
	}
	return err
}

// loadAll loads the named matrices as float32.
func (q *checkpointWriter) loadAll(names ...string) ([]Matrix, error) {
	ms := make([]Matrix, len(names))
	for i, n := range names {
		m, err := q.load(n)
		if err != nil {
			return nil, err
		}
		ms[i] = m
	}
	return ms, nil
}

// methodFor is the options for a matrix that has a transform tensor only if
// transformName is set; without one it is quantized without a transform but
// keeps the method's data-free refinements.
func (q *checkpointWriter) methodFor(transformName, matrix string) Options {
	o := q.opt.forMatrices(matrix)
	if transformName == "" {
		o.Method = MethodRTN
	}
	return o
}

// shared quantizes matrices that read one input and writes them (all of
// them, or all but the last when writeLast is false) with their transform
// (identity blocks when the method kept none). norm names the RMSNorm that
// makes their input ("" for none): with an input covariance, the written
// matrices are re-rounded for it.
func (q *checkpointWriter) shared(ms []Matrix, opt Options, transformName string, writeLast bool, norm string) (*Result, error) {
	res, err := QuantizeShared(ms, opt)
	if err != nil {
		return nil, err
	}
	written := len(ms)
	if !writeLast {
		written--
	}
	if err := q.reround(ms[:written], res, norm); err != nil {
		return nil, err
	}
	return res, q.write(ms, res, transformName, writeLast)
}

// reround re-rounds each of ms (as res stores them) for the input
// covariance behind the RMSNorm norm, where that lowers the weighted
// error (see inputcov.go). It does nothing without a covariance, without
// a norm, or when res has a block transform (S·H0·S is the covariance of
// the input before M^-1, not after).
func (q *checkpointWriter) reround(ms []Matrix, res *Result, norm string) error {
	if q.cov == nil || norm == "" || res.Transform != nil {
		return nil
	}
	w, err := q.normWeight(norm)
	if err != nil {
		return err
	}
	q.reroundWith(ms, res, q.cov.factorFor(inputScale(w, res.Diag)))
	return nil
}

// vector loads a 1-D tensor as float32.
func (q *checkpointWriter) vector(name string) ([]float32, error) {
	t, err := q.ck.Tensor(name)
	if err != nil {
		return nil, err
	}
	return t.Float32s()
}

// normWeight loads an RMSNorm weight that scales the model's inputs.
func (q *checkpointWriter) normWeight(norm string) ([]float32, error) {
	w, err := q.vector(norm)
	if err != nil {
		return nil, err
	}
	if len(w) != q.cov.n {
		return nil, fmt.Errorf("quantize: %q has %d values for inputs of %d", norm, len(w), q.cov.n)
	}
	return w, nil
}

// reroundWith re-rounds each of ms for the input covariance f, keeping
// the result where it lowers the weighted error, and reports it.
func (q *checkpointWriter) reroundWith(ms []Matrix, res *Result, f *gptqFactor) {
	for i, m := range ms {
		x := m.Data
		if res.Diag != nil {
			x = scaleCols(x, m.Rows, m.Cols, res.Diag)
		}
		nq, ratio := reround(x, res.Q[i], f)
		if nq == nil {
			continue
		}
		res.Q[i] = nq
		res.Report[i].InputCovRatio = ratio
		res.Report[i].RelErr = relErrThrough(m.Data, x, nq, res.Diag)
	}
}

// relErrThrough is ||W - Q·D^-1||_F / ||W||_F for q storing x = W·D (diag
// nil: D = I, x = W).
func relErrThrough(w, x []float32, q *Quantized, diag []float32) float64 {
	var inv []float32
	if diag != nil {
		inv = make([]float32, len(diag))
		for j, d := range diag {
			inv[j] = 1 / d
		}
	}
	var ww float64
	for _, v := range w {
		ww += float64(v) * float64(v)
	}
	return math.Sqrt(plainBlockErr(x, q, q.Cols, inv)[0] / math.Max(ww, 1e-30))
}

// write stores a QuantizeShared result (see shared).
func (q *checkpointWriter) write(ms []Matrix, res *Result, transformName string, writeLast bool) error {
	for i, m := range ms {
		if i == len(ms)-1 && !writeLast {
			break
		}
		if err := q.writeQuantized(m.Name, res.Q[i]); err != nil {
			return err
		}
		q.report.Entries = append(q.report.Entries, res.Report[i])
	}
	if transformName != "" {
		return q.writeTransform(transformName, res.Transform, ms[0].Cols)
	}
	return nil
}

// vo re-quantizes v, taken into the basis of the attention input's
// transform (D·M of attn), together with o as a coupled V/O pair.
func (q *checkpointWriter) vo(l int, attn *Result) error {
	cfg := q.ck.Config
	v, err := q.load(model.LayerName(l, model.AttnV))
	if err != nil {
		return err
	}
	if attn.Diag != nil {
		v.Data = scaleCols(v.Data, v.Rows, v.Cols, attn.Diag)
	}
	if v, err = attn.Transform.Fold(v); err != nil {
		return err
	}
	o, err := q.load(model.LayerName(l, model.AttnO))
	if err != nil {
		return err
	}
	res, err := QuantizeVO(v, o, cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim, q.opt.forMatrices(o.Name))
	if err != nil {
		return err
	}
	if err := q.writeQuantized(v.Name, res.V); err != nil {
		return err
	}
	if err := q.writeQuantized(o.Name, res.O); err != nil {
		return err
	}
	q.report.Entries = append(q.report.Entries, res.Report...)
	return nil
}

func (q *checkpointWriter) load(name string) (Matrix, error) {
	t, err := q.ck.Tensor(name)
	if err != nil {
		return Matrix{}, err
	}
	data, err := t.Float32s()
	if err != nil {
		return Matrix{}, err
	}
	return Matrix{Name: name, Rows: t.Shape[0], Cols: t.Shape[1], Data: data}, nil
}

func (q *checkpointWriter) writeQuantized(name string, m *Quantized) error {
	f := m.Grid.Format()
	rb := f.RowBytes(m.Cols)
	out := make([]byte, m.Rows*rb)
	for r := 0; r < m.Rows; r++ {
		if err := m.PackRow(out[r*rb:(r+1)*rb], r); err != nil {
			return fmt.Errorf("quantize: %q row %d: %w", name, r, err)
		}
	}
	q.report.Bytes += int64(len(out))
	return q.w.WriteTensor(name, out)
}

// writeTransform stores M⁻¹ as an (n, block) matrix in the transform format.
func (q *checkpointWriter) writeTransform(name string, t *Transform, n int) error {
	b := q.opt.Block
	inv := make([]float32, n*b)
	if t == nil {
		for r := 0; r < n; r++ {
			inv[r*b+r%b] = 1
		}
	} else {
		if t.Block != b || len(t.Inv) != n*b {
			return fmt.Errorf("quantize: transform %q: block %d over %d values, want block %d over %d", name, t.Block, len(t.Inv), b, n*b)
		}
		copy(inv, t.Inv)
	}
	return q.writeRows(name, q.opt.TransformFormat, inv, n, b)
}

func (q *checkpointWriter) writeEmbedding(name string, cov *gptqFactor) error {
	t, err := q.ck.Tensor(name)
	if err != nil {
		return err
	}
	// Row by row: the 2B embedding is 2.4 GB as float32.
	rows, cols := t.Shape[0], t.Shape[1]
	f := q.opt.EmbedFormat
	rb := f.RowBytes(cols)
	out := make([]byte, rows*rb)
	g, err := gridOf(f)
	if err != nil || (q.opt.Refine&RefineLSQ == 0 && cov == nil) {
		row := make([]float32, cols)
		for r := 0; r < rows; r++ {
			if err := t.RowFloat32s(r, row); err != nil {
				return err
			}
			if err := encodeRow(f, out[r*rb:(r+1)*rb], row); err != nil {
				return fmt.Errorf("quantize: %q row %d: %w", name, r, err)
			}
		}
	} else if err := q.refinedEmbedding(t, g, out, cov); err != nil {
		return fmt.Errorf("quantize: %q: %w", name, err)
	}
	q.report.Bytes += int64(len(out))
	return q.w.WriteTensor(name, out)
}

// outputName is the tensor that is the output projection: the embedding
// when tied (Gemma 2's layout).
func outputName(cfg model.Config) string {
	if cfg.TieWordEmbeddings {
		return model.NameEmbed
	}
	return model.NameOutput
}

// finalFactor is the input covariance of the output projection: the
// stream's states after the last layer, through the final norm.
func (q *checkpointWriter) finalFactor() (*gptqFactor, error) {
	if err := q.nextCov(); err != nil || q.cov == nil {
		return nil, err
	}
	w, err := q.normWeight(model.NameFinalNorm)
	if err != nil {
		return nil, err
	}
	f := q.cov.factorFor(inputScale(w, nil))
	f.sampleRows = embedCheckRows
	return f, nil
}

// embedCheckRows is how many rows of each chunk of the output projection
// decide between the plain and the re-rounded chunk: 1 in 32, as the
// 256,000-row 2B table would otherwise cost more to score than to round.
const embedCheckRows = embedChunk / 32

// embedChunk is how many rows of the embedding are rounded at a time.
const embedChunk = 1024

// refinedEmbedding writes the embedding t on grid g into out (g's rows,
// packed) with the least-squares refinement of every group's scale (and
// min) that the linear weights get (with opt.Refine's RefineLSQ): the
// matrix is also the output projection, whose errors reach the logits
// directly. The clipping search is left out: it may clip a row's largest
// entries, which make that token's largest logits. On the trained test
// model (all of eval.txt, ctx 256, -k -bpw 4.5) KL went from 0.00206 to
// 0.00202 and top-1 from 96.04% to 96.25%; with the clipping search as
// well KL was 0.00200 but top-1 95.71% (a float32 embedding: 0.00175).
// With cov (the output projection's input covariance) the rows are then
// re-rounded GPTQ-style for it, chunk by chunk where that lowers the
// weighted error: on the same model the default 4.5-bit KL went from
// 0.00129 to 0.00122 and top-1 from 96.89% to 97.13%, although the
// embedding rows as inputs get the larger plain error. It takes chunks of
// rows, so the 2B embedding is never in memory as float32.
func (q *checkpointWriter) refinedEmbedding(t model.Tensor, g Grid, out []byte, cov *gptqFactor) error {
	rows, cols := t.Shape[0], t.Shape[1]
	rb := g.Format().RowBytes(cols)
	x := make([]float32, min(embedChunk, rows)*cols)
	for r0 := 0; r0 < rows; r0 += embedChunk {
		n := min(embedChunk, rows-r0)
		for r := range n {
			if err := t.RowFloat32s(r0+r, x[r*cols:(r+1)*cols]); err != nil {
				return err
			}
		}
		qm, err := RTN(g, x[:n*cols], n, cols)
		if err != nil {
			return fmt.Errorf("rows %d..%d: %w", r0, r0+n-1, err)
		}
		if q.opt.Refine&RefineLSQ != 0 {
			refineRows(qm, x[:n*cols], nil, RefineLSQ)
		}
		if cov != nil {
			if nq, _ := reround(x[:n*cols], qm, cov); nq != nil {
				qm = nq
			}
		}
		for r := range n {
			if err := qm.PackRow(out[(r0+r)*rb:(r0+r+1)*rb], r); err != nil {
				return fmt.Errorf("row %d: %w", r0+r, err)
			}
		}
	}
	return nil
}

// writeRows stores a float matrix in format f (plain rounding for quantized formats).
func (q *checkpointWriter) writeRows(name string, f kernels.Format, data []float32, rows, cols int) error {
	rb := f.RowBytes(cols)
	out := make([]byte, rows*rb)
	for r := 0; r < rows; r++ {
		if err := encodeRow(f, out[r*rb:(r+1)*rb], data[r*cols:(r+1)*cols]); err != nil {
			return fmt.Errorf("quantize: %q row %d: %w", name, r, err)
		}
	}
	q.report.Bytes += int64(len(out))
	return q.w.WriteTensor(name, out)
}

// writeVector stores a norm weight as float32. With diag, the weight feeds
// matrices that store W·D, so the norm's (1+w_j) becomes (1+w_j)/d_j
// (Gemma's RMSNorm multiplies by 1+w): the input they see is D^-1 x.
func (q *checkpointWriter) writeVector(name string, diag []float32) error {
	t, err := q.ck.Tensor(name)
	if err != nil {
		return err
	}
	data, err := t.Float32s()
	if err != nil {
		return err
	}
	if diag != nil {
		if len(diag) != len(data) {
			return fmt.Errorf("quantize: %q: %d values for a diagonal of %d", name, len(data), len(diag))
		}
		for j, d := range diag {
			data[j] = float32((1+float64(data[j]))/float64(d) - 1)
		}
	}
	if i := nonFinite(data); i >= 0 {
		return fmt.Errorf("quantize: %q: value %d is %v after folding the input transform", name, i, data[i])
	}
	out := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	q.report.Bytes += int64(len(out))
	return q.w.WriteTensor(name, out)
}

// checkVectors refuses a checkpoint whose norm vectors hold NaN or ±Inf:
// stored as they are, they would make every logit NaN (matrices are checked
// as they are quantized).
func checkVectors(ck *model.Checkpoint) error {
	for _, name := range ck.Names() {
		t, err := ck.Tensor(name)
		if err != nil {
			return err
		}
		if len(t.Shape) != 1 {
			continue
		}
		v, err := t.Float32s()
		if err != nil {
			return err
		}
		if i := nonFinite(v); i >= 0 {
			return fmt.Errorf("quantize: tensor %q: value %d is %v", name, i, v[i])
		}
	}
	return nil
}

// nonFinite is the index of the first NaN or ±Inf in x, or -1.
func nonFinite(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}

// encodeRow writes one row of floats in any kernels format. A NaN or ±Inf is
// an error: no format may carry one into the file.
func encodeRow(f kernels.Format, dst []byte, src []float32) error {
	if i := nonFinite(src); i >= 0 {
		return fmt.Errorf("non-finite weight %v at column %d", src[i], i)
	}
	switch f.Type {
	case kernels.F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
		return nil
	case kernels.BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], kernels.F32ToBF16(v))
		}
		return nil
	case kernels.F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], float16.Fromfloat32(v).Bits())
		}
		return nil
	}
	return kernels.QuantizeRowRTN(f, dst, src)
}
