#!/usr/bin/env python3
"""llama.cpp reference for the synthetic llama / qwen2 / qwen3 models.

    cargo run --release -p hanlin-test-support --example write_synthetic -- DIR \
        ../shared/testdata/models/stories260K/stories260K-f32.gguf
    python scripts/ref/synthetic_llamacpp.py DIR > crates/hanlin-models/testdata/synthetic_llamacpp.json
    python scripts/ref/synthetic_llamacpp.py --n-batch 1 DIR \
        > crates/hanlin-models/testdata/synthetic_llamacpp_b1.json

For each F16 model: quantize with llama.cpp's own quantizer (Q8_0, Q4_0, Q4_K_M, no imatrix),
record each tensor's type and the sha256 of its bytes (the test re-quantizes with hanlin-quant
and must produce the same bytes), and the logits llama.cpp computes for every position of a
fixed token sequence (flash attention off, f16 KV cache). By default the sequence is one
batch (llama.cpp's batched kernels); `--n-batch 1` feeds it token by token, so every position
runs llama.cpp's single-token kernels, which hanlin reproduces bit for bit.
"""
import ctypes
import hashlib
import json
import os
import sys

import llama_cpp
import numpy as np
from gguf import GGUFReader

TOKENS = [1, 15, 200, 37, 480, 99, 312, 7, 64, 128]
FTYPES = {"Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15}


def tensor_table(path):
    r = GGUFReader(path)
    return {t.name: {"type": t.tensor_type.name, "sha256": hashlib.sha256(bytes(t.data.tobytes())).hexdigest()}
            for t in r.tensors}


def logits(path, n_batch):
    llm = llama_cpp.Llama(path, n_ctx=64, n_threads=2, n_batch=n_batch, n_ubatch=n_batch,
                          logits_all=True, flash_attn=False, verbose=False)
    llm.eval(TOKENS)
    rows = [[round(float(x), 4) for x in llm.scores[i]] for i in range(len(TOKENS))]
    del llm
    return rows


def main():
    args = sys.argv[1:]
    n_batch = 64
    if args[:1] == ["--n-batch"]:
        n_batch, args = int(args[1]), args[2:]
    d = args[0]
    llama_cpp.llama_backend_init()
    out = {"generator": "scripts/ref/synthetic_llamacpp.py", "llama_cpp_python": llama_cpp.__version__,
           "tokens": TOKENS, "n_batch": n_batch, "models": []}
    for arch in ["llama", "qwen2", "qwen3"]:
        f16 = os.path.join(d, f"synthetic-{arch}-f16.gguf")
        variants = [("F16", f16)]
        for name, ftype in FTYPES.items():
            q = os.path.join(d, f"synthetic-{arch}-{name}.gguf")
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = ftype
            params.nthread = 2
            rc = llama_cpp.llama_model_quantize(f16.encode(), q.encode(), ctypes.byref(params))
            assert rc == 0, f"quantize {arch} {name} failed"
            variants.append((name, q))
        for name, path in variants:
            out["models"].append({
                "arch": arch,
                "variant": name,
                "f16_sha256": hashlib.sha256(open(f16, "rb").read()).hexdigest(),
                "tensors": tensor_table(path),
                "logits": logits(path, n_batch),
            })
            print(arch, name, file=sys.stderr)
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
