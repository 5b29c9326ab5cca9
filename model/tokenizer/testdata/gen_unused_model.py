"""Makes unused.model, the tiny Gemma tokenizer.model with a few common
pieces retyped UNUSED (SentencePiece forms them during BPE, then splits them
back), and unused_cases.json, SentencePiece 0.1.97's ids for the stress
texts with it.

Run from the repository root:
    /usr/bin/python3 model/tokenizer/testdata/gen_unused_model.py
"""
import json

import sentencepiece as spm

UNUSED = {"ll", "in", "er", "▁t", "es", "ing", "on"}


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def put_varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def fields(b):
    """Splits a message into (field, wire type, raw field bytes)."""
    i, out = 0, []
    while i < len(b):
        start = i
        key, i = varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            _, i = varint(b, i)
        elif w == 2:
            n, i = varint(b, i)
            i += n
        elif w == 5:
            i += 4
        else:
            raise ValueError(w)
        out.append((f, w, b[start:i]))
    return out


def payload(raw):
    _, i = varint(raw, 0)
    _, j = varint(raw, i)
    return raw[j:]


model = open("testdata/gemma2-tiny/tokenizer.model", "rb").read()
out = bytearray()
for f, w, raw in fields(model):
    if f == 1:
        piece = dict((pf, praw) for pf, _, praw in fields(payload(raw)))
        text = payload(piece[1]).decode()
        if text in UNUSED:
            body = piece[1] + piece.get(2, b"") + put_varint(3 << 3) + put_varint(5)
            raw = put_varint(1 << 3 | 2) + put_varint(len(body)) + body
    out += raw
open("model/tokenizer/testdata/unused.model", "wb").write(out)

sp = spm.SentencePieceProcessor(model_file="model/tokenizer/testdata/unused.model")
texts = [c["text"] for c in json.load(open("testdata/gemma-tokenizer/extra_cases.json"))["cases"]]
texts += open("testdata/shakespeare-gemma2/eval.txt", encoding="utf-8").read().split("\n")[:400]
cases = [{"text": t, "ids": sp.encode(t)} for t in texts]
with open("model/tokenizer/testdata/unused_cases.json", "w", encoding="utf-8") as f:
    json.dump({"reference": "sentencepiece %s, no BOS" % spm.__version__, "unused": sorted(UNUSED), "cases": cases},
              f, ensure_ascii=False, separators=(",", ":"))
    f.write("\n")
