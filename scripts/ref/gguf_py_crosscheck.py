#!/usr/bin/env python3
"""Cross-checks hanlin-gguf against llama.cpp's gguf-py, in both directions.

    python3 scripts/ref/gguf_py_crosscheck.py write   # gguf-py writes crates/hanlin-gguf/testdata/gguf_py_tiny.gguf
    python3 scripts/ref/gguf_py_crosscheck.py check   # gguf-py reads  crates/hanlin-gguf/testdata/hanlin_tiny.gguf

`write` produces the fixture that crates/hanlin-gguf/tests/gguf_py.rs parses (every value type,
arrays of every type, nested arrays, unicode, custom alignment, five tensors of five types); the
Rust test repeats the values below, so change both together.

`check` reads the file hanlin's writer produced (regenerate it with
`HANLIN_REGEN=1 cargo test -p hanlin-gguf --test gguf_py`) with gguf-py's GGUFReader and compares
every key, type, value, tensor shape, type, offset and byte with what the Rust side wrote.
It exits non-zero on the first mismatch.

Needs `pip install gguf numpy`.
"""

import math
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType as V, GGUFWriter

TESTDATA = Path(__file__).resolve().parents[2] / "crates" / "hanlin-gguf" / "testdata"
UNICODE = "翰林 — ünïcødé 🦀\n\ttab"


def pattern(n: int, seed: int) -> np.ndarray:
    """Same bytes as `pattern` in crates/hanlin-gguf/tests/common/mod.rs."""
    return np.array([(i * 31 + seed) & 0xFF for i in range(n)], dtype=np.uint8)


def write() -> None:
    path = TESTDATA / "gguf_py_tiny.gguf"
    w = GGUFWriter(path, "llama")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", 3.25)
    w.add_bool("t.bool", True)
    w.add_string("t.str", UNICODE)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", 0.1)
    arrays = [
        ("a.u8", V.UINT8, [0, 255]),
        ("a.i8", V.INT8, [-128, 127]),
        ("a.u16", V.UINT16, [0, 65535]),
        ("a.i16", V.INT16, [-32768, 32767]),
        ("a.u32", V.UINT32, [0, 2**32 - 1]),
        ("a.i32", V.INT32, [-(2**31), 2**31 - 1]),
        ("a.f32", V.FLOAT32, [0.5, -1.25]),
        ("a.bool", V.BOOL, [True, False, True]),
        ("a.str", V.STRING, ["", "a", "翰林", "🦀"]),
        ("a.u64", V.UINT64, [0, 2**64 - 1]),
        ("a.i64", V.INT64, [-(2**63), 2**63 - 1]),
        ("a.f64", V.FLOAT64, [0.1, 1e300]),
    ]
    for key, sub, val in arrays:
        w.add_key_value(key, val, V.ARRAY, sub_type=sub)
    # gguf-py infers an array of INT32 arrays from nested lists.
    w.add_array("a.nested", [[1, 2], [3]])

    w.add_tensor("tok_embd.weight", (np.arange(15, dtype=np.float32).reshape(3, 5) * 0.25 - 1))
    w.add_tensor("norm.weight", np.array([1.0, -2.5, 0.125, 65504.0], dtype=np.float16))
    w.add_tensor("idx", np.array([1, -2, 3, -4, 5, -6], dtype=np.int16).reshape(2, 1, 3))
    w.add_tensor("q.weight", pattern(68, 9).reshape(2, 34), raw_dtype=Q.Q8_0)
    w.add_tensor("i8", np.array([-1, 2, -3, 4, -5, 6], dtype=np.int8).reshape(1, 2, 1, 3))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path} ({path.stat().st_size} bytes)")


