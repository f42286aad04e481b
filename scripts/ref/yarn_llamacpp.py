#!/usr/bin/env python3
"""llama.cpp reference for YaRN RoPE scaling on the synthetic qwen2 model.

    cargo run --release -p hanlin-test-support --example write_synthetic -- DIR \
        ../shared/testdata/models/stories260K/stories260K-f32.gguf
    python scripts/ref/yarn_llamacpp.py DIR > crates/hanlin-models/testdata/yarn_llamacpp.json

The model is synthetic-qwen2-f16 with `rope.scaling.type = yarn`, factor 4, original context
4096 (hanlin_test_support::yarn_keys). 160 positions are evaluated so that the interpolated
(low-frequency) pairs turn far enough to matter; every 16th row of logits is recorded.
"""
import hashlib
import json
import os
import sys

import llama_cpp

TOKENS = [(i * 37 + 11) % 500 + 3 for i in range(160)]
KEEP = list(range(0, 160, 16)) + [159]


def main():
    d = sys.argv[1]
    path = os.path.join(d, "synthetic-qwen2-yarn-f16.gguf")
    llama_cpp.llama_backend_init()
    llm = llama_cpp.Llama(path, n_ctx=256, n_threads=2, n_batch=256, logits_all=True,
                          flash_attn=False, verbose=False)
    llm.eval(TOKENS)
    rows = {str(i): [round(float(x), 4) for x in llm.scores[i]] for i in KEEP}
    out = {"generator": "scripts/ref/yarn_llamacpp.py", "llama_cpp_python": llama_cpp.__version__,
           "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(),
           "tokens": TOKENS, "logits": rows}
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
