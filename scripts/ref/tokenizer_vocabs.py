#!/usr/bin/env python3
"""llama.cpp tokenizer reference for every vocabulary in shared/testdata/vocab.

Regenerate (needs llama-cpp-python):
    python scripts/ref/tokenizer_vocabs.py ../shared/testdata/vocab \
        > crates/hanlin-tokenizer/testdata/vocab_llamacpp.json

Complements llama.cpp's own .inp/.out vectors (which only cover add_special=false,
parse_special=false): here every vocabulary, including the load-only ones, is tokenized
with all four (add_special, parse_special) settings on strings that embed the
vocabulary's own special-token texts, and detokenized with llama_detokenize
(remove_special=false, unparse_special false and true). Special ids and the
end-of-generation set are recorded too.
"""
import ctypes
import glob
import json
import os
import sys

import llama_cpp

BASE = [
    "",
    " ",
    "Hello world",
    "  Hello,   world!  ",
    "I'm sure you're right, aren't you? 'quoted' ...",
    "大模型是实现通用人工智能的重要路径",
    "🦙🚀 emoji 😶\u200d🌫️",
    "def f(x):\n\treturn x ** 2  # square\n\n",
    "Ünïcödé àccénts ½ ①",
    "1234567 3.14 0x1F",
]
PAIRS = [(False, False), (False, True), (True, False), (True, True)]
ATTR_UNKNOWN = 1 << 0
ATTR_CONTROL = 1 << 3
ATTR_USER_DEFINED = 1 << 4


def tokenize(vocab, text: str, add_special: bool, parse_special: bool) -> list:
    data = text.encode("utf-8")
    cap = len(data) + 16
    buf = (llama_cpp.llama_token * cap)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, cap, add_special, parse_special)
    if n < 0:
        raise RuntimeError(f"buffer too small for {text!r}")
    return [int(buf[i]) for i in range(n)]


def detokenize(vocab, ids: list, special: bool) -> str:
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    cap = 64 + 32 * len(ids)
    while True:
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, cap, False, special)
        if n >= 0:
            return buf.raw[:n].decode("utf-8", errors="replace")
        cap = -n + 1


def special_texts(vocab, n_vocab: int) -> list:
    """Up to four short special-token texts of the vocabulary (control and user-defined)."""
    found = []
    for want in (ATTR_CONTROL, ATTR_USER_DEFINED):
        for i in range(n_vocab):
            attr = llama_cpp.llama_vocab_get_attr(vocab, i)
            if not attr & want or attr & ATTR_UNKNOWN:
                continue
            text = llama_cpp.llama_vocab_get_text(vocab, i).decode("utf-8", errors="replace")
            # Visible, not whitespace-only, not "[PAD123]"-style filler.
            if 2 <= len(text) <= 20 and text.strip() == text and text.isprintable():
                found.append(text)
                if len([t for t in found if t]) >= 2 * (1 + (want == ATTR_USER_DEFINED)):
                    break
    return found[:4]


def main() -> None:
    vocab_dir = sys.argv[1]
    llama_cpp.llama_backend_init()
    out = {
        "source": f"llama-cpp-python {llama_cpp.__version__}, vocab_only",
        "vocabs": {},
    }
    for path in sorted(glob.glob(os.path.join(vocab_dir, "ggml-vocab-*.gguf"))):
        name = os.path.basename(path)[len("ggml-vocab-"):-len(".gguf")]
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not model:
            raise RuntimeError(f"cannot load {path}")
        vocab = llama_cpp.llama_model_get_vocab(model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        specials = special_texts(vocab, n_vocab)
        strings = list(BASE)
        if specials:
            s = specials + [""] * (4 - len(specials))
            strings.append(f"{s[0]}Hello{s[1]} world {s[2]}\n{s[3]}end")
            strings.append(f"  {s[0]}  spaced  {s[0]}{s[0]} ")

        def opt(tok: int):
            return None if tok < 0 else int(tok)

        cases = []
        for text in strings:
            for add_special, parse_special in PAIRS:
                ids = tokenize(vocab, text, add_special, parse_special)
                cases.append({
                    "text": text,
                    "add_special": add_special,
                    "parse_special": parse_special,
                    "ids": ids,
                    "decoded": detokenize(vocab, ids, False),
                    "decoded_special": detokenize(vocab, ids, True),
                })
        out["vocabs"][name] = {
            "n_vocab": n_vocab,
            "bos": opt(llama_cpp.llama_vocab_bos(vocab)),
            "eos": opt(llama_cpp.llama_vocab_eos(vocab)),
            "eot": opt(llama_cpp.llama_vocab_eot(vocab)),
            "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
            "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
            "eog": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)],
            "cases": cases,
        }
        llama_cpp.llama_model_free(model)
    json.dump(out, sys.stdout, ensure_ascii=False, indent=0)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
