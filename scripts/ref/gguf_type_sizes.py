#!/usr/bin/env python3
"""Prints ggml tensor type ids, block sizes and block byte sizes as gguf-py defines them.

The output is the fixture crates/hanlin-gguf/testdata/ggml_type_sizes.txt, which
crates/hanlin-gguf/tests/type_sizes.rs compares against GgmlType::{block_size, type_size}.

    python3 scripts/ref/gguf_type_sizes.py > crates/hanlin-gguf/testdata/ggml_type_sizes.txt

Needs `pip install gguf numpy` (llama.cpp's gguf-py).
"""

import importlib.metadata

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType


def main() -> None:
    print(f"# ggml type sizes from gguf-py {importlib.metadata.version('gguf')} GGML_QUANT_SIZES")
    print("# name id block_size type_size")
    for t in sorted(GGMLQuantizationType, key=int):
        block_size, type_size = GGML_QUANT_SIZES[t]
        print(f"{t.name} {int(t)} {block_size} {type_size}")


if __name__ == "__main__":
    main()
