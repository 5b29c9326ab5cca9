#!/usr/bin/env python3
"""Score llama.cpp's calibration-free types with cafeq's forward pass.

Only the weights differ from a cafeq file's measurement: a Gemma 2 checkpoint
is written as an F32 GGUF, quantized by llama.cpp's own llama-quantize
(no importance matrix, as users run it), dequantized back with gguf-py and
written as a float32 Hugging Face checkpoint, which
`cafeq perplexity -m DIR -ref CHECKPOINT` then scores. Needs numpy and
llama.cpp's gguf-py (PYTHONPATH=llama.cpp/gguf-py).

  to-gguf   SRC_DIR OUT.gguf          the checkpoint as an F32 GGUF
  from-gguf Q.gguf SRC_DIR OUT_DIR    the quantized weights back as a checkpoint;
                                      prints bits per linear weight (all counted)
  bench-gguf SRC_DIR OUT.gguf         a BF16 checkpoint (e.g. `cafeq synth -preset 2b
                                      -tokenizer tokenizer.json`) as the BF16 GGUF that
                                      llama.cpp's converter would write, for llama-bench:
                                      norm weights + 1, the vocabulary of tokenizer.json
"""
import json
import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import gguf

LINEAR = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
          "mlp.down_proj": "ffn_down"}
NORMS = {"input_layernorm": "attn_norm", "post_attention_layernorm": "post_attention_norm",
         "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm"}


def gguf_name(hf):
    name = hf.removesuffix(".weight")
    if name == "model.embed_tokens":
        return "token_embd.weight"
    if name == "model.norm":
        return "output_norm.weight"
    parts = name.split(".", 3)  # model.layers.N.rest
    rest = parts[3]
    return f"blk.{parts[2]}.{LINEAR.get(rest) or NORMS[rest]}.weight"


def read_safetensors(path):
    data = Path(path).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[8 + n + a:8 + n + b]
        if t["dtype"] == "BF16":
            v = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif t["dtype"] == "F32":
            v = np.frombuffer(raw, dtype=np.float32)
        else:
            raise SystemExit(f"{name}: dtype {t['dtype']} not handled")
        out[name] = v.reshape(t["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def to_gguf(src, out):
    cfg = json.loads((Path(src) / "config.json").read_text())
    w = gguf.GGUFWriter(out, "gemma2")
    add_hparams(w, cfg)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for name, v in sorted(read_safetensors(Path(src) / "model.safetensors").items()):
        w.add_tensor(gguf_name(name), v.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def add_hparams(w, cfg):
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
    w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
    w.add_sliding_window(cfg["sliding_window"])
    w.add_rope_freq_base(cfg["rope_theta"])


def add_vocab(w, tokenizer_json, cfg):
    """Gemma's SentencePiece vocabulary as the converter writes it (model "llama")."""
    tok = json.loads(Path(tokenizer_json).read_text())
    vocab = tok["model"]["vocab"]
    special = {t["id"] for t in tok.get("added_tokens", []) if t.get("special")}
    tokens = [""] * cfg["vocab_size"]
    for piece, i in vocab.items():
        if i < len(tokens):
            tokens[i] = piece
    types = []
    for i, piece in enumerate(tokens):
        if i in special or (piece.startswith("<") and piece.endswith(">") and not piece.startswith("<0x")):
            types.append(gguf.TokenType.CONTROL)
        elif re.fullmatch(r"<0x[0-9A-F]{2}>", piece):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("llama")
    w.add_token_list([t.encode() for t in tokens])
    w.add_token_scores([-float(i) for i in range(len(tokens))])
    w.add_token_types(types)
    w.add_bos_token_id(cfg.get("bos_token_id", 2))
    w.add_eos_token_id(cfg.get("eos_token_id", 1))
    w.add_pad_token_id(cfg.get("pad_token_id", 0))
    w.add_unk_token_id(3)
    w.add_add_space_prefix(False)


def bench_gguf(src, out):
    """Streams one tensor at a time (a 2B checkpoint is 5 GB as BF16)."""
    cfg = json.loads((Path(src) / "config.json").read_text())
    path = Path(src) / "model.safetensors"
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    w = gguf.GGUFWriter(out, "gemma2")
    add_hparams(w, cfg)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    add_vocab(w, Path(src) / "tokenizer.json", cfg)
    for name in sorted(k for k in header if k != "__metadata__"):
        t = header[name]
        if t["dtype"] != "BF16":
            raise SystemExit(f"{name}: dtype {t['dtype']}, want BF16")
        a, b = t["data_offsets"]
        bits = raw[a:b].view(np.uint16)
        if len(t["shape"]) == 1:
            # Norm weights, kept in F32 as the converter keeps 1-D tensors; Gemma's
            # RMSNorm scales by 1 + w and llama.cpp stores 1 + w.
            f32 = (bits.astype(np.uint32) << 16).view(np.float32)
            w.add_tensor(gguf_name(name), f32 + 1 if name.endswith("norm.weight") else f32)
            continue
        w.add_tensor(gguf_name(name), np.asarray(bits).reshape(t["shape"]), raw_dtype=gguf.GGMLQuantizationType.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def from_gguf(qpath, src, out):
    orig = read_safetensors(Path(src) / "model.safetensors")
    back = {gguf_name(n): n for n in orig}
    reader = gguf.GGUFReader(qpath)
    bits, weights, types = 0, 0, {}
    tensors = {n: v for n, v in orig.items()}
    for t in reader.tensors:
        hf = back[t.name]
        shape = orig[hf].shape
        if t.name == "token_embd.weight" or any(t.name.endswith(f".{k}.weight") for k in LINEAR.values()):
            tensors[hf] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape)
        if any(t.name.endswith(f".{k}.weight") for k in LINEAR.values()):
            bits += 8 * int(t.n_bytes)
            weights += int(np.prod(shape))
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    Path(out).mkdir(parents=True, exist_ok=True)
    write_safetensors(Path(out) / "model.safetensors", tensors)
    for f in ("config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"):
        if (Path(src) / f).exists():
            shutil.copy(Path(src) / f, Path(out) / f)
    emb = next(t for t in reader.tensors if t.name == "token_embd.weight")
    print(json.dumps({"linear_bits_per_weight": bits / weights, "linear_types": types,
                      "embedding": emb.tensor_type.name}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "to-gguf":
        to_gguf(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "bench-gguf":
        bench_gguf(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "from-gguf":
        from_gguf(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)
