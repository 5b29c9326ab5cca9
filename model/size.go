package model

import "fmt"

// Size is what a model file stores, counted so that sizes of different
// quantizers compare honestly: the bits of the linear layers include their
// scales, mins and the input transforms (M⁻¹) the runtime reads with them.
type Size struct {
	FileBytes int64 `json:"file_bytes"` // the whole file: header, tokenizer, padding, tensors
	// LinearWeights counts the weights of the per-layer linear matrices
	// (q, k, v, o, gate, up, down); LinearBytes their stored bytes, scales
	// and mins included; TransformBytes the M⁻¹ tensors those matrices
	// reference, each counted once however many matrices share it.
	LinearWeights  int64 `json:"linear_weights"`
	LinearBytes    int64 `json:"linear_bytes"`
	TransformBytes int64 `json:"transform_bytes"`
	// EmbedBytes is the embedding (and untied output) matrix, OtherBytes
	// the norms and anything else.
	EmbedBytes int64 `json:"embed_bytes"`
	OtherBytes int64 `json:"other_bytes"`
	// LinearBPW is 8·(LinearBytes+TransformBytes)/LinearWeights: bits per
	// linear weight, everything counted. FileBPW is 8·FileBytes over every
	// parameter of the model (embedding and norms included).
	LinearBPW float64 `json:"linear_bits_per_weight"`
	FileBPW   float64 `json:"file_bits_per_weight"`
}

// TensorSize is one stored tensor, as inspect lists it.
type TensorSize struct {
	Name      string `json:"name"`
	Format    string `json:"format"`
	Shape     []int  `json:"shape"`
	Bytes     int64  `json:"bytes"`
	Transform string `json:"transform,omitempty"` // the M⁻¹ tensor its input goes through
	Block     int    `json:"block,omitempty"`     // that transform's block size
}

// isLinear reports whether a canonical name is a per-layer linear matrix.
func isLinear(name string) bool {
	_, kind, ok := SplitLayerName(name)
	if !ok {
		return false
	}
	for _, k := range LinearKinds {
		if kind == k {
			return true
		}
	}
	return false
}

// SizeOf counts the tensors of an open .cq file whose whole length is
// fileBytes, and lists them.
func SizeOf(f *CQFile, fileBytes int64, params int64) (Size, []TensorSize) {
	s := Size{FileBytes: fileBytes}
	tensors := f.Tensors()
	byName := map[string]CQTensor{}
	for _, t := range tensors {
		byName[t.Name] = t
	}
	transforms := map[string]bool{}
	var list []TensorSize
	for _, t := range tensors {
		ts := TensorSize{Name: t.Name, Format: t.Format.String(), Shape: t.Shape, Bytes: t.Size}
		if t.Transform != nil {
			ts.Transform, ts.Block = t.Transform.Tensor, t.Transform.Block
		}
		list = append(list, ts)
		switch {
		case isLinear(t.Name):
			s.LinearWeights += elements(t.Shape)
			s.LinearBytes += t.Size
			if t.Transform != nil && !transforms[t.Transform.Tensor] {
				transforms[t.Transform.Tensor] = true
				s.TransformBytes += byName[t.Transform.Tensor].Size
			}
		case t.Name == NameEmbed || t.Name == NameOutput:
			s.EmbedBytes += t.Size
		}
	}
	for _, t := range tensors {
		if !isLinear(t.Name) && t.Name != NameEmbed && t.Name != NameOutput && !transforms[t.Name] {
			s.OtherBytes += t.Size
		}
	}
	s.finish(params)
	return s, list
}

func (s *Size) finish(params int64) {
	if s.LinearWeights > 0 {
		s.LinearBPW = 8 * float64(s.LinearBytes+s.TransformBytes) / float64(s.LinearWeights)
	}
	if params > 0 {
		s.FileBPW = 8 * float64(s.FileBytes) / float64(params)
	}
}

func elements(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

// String is the one-line summary inspect and quantize print.
func (s Size) String() string {
	return fmt.Sprintf("%.3f bits per linear weight, everything counted (%d weights: %d bytes of weights, scales and mins + %d bytes of transforms); file %d bytes (%.2f bits per parameter)",
		s.LinearBPW, s.LinearWeights, s.LinearBytes, s.TransformBytes, s.FileBytes, s.FileBPW)
}
