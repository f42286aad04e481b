#!/usr/bin/env python3
"""Regenerate crates/hanlin-quant/testdata/*.bin from ggml itself.

The reference is ggml's own C code, reached through ctypes:
- libggml-base.so as llama-cpp-python ships it (built without FMA): dequantize_row_*,
  quantize_row_*_ref, the fp16/bf16 row conversions;
- ggml-cpu/quants.c compiled here with -DGGML_CPU_GENERIC -O2 -ffp-contract=off, giving the
  plain `*_generic` dot products. The `_generic` symbols inside the wheel's libggml-cpu.so are
  NOT used: that library is built with -march=native, so they carry FMA contraction, and on
  AVX512-VNNI machines GCC auto-vectorizes ggml_vec_dot_q5_0_q8_0_generic into vpdpbusd with
  the signed operand in the unsigned slot, which returns wrong sums;
- the wheel's libggml-cpu.so type traits for the SIMD dot products this machine would run
  (recorded only for loose, tolerance-based comparisons).
Float (F32/F16/BF16) dots are ggml's scalar formula (f32 products, f64 running sum) in numpy.
gguf-py's numpy ports cross-check the dequantizers and simple quantizers where they exist.

Usage (the venv needs numpy, gguf and llama-cpp-python==0.3.36; gcc on PATH):
    python scripts/ref/quant_fixtures.py [--out DIR] [--ggml-src DIR]
--ggml-src is the `ggml` folder of the llama.cpp that llama-cpp-python vendors; without it the
script fetches the llama-cpp-python 0.3.36 sdist with pip into ~/.cache/hanlin/ggml-src.

File format (little-endian), read by crates/hanlin-quant/tests/common/mod.rs:
    b"HQF1", u32 n_cases, then per case: u32 n_fields, then per field: u32 len, bytes.
    dequant_<type>.bin  fields: [raw blocks, expected f32 values]
    quantize_<type>.bin fields: [input f32 values, expected quantized bytes]
    vec_dot_<type>.bin  fields: [u32 n, weight bytes, activation bytes (vec_dot_type),
                                 f32 generic result, f32 SIMD result, f32 sum |w_i * a_i|]
"""

import argparse
import ctypes
import importlib.util
import pathlib
import struct
import subprocess
import sys
import tarfile
import tempfile
import warnings

import numpy as np

# ggml type ids (ggml.h) and layouts: (id, block elements, block bytes, f16 field offsets).
TYPES = {
    "F32": (0, 1, 4, []),
    "F16": (1, 1, 2, [0]),
    "BF16": (30, 1, 2, []),
    "Q4_0": (2, 32, 18, [0]),
    "Q4_1": (3, 32, 20, [0, 2]),
    "Q5_0": (6, 32, 22, [0]),
    "Q5_1": (7, 32, 24, [0, 2]),
    "Q8_0": (8, 32, 34, [0]),
    "Q8_1": (9, 32, 36, [0, 2]),
    "Q2_K": (10, 256, 84, [80, 82]),
    "Q3_K": (11, 256, 110, [108]),
    "Q4_K": (12, 256, 144, [0, 2]),
    "Q5_K": (13, 256, 176, [0, 2]),
    "Q6_K": (14, 256, 210, [208]),
    "Q8_K": (15, 256, 292, []),
}
VEC_DOT_TYPE = {
    "F32": "F32", "F16": "F16", "BF16": "BF16",
    "Q4_0": "Q8_0", "Q5_0": "Q8_0", "Q8_0": "Q8_0", "Q4_1": "Q8_1", "Q5_1": "Q8_1",
    "Q2_K": "Q8_K", "Q3_K": "Q8_K", "Q4_K": "Q8_K", "Q5_K": "Q8_K", "Q6_K": "Q8_K",
}
DEQUANT_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                 "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]
QUANT_TYPES = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
               "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]

F32P = ctypes.POINTER(ctypes.c_float)


SDIST = "llama-cpp-python==0.3.36"


def wheel_lib_dir():
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise SystemExit("llama-cpp-python is not installed in this interpreter")
    return pathlib.Path(spec.origin).parent / "lib"


