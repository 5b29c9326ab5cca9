"""Generates sp_cases.json: reference ids from SentencePiece 0.1.97 (Debian
bookworm's python3-sentencepiece, the version behind
testdata/gemma2-tiny/tokenizer_cases.json) for the stress texts of
testdata/gemma-tokenizer/extra_cases.json and for eval.txt, with the tiny and
the Shakespeare tokenizer.model. No BOS is added.

Run from the repository root:
    apt-get install python3-sentencepiece
    /usr/bin/python3 model/tokenizer/testdata/gen_sp_cases.py
"""
import json

import sentencepiece as spm

texts = [c["text"] for c in json.load(open("testdata/gemma-tokenizer/extra_cases.json"))["cases"]]
eval_txt = open("testdata/shakespeare-gemma2/eval.txt", encoding="utf-8").read()
out = {"reference": "sentencepiece %s SentencePieceProcessor.encode, no BOS" % spm.__version__, "models": {}}
for name in ("gemma2-tiny", "shakespeare-gemma2"):
    sp = spm.SentencePieceProcessor(model_file="testdata/%s/tokenizer.model" % name)
    out["models"][name] = {
        "cases": [{"text": t, "ids": sp.encode(t)} for t in texts],
        "eval_txt_ids": sp.encode(eval_txt),
    }
with open("model/tokenizer/testdata/sp_cases.json", "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    f.write("\n")
