#!/usr/bin/env python3
"""Gemma 3 tokenizer reference from llama.cpp (llama-cpp-python, vocabulary only).

Regenerate:
    python scripts/ref/tokenizer_gemma3.py PATH/TO/gemma-3-270m-q4_k_m.gguf \
        > crates/hanlin-tokenizer/testdata/gemma3_tokens.json

For every string and every (add_special, parse_special) pair we record llama_tokenize's
ids, llama_detokenize's text (remove_special=false, with and without unparse_special) and
each id's llama_token_to_piece bytes (special=false, hex), plus the vocabulary's special
ids and end-of-generation set.
"""
import ctypes
import hashlib
import json
import sys

import llama_cpp

STRINGS = [
    "",
    " ",
    "   ",
    "Hello world",
    " Hello world",
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "大模型是实现通用人工智能的重要路径",
    "中国的首都是北京。",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "Mixed 中文 and English 混合 text.",
    "こんにちは世界、カタカナとひらがな",
    "안녕하세요, 세계!",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "สวัสดีครับ ประเทศไทย",
    "Ünïcödé àccénts: çà et là, naïve façade",
    "ﬁ ligature, ＦＵＬＬＷＩＤＴＨ, ①②③, ½ ¾",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀 𐍈 rare characters",
    "🌞🦙🚀 emoji 😶\u200d🌫️ family 👨\u200d👩\u200d👧\u200d👦 flags 🇨🇳🇺🇸",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "fn main() {\n\tprintln!(\"{}\", 42);\n}\n",
    "SELECT name, COUNT(*) FROM orders WHERE total > 100 GROUP BY name;",
    'JSON: {"key": [1, 2, {"nested": null, "flag": true}]}',
    "URL: https://example.com/path?query=1&x=y#frag",
    "Numbers: 1234567890 3.14159 -42 1e-10 0x1F 1,000,000",
    "   leading spaces",
    "trailing spaces   ",
    "multiple     spaces    between  words",
    "\n\n\nnewlines\n\nin\nbetween\n\n",
    "\ttabs\t\tand\ttext\t",
    "\r\nwindows\r\nlines\r\n",
    "a\u00a0b\u2009c\u3000d\u200be",
    "ha" * 40,
    "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text after bos<eos>",
    "<start_of_image> [multimodal] <mask> <unused0> <pad>",
    "not special: <start_of_turn without end, <end_of_turn>>",
]

PAIRS = [(False, False), (False, True), (True, False), (True, True)]


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
    cap = 64 + 16 * len(ids)
    while True:
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, cap, False, special)
        if n >= 0:
            return buf.raw[:n].decode("utf-8", errors="replace")
        cap = -n + 1


def piece(vocab, token: int, special: bool) -> bytes:
    buf = ctypes.create_string_buffer(256)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, 256, 0, special)
    if n < 0:
        raise RuntimeError(f"piece of {token} longer than 256 bytes")
    return buf.raw[:n]


def main() -> None:
    path = sys.argv[1]
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise RuntimeError(f"cannot load {path}")
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)

    def opt(tok: int):
        return None if tok < 0 else int(tok)

    cases = []
    for text in STRINGS:
        for add_special, parse_special in PAIRS:
            ids = tokenize(vocab, text, add_special, parse_special)
            cases.append({
                "text": text,
                "add_special": add_special,
                "parse_special": parse_special,
                "ids": ids,
                "decoded": detokenize(vocab, ids, False),
                "decoded_special": detokenize(vocab, ids, True),
                "pieces_hex": [piece(vocab, t, False).hex() for t in ids],
            })
    out = {
        "source": f"llama-cpp-python {llama_cpp.__version__}, vocab_only, llama_tokenize / "
                  "llama_detokenize(remove_special=false) / llama_token_to_piece",
        "model_sha256": sha,
        "n_vocab": n_vocab,
        "bos": opt(llama_cpp.llama_vocab_bos(vocab)),
        "eos": opt(llama_cpp.llama_vocab_eos(vocab)),
        "eot": opt(llama_cpp.llama_vocab_eot(vocab)),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
        "eog": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "cases": cases,
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    llama_cpp.llama_model_free(model)


if __name__ == "__main__":
    main()
