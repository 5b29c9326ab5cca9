package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cafeq/cafeq/kernels"
)

// TestSizeCountsEverything: bits per linear weight include the scales and
// mins of each group and every M⁻¹ its matrices read, a shared one once;
// the embedding, norms and header are not linear.
func TestSizeCountsEverything(t *testing.T) {
	q4 := kernels.Format{Type: kernels.Q4, Group: 64, Asym: true} // 36 bytes per 64 weights
	tr := &CQTransform{Tensor: LayerName(0, "attn_in.inv"), Block: 64}
	specs := []CQTensorSpec{
		{Name: NameEmbed, Format: kernels.FormatQ8, Shape: []int{32, 128}},
		{Name: LayerName(0, AttnNorm), Format: kernels.FormatF32, Shape: []int{128}},
		{Name: LayerName(0, AttnQ), Format: q4, Shape: []int{128, 128}, Transform: tr},
		{Name: LayerName(0, AttnK), Format: q4, Shape: []int{64, 128}, Transform: tr},
		{Name: LayerName(0, FFNDown), Format: q4, Shape: []int{128, 256}},
		{Name: tr.Tensor, Format: kernels.FormatQ8, Shape: []int{128, 64}},
	}
	path := filepath.Join(t.TempDir(), "s.cq")
	w, err := CreateCQ(path, CQHeader{Config: json.RawMessage(`{}`)}, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		n, _ := cqTensorSize(s.Format, s.Shape)
		if err := w.WriteTensor(s.Name, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := OpenCQ(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := os.Stat(path)
	s, list := SizeOf(f, st.Size(), 1000)
	weights := int64(128*128 + 64*128 + 128*256)
	linear := weights / 64 * 36
	minv := int64(128 * 2 * 34) // 128 rows of 64 q8 entries: two 34-byte groups each
	want := Size{FileBytes: st.Size(), LinearWeights: weights, LinearBytes: linear, TransformBytes: minv,
		EmbedBytes: 32 * 4 * 34, OtherBytes: 128 * 4,
		LinearBPW: 8 * float64(linear+minv) / float64(weights), FileBPW: 8 * float64(st.Size()) / 1000}
	if s != want {
		t.Errorf("size\n got %+v\nwant %+v", s, want)
	}
	if len(list) != len(specs) || list[2].Transform != tr.Tensor || list[2].Block != 64 || list[4].Transform != "" {
		t.Errorf("listing %+v", list)
	}
}
