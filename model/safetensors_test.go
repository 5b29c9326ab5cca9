package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

// buildSafetensors writes a header and data section the way the format specifies.
func buildSafetensors(t testing.TB, header map[string]any, data []byte) []byte {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(out, h...)
	return append(out, data...)
}

func TestParseSafetensors(t *testing.T) {
	file := buildSafetensors(t, map[string]any{
		"__metadata__": map[string]string{"format": "pt"},
		"a":            map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}},
		"b":            map[string]any{"dtype": "BF16", "shape": []int{2, 1}, "data_offsets": []int{8, 12}},
	}, []byte{0, 0, 128, 63, 0, 0, 0, 64, 128, 63, 64, 192})
	ts, err := ParseSafetensors(file)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ts["a"].Float32s()
	b, _ := ts["b"].Float32s()
	if a[0] != 1 || a[1] != 2 || b[0] != 1 || b[1] != -3 {
		t.Fatalf("decoded %v %v", a, b)
	}
}

func TestParseSafetensorsRejects(t *testing.T) {
	entry := func(dtype string, shape []int, begin, end int) map[string]any {
		return map[string]any{"dtype": dtype, "shape": shape, "data_offsets": []int{begin, end}}
	}
	data := make([]byte, 16)
	cases := map[string][]byte{
		"short":        {1, 2, 3},
		"huge header":  binary.LittleEndian.AppendUint64(nil, 1<<40),
		"bad json":     append(binary.LittleEndian.AppendUint64(nil, 1), '{'),
		"outside":      buildSafetensors(t, map[string]any{"a": entry("F32", []int{8}, 0, 32)}, data),
		"size":         buildSafetensors(t, map[string]any{"a": entry("F32", []int{3}, 0, 16)}, data),
		"overlap":      buildSafetensors(t, map[string]any{"a": entry("F32", []int{2}, 0, 8), "b": entry("F32", []int{2}, 4, 12)}, data),
		"dtype":        buildSafetensors(t, map[string]any{"a": entry("Q4", []int{2}, 0, 1)}, data),
		"negative dim": buildSafetensors(t, map[string]any{"a": entry("F32", []int{-2}, 0, 0)}, data),
		"reversed":     buildSafetensors(t, map[string]any{"a": entry("F32", []int{0}, 8, 4)}, data),
		"trailing":     buildSafetensors(t, map[string]any{"a": entry("F32", []int{2}, 0, 8)}, data),
		"gap":          buildSafetensors(t, map[string]any{"a": entry("F32", []int{2}, 0, 8), "b": entry("F32", []int{1}, 12, 16)}, data),
		"not at 0":     buildSafetensors(t, map[string]any{"a": entry("F32", []int{2}, 8, 16)}, data),
		"empty":        buildSafetensors(t, map[string]any{"__metadata__": map[string]string{}}, data),
	}
	for name, file := range cases {
		if _, err := ParseSafetensors(file); !errors.Is(err, ErrSafetensors) {
			t.Errorf("%s: got %v, want ErrSafetensors", name, err)
		}
	}
}

