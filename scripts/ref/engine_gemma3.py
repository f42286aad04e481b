#!/usr/bin/env python3
"""Greedy continuations and per-position logits of Gemma 3 270M from llama.cpp.

Regenerate (needs llama-cpp-python; flash attention off, llama.cpp's default f16 KV cache):
    python scripts/ref/engine_gemma3.py PATH/TO/gemma-3-270m-q4_k_m.gguf \\
        > crates/hanlin-models/testdata/gemma3_greedy.json
    python scripts/ref/engine_gemma3.py --n-batch 1 PATH/TO/gemma-3-270m-q4_k_m.gguf \\
        > crates/hanlin-models/testdata/gemma3_greedy_b1.json
The first evaluates each prompt as one batch (llama.cpp's default); `--n-batch 1` feeds the
prompt one token at a time, so every position runs llama.cpp's single-token kernels, the
ones hanlin reproduces bit for bit (see docs/correctness.md). Per position we keep the top-10
logits and the logits of 16 fixed token ids, enough to check agreement without committing
262,144 floats per position.

Op-by-op comparison (llama.cpp's eval callback; compare with the `.npy` files of
`cargo run --release -p hanlin-models --example trace_dump`):
    python scripts/ref/engine_gemma3.py --dump OUTDIR [--n-batch N] MODEL "prompt" [N_DECODE]
writes OUTDIR/call{c}/{tensor name}.npy for every f32/f16 tensor of each llama_decode call
(call 0: the prompt, call k: greedy decode step k; a name seen again in one call gets `#k`).
"""
import argparse
import ctypes
import hashlib
import json
import os
import sys

import llama_cpp
import llama_cpp.llama_cpp as llama_c
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


def load(path, n_batch):
    return llama_cpp.Llama(path, n_ctx=512, n_threads=2, n_batch=n_batch, logits_all=True,
                           flash_attn=False, verbose=False)


def reference(path, n_batch):
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    llm = load(path, n_batch)
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
    settings = {"n_threads": 2, "flash_attn": False, "kv": "f16", "add_bos": True}
    if n_batch != 512:
        settings["n_batch"] = n_batch
    json.dump({
        "generator": "scripts/ref/engine_gemma3.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model_sha256": sha,
        "settings": settings,
        "fixed_ids": FIXED_IDS,
        "runs": runs,
    }, sys.stdout, ensure_ascii=False, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


class GgmlTensor(ctypes.Structure):
    """`struct ggml_tensor` (ggml.h), as far as the data pointer and the name."""
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
    ]


def dump(path, n_batch, out, prompt, n_decode):
    """Runs the prompt and `n_decode` greedy steps, saving every f32/f16 tensor the CPU
    backend computes (the eval callback sees each node after it ran)."""
    state = {"call": 0, "seen": {}}

    def on_tensor(t_ptr, ask, _user):
        if ask:
            return True
        t = ctypes.cast(t_ptr, ctypes.POINTER(GgmlTensor)).contents
        if t.type not in (0, 1):  # f32, f16
            return True
        name = t.name.decode(errors="replace")
        esz = 4 if t.type == 0 else 2
        ne, nb = list(t.ne), list(t.nb)
        span = sum((n - 1) * s for n, s in zip(ne, nb)) + esz
        raw = np.frombuffer((ctypes.c_char * span).from_address(t.data), dtype=np.uint8).copy()
        arr = np.lib.stride_tricks.as_strided(
            raw.view(np.float32 if t.type == 0 else np.float16),
            shape=ne[::-1], strides=nb[::-1]).copy()
        d = os.path.join(out, f"call{state['call']}")
        os.makedirs(d, exist_ok=True)
        key = (state["call"], name)
        k = state["seen"].get(key, 0)
        state["seen"][key] = k + 1
        fname = (name if k == 0 else f"{name}#{k}").replace("/", "_")
        np.save(os.path.join(d, fname + ".npy"), arr)
        return True

    callback = llama_c.ggml_backend_sched_eval_callback(on_tensor)
    default_params = llama_c.llama_context_default_params

    def with_callback():
        p = default_params()
        p.cb_eval = callback
        p.cb_eval_user_data = None
        return p

    llama_c.llama_context_default_params = with_callback
    try:
        llm = load(path, n_batch)
    finally:
        llama_c.llama_context_default_params = default_params
    toks = llm.tokenize(prompt.encode(), add_bos=True, special=False)
    llm.eval(toks)
    gen = []
    nxt = int(np.argmax(llm.scores[len(toks) - 1]))
    for _ in range(n_decode):
        state["call"] += 1
        gen.append(nxt)
        llm.eval([nxt])
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    with open(os.path.join(out, "tokens.json"), "w") as f:
        json.dump({"prompt": toks, "decode": gen}, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-batch", type=int, default=512, help="llama.cpp n_batch (1: token by token)")
    ap.add_argument("--dump", metavar="OUTDIR", help="dump every intermediate tensor instead")
    ap.add_argument("model")
    ap.add_argument("prompt", nargs="?", help="with --dump: the prompt")
    ap.add_argument("n_decode", nargs="?", type=int, default=1, help="with --dump: decode steps")
    a = ap.parse_args()
    if a.dump:
        if a.prompt is None:
            ap.error("--dump needs a prompt")
        dump(a.model, a.n_batch, a.dump, a.prompt, a.n_decode)
    else:
        reference(a.model, a.n_batch)


if __name__ == "__main__":
    main()