def fetch_ggml_src():
    cache = pathlib.Path.home() / ".cache/hanlin/ggml-src"
    ggml = cache / "ggml"
    if (ggml / "src/ggml-cpu/quants.c").exists():
        return ggml
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                    "--no-binary", "llama-cpp-python", "-d", str(cache), SDIST], check=True)
    sdist = next(cache.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        for m in tar.getmembers():
            parts = pathlib.PurePosixPath(m.name).parts
            if len(parts) > 3 and parts[1:4] == ("vendor", "llama.cpp", "ggml") and m.isfile():
                m.name = str(pathlib.PurePosixPath(*parts[3:]))
                tar.extract(m, cache)
    return ggml


def build_generic(ggml_src, lib, workdir):
    """Compile ggml-cpu/quants.c with the generic (scalar) paths and no FMA contraction."""
    so = pathlib.Path(workdir) / "libggml-generic.so"
    subprocess.run(["gcc", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-std=gnu11",
                    "-DGGML_CPU_GENERIC", f"-I{ggml_src}/include", f"-I{ggml_src}/src",
                    f"-I{ggml_src}/src/ggml-cpu", f"{ggml_src}/src/ggml-cpu/quants.c",
                    "-o", str(so), f"-L{lib}", "-l:libggml-base.so", f"-Wl,-rpath,{lib}"],
                   check=True)
    return ctypes.CDLL(str(so))


def load_ggml():
    lib = wheel_lib_dir()
    base = ctypes.CDLL(str(lib / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(str(lib / "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    cpu.ggml_cpu_init()
    return base, cpu


class Traits(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


VEC_DOT_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, F32P, ctypes.c_size_t, ctypes.c_void_p,
                              ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def cname(ty):
    """ggml's C spelling of a type in function names: q4_0, q4_K, q8_K."""
    low = ty.lower()
    return low[:-1] + "K" if low.endswith("_k") else low


def buf(data: bytes):
    return ctypes.create_string_buffer(bytes(data), max(len(data), 1))


def row_bytes(ty, n):
    _, qk, size, _ = TYPES[ty]
    assert n % qk == 0
    return n // qk * size


def ggml_dequant(base, ty, raw, n):
    out = np.zeros(n, dtype=np.float32)
    src = buf(raw)
    optr = out.ctypes.data_as(F32P)
    if ty == "F32":
        return np.frombuffer(raw, dtype="<f4").copy()
    if ty == "Q8_1":  # ggml has no dequantize_row_q8_1; d * q, only used for magnitudes here
        blocks = np.frombuffer(raw, np.uint8).reshape(-1, 36)
        d = blocks[:, :2].copy().view("<f2").astype(np.float32)
        return (d * blocks[:, 4:].view(np.int8).astype(np.float32)).reshape(-1)
    if ty == "F16":
        base.ggml_fp16_to_fp32_row(src, optr, ctypes.c_int64(n))
    elif ty == "BF16":
        base.ggml_bf16_to_fp32_row(src, optr, ctypes.c_int64(n))
    else:
        getattr(base, f"dequantize_row_{cname(ty)}")(src, optr, ctypes.c_int64(n))
    return out


def ggml_quant(base, ty, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    out = ctypes.create_string_buffer(row_bytes(ty, n))
    xptr = x.ctypes.data_as(F32P)
    if ty == "F32":
        return x.astype("<f4").tobytes()
    if ty == "F16":
        base.ggml_fp32_to_fp16_row(xptr, out, ctypes.c_int64(n))
    elif ty == "BF16":
        base.ggml_fp32_to_bf16_row_ref(xptr, out, ctypes.c_int64(n))
    else:
        getattr(base, f"quantize_row_{cname(ty)}_ref")(xptr, out, ctypes.c_int64(n))
    return out.raw


def ggml_vec_dot(cpu, gen, ty, n, w, a):
    s = ctypes.c_float(0)
    wb, ab = buf(w), buf(a)
    if ty in ("F32", "F16", "BF16"):
        generic = None
    else:
        fn = getattr(gen, f"ggml_vec_dot_{cname(ty)}_{cname(VEC_DOT_TYPE[ty])}")
        fn(ctypes.c_int(n), ctypes.byref(s), ctypes.c_size_t(0), wb, ctypes.c_size_t(0), ab,
           ctypes.c_size_t(0), ctypes.c_int(1))
        generic = s.value
    cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(Traits)
    traits = cpu.ggml_get_type_traits_cpu(ctypes.c_int(TYPES[ty][0])).contents
    simd = ctypes.c_float(0)
    VEC_DOT_FN(traits.vec_dot)(n, ctypes.byref(simd), 0, ctypes.cast(wb, ctypes.c_void_p), 0,
                               ctypes.cast(ab, ctypes.c_void_p), 0, 1)
    return generic, simd.value


def scalar_float_dot(ty, w, a, n):
    """ggml's scalar float dot: f32 products, summed one by one in double."""
    if ty == "F32":
        x, y = np.frombuffer(w, "<f4"), np.frombuffer(a, "<f4")
    elif ty == "F16":
        x = np.frombuffer(w, "<f2").astype(np.float32)
        y = np.frombuffer(a, "<f2").astype(np.float32)
    else:
        x = (np.frombuffer(w, "<u2").astype(np.uint32) << 16).view(np.float32)
        y = (np.frombuffer(a, "<u2").astype(np.uint32) << 16).view(np.float32)
    prod = (x * y).astype(np.float64)
    return float(np.float32(np.cumsum(prod)[-1] if n else 0.0))


def sane_scales(rng, k):
    mag = 10.0 ** rng.uniform(-4, 1, size=k)
    return (mag * rng.choice([-1.0, 1.0], size=k)).astype(np.float16)


def random_raw(rng, ty, nblocks):
    """Random block bytes with finite, reasonably sized f16 (or f32) scales."""
    _, qk, size, offs = TYPES[ty]
    if ty == "F32":
        return (rng.standard_normal(nblocks) * 3).astype("<f4").tobytes()
    if ty == "F16":
        return sane_scales(rng, nblocks).astype("<f2").tobytes()
    if ty == "BF16":
        v = (rng.standard_normal(nblocks) * 10.0 ** rng.uniform(-3, 3, nblocks)).astype("<f4")
        return (v.view("<u4") >> 16).astype("<u2").tobytes()
    raw = bytearray(rng.integers(0, 256, size=nblocks * size, dtype=np.uint8).tobytes())
    for b in range(nblocks):
        for off in offs:
            raw[b * size + off: b * size + off + 2] = sane_scales(rng, 1).astype("<f2").tobytes()
        if ty == "Q8_K":
            raw[b * size: b * size + 4] = np.float32(rng.uniform(1e-3, 1.0)).tobytes()
    return bytes(raw)


def odd_rows(rng, qk):
    """One block per distribution with awkward magnitudes and edge cases."""
    blocks = [
        rng.standard_normal(qk) * 0.02,
        rng.standard_normal(qk) * 37.5,
        np.where(np.arange(qk) == qk // 3, 3.0, rng.standard_normal(qk) * 1e-4),
        rng.uniform(-1, 1, qk) * 0.7,
        np.abs(rng.standard_normal(qk)) * 2.3 + 0.1,
        -np.abs(rng.standard_normal(qk)) * 0.9 - 0.05,
        np.full(qk, 0.3),
        np.zeros(qk),
        rng.standard_normal(qk) * 1e-17,
        rng.standard_t(2, qk) * 5.0,
        rng.standard_normal(qk) * 1e3,
        np.round(rng.standard_normal(qk) * 4) / 4,
    ]
    return np.concatenate(blocks).astype(np.float32)


def float_conversion_row(rng):
    specials = [0.0, -0.0, 1.0, -2.5, 65504.0, 65520.0, 70000.0, -1e9, 6.1e-5, 5.96e-8, 3e-8,
                1e-10, 1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8,
                3.4e38, -1.17549435e-38, 1e-45, 0.1, 1 / 3]
    rest = rng.standard_normal(256 - len(specials)) * 10.0 ** rng.uniform(-6, 6, 256 - len(specials))
    return np.concatenate([specials, rest]).astype(np.float32)


def write_cases(path, cases):
    out = bytearray(b"HQF1")
    out += struct.pack("<I", len(cases))
    for fields in cases:
        out += struct.pack("<I", len(fields))
        for f in fields:
            out += struct.pack("<I", len(f)) + bytes(f)
    path.write_bytes(bytes(out))
    return len(out)


def cross_check_gguf_py(ty, raw, expected, n, quant_in=None, quant_out=None):
    try:
        from gguf import GGMLQuantizationType, quants
    except ImportError:
        return
    qt = GGMLQuantizationType[ty]
    if raw is not None and ty not in ("F32", "Q8_K"):
        try:
            got = quants.dequantize(np.frombuffer(raw, np.uint8), qt).reshape(-1)
        except NotImplementedError:
            got = None
        if got is not None:
            err = np.max(np.abs(got.astype(np.float64) - expected) / np.maximum(1, np.abs(expected)))
            assert err <= 1e-6, f"gguf-py dequantize {ty} disagrees with ggml: {err}"
    if quant_in is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                got = quants.quantize(quant_in.reshape(1, -1), qt).tobytes()
        except (NotImplementedError, AttributeError, KeyError):
            return
        if got != quant_out:
            print(f"  note: gguf-py quantize {ty} differs from ggml _ref in "
                  f"{sum(a != b for a, b in zip(got, quant_out))} bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[2]
                                         / "crates/hanlin-quant/testdata"))
    ap.add_argument("--ggml-src", help="llama.cpp's ggml folder (default: fetch the sdist)")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base, cpu = load_ggml()
    ggml_src = pathlib.Path(args.ggml_src) if args.ggml_src else fetch_ggml_src()
    workdir = tempfile.mkdtemp(prefix="hanlin-quant-ref-")
    gen = build_generic(ggml_src, wheel_lib_dir(), workdir)
    rng = np.random.default_rng(20240607)
    total = 0

    for ty in DEQUANT_TYPES:
        _, qk, _, _ = TYPES[ty]
        nblocks = {1: 97, 32: 8, 256: 3}[qk]
        cases = []
        for _ in range(2):
            raw = random_raw(rng, ty, nblocks)
            n = nblocks * qk
            exp = ggml_dequant(base, ty, raw, n)
            assert np.all(np.isfinite(exp)), ty
            cross_check_gguf_py(ty, raw, exp, n)
            cases.append([raw, exp.astype("<f4").tobytes()])
        total += write_cases(out / f"dequant_{ty.lower()}.bin", cases)

    for ty in QUANT_TYPES:
        _, qk, _, _ = TYPES[ty]
        x = float_conversion_row(rng) if qk == 1 else odd_rows(rng, qk)
        q = ggml_quant(base, ty, x)
        cross_check_gguf_py(ty, None, None, len(x), x, q)
        total += write_cases(out / f"quantize_{ty.lower()}.bin", [[x.astype("<f4").tobytes(), q]])

    for ty, aty in VEC_DOT_TYPE.items():
        qk = TYPES[ty][1]
        if qk == 256:
            sizes = [256, 512, 4096 + 256]
        elif qk == 32:
            sizes = [32, 160, 1024, 4096]
        else:
            sizes = [5, 33, 4096]
        cases = []
        for i, n in enumerate(sizes):
            if i == 0 and ty not in ("F32", "F16", "BF16"):
                w = random_raw(rng, ty, n // qk)
            else:
                w = ggml_quant(base, ty, rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 1))
            a = ggml_quant(base, aty, rng.standard_normal(n) * 10.0 ** rng.uniform(-1, 1))
            generic, simd = ggml_vec_dot(cpu, gen, ty, n, w, a)
            if generic is None:
                generic = scalar_float_dot(ty, w, a, n)
            wf = ggml_dequant(base, ty, w, n).astype(np.float64)
            af = ggml_dequant(base, aty, a, n).astype(np.float64)
            mag = float(np.sum(np.abs(wf * af)))
            # Sanity only: Q8_1's `s` is d*sum(q) rounded to f16, so those pairs drift further.
            tol = (1e-3 if aty == "Q8_1" else 1e-4) * mag + 1e-6
            exact = float(np.dot(wf, af))
            assert abs(generic - exact) <= tol and abs(simd - exact) <= tol, (ty, n, generic, simd)
            cases.append([struct.pack("<I", n), w, a, struct.pack("<fff", generic, simd, mag)])
        total += write_cases(out / f"vec_dot_{ty.lower()}.bin", cases)

    print(f"wrote {total} bytes of fixtures to {out}")


if __name__ == "__main__":
    main()