// TestSafetensorsShiftedHeader is the review's case: a header length one
// byte too small, with the header's trailing space then read as data, shifted
// every tensor by a byte and was accepted.
func TestSafetensorsShiftedHeader(t *testing.T) {
	h := []byte(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} `)
	good := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	good = append(append(good, h...), 0, 0, 128, 63, 0, 0, 0, 64)
	if _, err := ParseSafetensors(good); err != nil {
		t.Fatal(err)
	}
	shifted := bytes.Clone(good)
	binary.LittleEndian.PutUint64(shifted, uint64(len(h)-1))
	if _, err := ParseSafetensors(shifted); !errors.Is(err, ErrSafetensors) {
		t.Fatalf("header one byte short: got %v, want ErrSafetensors", err)
	}
	if _, err := ParseSafetensors(append(bytes.Clone(good), 0)); !errors.Is(err, ErrSafetensors) {
		t.Fatalf("one trailing byte: got %v, want ErrSafetensors", err)
	}
}

// TestSafetensorsZeroSizeTensor: a zero-size tensor at the offset where
// another begins was accepted or refused depending on map order. Both orders
// of the same data are parsed many times; each must be accepted every time.
func TestSafetensorsZeroSizeTensor(t *testing.T) {
	entry := func(shape []int, begin, end int) map[string]any {
		return map[string]any{"dtype": "F32", "shape": shape, "data_offsets": []int{begin, end}}
	}
	header := map[string]any{
		"a": entry([]int{2}, 0, 8), "empty": entry([]int{0, 4}, 8, 8),
		"b": entry([]int{2}, 8, 16), "c": entry([]int{0}, 16, 16),
	}
	file := buildSafetensors(t, header, make([]byte, 16))
	for range 100 {
		ts, err := ParseSafetensors(file)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts["empty"].Data) != 0 || len(ts["b"].Data) != 8 {
			t.Fatalf("empty: %d bytes, b: %d bytes", len(ts["empty"].Data), len(ts["b"].Data))
		}
	}
}

func TestOpenCheckpointGolden(t *testing.T) {
	ck, err := OpenCheckpoint("../testdata/gemma2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if len(ck.Names()) != len(ck.Config.ExpectedShapes()) {
		t.Fatalf("got %d tensors", len(ck.Names()))
	}
	emb, err := ck.Tensor(NameEmbed)
	if err != nil || emb.Shape[0] != 512 || emb.Shape[1] != 256 {
		t.Fatalf("embed: %v %v", emb.Shape, err)
	}
}

// TestOpenCheckpointSharded splits the golden checkpoint into two shards with
// an index file and checks that the same tensors come back.
func TestOpenCheckpointSharded(t *testing.T) {
	src, err := os.ReadFile("../testdata/gemma2-tiny/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ParseSafetensors(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	shards := [2]map[string]any{{}, {}}
	shardData := [2][]byte{}
	weightMap := map[string]string{}
	i := 0
	for name, tensor := range ts {
		s := i % 2
		i++
		begin := len(shardData[s])
		shardData[s] = append(shardData[s], tensor.Data...)
		shards[s][name] = map[string]any{"dtype": tensor.DType, "shape": tensor.Shape, "data_offsets": []int{begin, len(shardData[s])}}
		weightMap[name] = []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[s]
	}
	for s, name := range []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
		if err := os.WriteFile(filepath.Join(dir, name), buildSafetensors(t, shards[s], shardData[s]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	index, _ := json.Marshal(map[string]any{"weight_map": weightMap})
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), index, 0o644)
	cfg, _ := os.ReadFile("../testdata/gemma2-tiny/config.json")
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	want, _ := ts["model.layers.3.mlp.down_proj.weight"].Float32s()
	got, _ := ck.Tensor(LayerName(3, FFNDown))
	gotF, _ := got.Float32s()
	for i := range want {
		if want[i] != gotF[i] {
			t.Fatal("sharded tensor differs")
		}
	}
}

func TestOpenCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := os.ReadFile("../testdata/gemma2-tiny/config.json")
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	if _, err := OpenCheckpoint(dir); err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("missing weights: %v", err)
	}
	full, _ := os.ReadFile("../testdata/gemma2-tiny/model.safetensors")
	os.WriteFile(filepath.Join(dir, "model.safetensors"), full[:len(full)/2], 0o644)
	if _, err := OpenCheckpoint(dir); err == nil {
		t.Error("truncated checkpoint accepted")
	}
	// A config that disagrees with the weights is caught by shape checks.
	os.WriteFile(filepath.Join(dir, "model.safetensors"), full, 0o644)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(strings.Replace(string(cfg), `"intermediate_size": 768`, `"intermediate_size": 512`, 1)), 0o644)
	if _, err := OpenCheckpoint(dir); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("shape mismatch: %v", err)
	}
}

func FuzzParseSafetensors(f *testing.F) {
	f.Add(buildSafetensors(f, map[string]any{"a": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}}}, make([]byte, 8)))
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	if data, err := os.ReadFile("../testdata/gemma2-tiny/model.safetensors"); err == nil {
		f.Add(data[:4096])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := ParseSafetensors(data)
		if err != nil {
			if !errors.Is(err, ErrSafetensors) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		// Accepted tensors tile the data section exactly.
		n := binary.LittleEndian.Uint64(data)
		var total int
		for _, tensor := range ts {
			total += len(tensor.Data)
		}
		if uint64(total) != uint64(len(data))-8-n {
			t.Fatalf("tensors hold %d bytes of a %d-byte data section", total, uint64(len(data))-8-n)
		}
		for _, tensor := range ts {
			if tensor.DType == F32 || tensor.DType == F16 || tensor.DType == BF16 {
				if _, err := tensor.Float32s(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// TestWriteSyntheticOddShapes writes random checkpoints with shapes released
// models do not have (head_dim not a power of two, GQA ratio 3) and reads
// them back through the strict checkpoint reader.
func TestWriteSyntheticOddShapes(t *testing.T) {
	cfg := Gemma2_2B()
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers = 96, 160, 2
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim, cfg.QueryPreAttnScalar = 6, 2, 48, 40
	cfg.VocabSize = 300
	dir := t.TempDir()
	if err := WriteSynthetic(dir, cfg, 1, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Config != cfg {
		t.Fatalf("config changed:\n%+v\n%+v", ck.Config, cfg)
	}
	q, _ := ck.Tensor(LayerName(1, AttnQ))
	v, _ := q.Float32s()
	var nonzero int
	for _, x := range v {
		if x != 0 {
			nonzero++
		}
	}
	if nonzero < len(v)*9/10 {
		t.Fatalf("synthetic weights mostly zero: %d of %d", nonzero, len(v))
	}
}