# What tests/gguf_py.rs `hanlin_tiny()` writes: GGUF v2, alignment 16.
EXPECTED_KV = [
    ("general.architecture", [V.STRING], "hanlin-test"),
    ("general.alignment", [V.UINT32], 16),
    ("k.u8", [V.UINT8], 255),
    ("k.i8", [V.INT8], -128),
    ("k.u16", [V.UINT16], 65535),
    ("k.i16", [V.INT16], -32768),
    ("k.u32", [V.UINT32], 2**32 - 1),
    ("k.i32", [V.INT32], -(2**31)),
    ("k.f32", [V.FLOAT32], -0.375),
    ("k.bool", [V.BOOL], False),
    ("k.str", [V.STRING], UNICODE),
    ("k.empty_str", [V.STRING], ""),
    ("k.u64", [V.UINT64], 2**64 - 1),
    ("k.i64", [V.INT64], -(2**63)),
    ("k.f64", [V.FLOAT64], math.pi),
    ("arr.u8", [V.ARRAY, V.UINT8], [1, 2, 255]),
    ("arr.i8", [V.ARRAY, V.INT8], [-1, 0, 1]),
    ("arr.u16", [V.ARRAY, V.UINT16], [7, 65535]),
    ("arr.i16", [V.ARRAY, V.INT16], [-7, 32767]),
    ("arr.u32", [V.ARRAY, V.UINT32], [1, 2**32 - 1]),
    ("arr.i32", [V.ARRAY, V.INT32], [-(2**31), 0, 2**31 - 1]),
    ("arr.f32", [V.ARRAY, V.FLOAT32], [0.25, -8.0]),
    ("arr.bool", [V.ARRAY, V.BOOL], [False, True]),
    ("arr.str", [V.ARRAY, V.STRING], ["α", "", "🦀🦀", "tab\there"]),
    ("arr.u64", [V.ARRAY, V.UINT64], [2**64 - 1]),
    ("arr.i64", [V.ARRAY, V.INT64], [-1, 2**63 - 1]),
    ("arr.f64", [V.ARRAY, V.FLOAT64], [math.e, -0.5]),
    # gguf-py takes element types from the first element, so an empty array shows only ARRAY;
    # `check` reads its element type tag from the raw parts instead.
    ("arr.empty", [V.ARRAY], []),
    # gguf-py flattens nested arrays; `types` lists the first element's nesting.
    ("arr.nested", [V.ARRAY, V.ARRAY, V.STRING], ["x", "yz", "w"]),
]

# name, ggml dims, type, n_bytes, pattern seed
EXPECTED_TENSORS = [
    ("blk.0.f32", [3, 2], Q.F32, 24, 1),
    ("blk.0.q4_k", [256, 2], Q.Q4_K, 288, 2),
    ("blk.0.f16", [5], Q.F16, 10, 3),
    ("blk.0.q8_0", [32, 1, 1, 2], Q.Q8_0, 68, 4),
    ("blk.0.bf16", [7], Q.BF16, 14, 5),
]


def check() -> None:
    path = TESTDATA / "hanlin_tiny.gguf"
    r = GGUFReader(path)
    fails: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            fails.append(what)

    version = r.fields["GGUF.version"].contents()
    expect(version == 2, f"version {version} != 2")
    expect(r.alignment == 16, f"alignment {r.alignment} != 16")
    kvs = [f for name, f in r.fields.items() if not name.startswith("GGUF.")]
    expect([f.name for f in kvs] == [k for k, _, _ in EXPECTED_KV], f"keys {[f.name for f in kvs]}")
    for field, (key, types, value) in zip(kvs, EXPECTED_KV):
        expect(field.types == types, f"{key}: types {field.types} != {types}")
        got = field.contents()
        if isinstance(value, float):
            ok = got == value if types[-1] == V.FLOAT64 else np.float32(got) == np.float32(value)
        elif isinstance(value, list) and types[-1] == V.FLOAT32:
            ok = np.array_equal(np.array(got, np.float32), np.array(value, np.float32))
        else:
            ok = got == value
        expect(ok, f"{key}: {got!r} != {value!r}")
        if key == "arr.empty":
            # parts: key length, key, value type, element type, count
            elem = int(field.parts[3][0])
            expect(elem == V.UINT32, f"{key}: element type {elem} != UINT32")

    names = [t.name for t in r.tensors]
    expect(names == [t[0] for t in EXPECTED_TENSORS], f"tensors {names}")
    prev_end = 0
    for t, (name, dims, ty, n_bytes, seed) in zip(r.tensors, EXPECTED_TENSORS):
        expect(list(map(int, t.shape)) == dims, f"{name}: shape {list(t.shape)} != {dims}")
        expect(t.tensor_type == ty, f"{name}: type {t.tensor_type!r} != {ty!r}")
        expect(int(t.n_bytes) == n_bytes, f"{name}: n_bytes {t.n_bytes} != {n_bytes}")
        expect(t.data_offset % 16 == 0, f"{name}: data offset {t.data_offset} not 16-aligned")
        expect(t.data_offset >= prev_end, f"{name}: overlaps the previous tensor")
        prev_end = t.data_offset + n_bytes
        raw = np.frombuffer(t.data.tobytes(), dtype=np.uint8)
        expect(np.array_equal(raw, pattern(n_bytes, seed)), f"{name}: data differs")
    size = path.stat().st_size
    expect(size % 16 == 0, f"file size {size} is not padded to the alignment like gguf-py pads")

    if fails:
        print(f"FAIL: gguf-py reads {path} differently:", *fails, sep="\n  ")
        sys.exit(1)
    print(f"OK: gguf-py {len(kvs)} keys and {len(r.tensors)} tensors of {path.name} match")


if __name__ == "__main__":
    {"write": write, "check": check}[sys.argv[1] if len(sys.argv) > 1 else "check"]()
