#!/usr/bin/env python3
"""Greedy continuations and per-position logits of Gemma 3 270M from llama.cpp.

Regenerate (needs llama-cpp-python; flash attention off, llama.cpp's default f16 KV cache):
    python scripts/ref/engine_gemma3.py PATH/TO/gemma-3-270m-q4_k_m.gguf \
        > crates/hanlin-models/testdata/gemma3_greedy.json
Per position we keep the top-10 logits and the logits of 16 fixed token ids, enough to
check agreement without committing 262,144 floats per position.
"""
import hashlib
import json
import sys

import llama_cpp
import numpy as np

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "To make a cup of tea, first",
    "大模型是实现通用人工智能的重要路径",
    "中国的首都是",
    "床前明月光，",
    "def fibonacci(n):\n    ",
    "import numpy as np\n\n# Compute the mean of an array\n",
    "SELECT name, COUNT(*) FROM orders",
    "Question: What is 12 + 30?\nAnswer:",
    "The weather today is 🌞 and",
]
N_GEN = 32
TOPK = 10
FIXED_IDS = [0, 1, 2, 3, 10, 100, 818, 1000, 5279, 10000, 50000, 100000, 150000, 200000, 250000, 262143]


def main() -> None:
    path = sys.argv[1]
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    llm = llama_cpp.Llama(path, n_ctx=512, n_threads=2, n_batch=512, logits_all=True,
                          flash_attn=False, verbose=False)
    runs = []
    for prompt in PROMPTS:
        llm.reset()
        ptoks = llm.tokenize(prompt.encode(), add_bos=True, special=False)
        llm.eval(ptoks)
        positions = []
        gen = []
        def record(row):
            row = np.asarray(row, dtype=np.float32)
            top = np.argsort(-row, kind="stable")[:TOPK]
            positions.append({
                "top_ids": [int(i) for i in top],
                "top_logits": [float(row[i]) for i in top],
                "fixed_logits": [float(row[i]) for i in FIXED_IDS],
            })
            return int(top[0])
        for i in range(len(ptoks)):
            nxt = record(llm.scores[i])
        for _ in range(N_GEN):
            gen.append(nxt)
            llm.eval([nxt])
            nxt = record(llm.scores[llm.n_tokens - 1])
        runs.append({
            "prompt": prompt,
            "prompt_tokens": ptoks,
            "greedy_tokens": gen,
            "greedy_text": llm.detokenize(gen).decode("utf-8", errors="replace"),
            "positions": positions,
        })
    json.dump({
        "generator": "scripts/ref/engine_gemma3.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model_sha256": sha,
        "settings": {"n_threads": 2, "flash_attn": False, "kv": "f16", "add_bos": True},
        "fixed_ids": FIXED_IDS,
        "runs": runs,
    }, sys.stdout, ensure_ascii=False, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
