#!/usr/bin/env python3
"""Driver behind bench/vs-llamacpp: `hanlin bench` against llama.cpp, alternating every rep.

hanlin runs as a subprocess (`hanlin bench --reps 1 --json`, which warms up itself);
llama.cpp runs in this process through llama-cpp-python, loaded once per (model, threads)
and warmed up once. Both see the same N prompt tokens (hanlin's `prompt_token_ids`), the
same thread count, a fresh KV cache per rep, one prefill call and G greedy single-token
steps. Rep order alternates (hanlin first, then llama.cpp first, ...) so drift in machine
load hits both sides alike.
"""

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama

WARMUP_GEN = 4


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def machine():
    """CPU model, relevant ISA flags, cores, memory and load."""
    model, flags, cores = "unknown", set(), set()
    phys = core = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, val = line.partition(":")
            key, val = key.strip(), val.strip()
            if key == "model name" and model == "unknown":
                model = val
            elif key == "flags" and not flags:
                flags = set(val.split())
            elif key == "physical id":
                phys = val
            elif key == "core id":
                core = val
                cores.add((phys, core))
    mem_gib = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / (1 << 20)
    wanted = ["avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16",
              "amx_tile", "amx_int8"]
    return {
        "cpu": model,
        "flags": [f for f in wanted if f in flags],
        "logical_cpus": os.cpu_count(),
        "physical_cores": len(cores) or None,
        "mem_gib": mem_gib,
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
    }


def cpu_snapshot():
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its children)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    busy = sum(fields[:8]) - fields[3] - fields[4]
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return busy / os.sysconf("SC_CLK_TCK"), own, time.monotonic()


def other_load(start, end):
    """Fraction of all CPUs that other processes used between two snapshots."""
    busy = end[0] - start[0]
    own = end[1] - start[1]
    wall = end[2] - start[2]
    return max(0.0, busy - own) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0


def hanlin_rev(root):
    try:
        out = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hanlin_run(binary, model, n, g, threads, bandwidth):
    cmd = [binary, "bench", "--model", model, "--prompt-tokens", str(n),
           "--gen-tokens", str(g), "--threads", str(threads), "--reps", "1", "--json"]
    if not bandwidth:
        cmd.append("--no-bandwidth")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"hanlin bench failed ({' '.join(cmd)}):\n{out.stderr}")
    return json.loads(out.stdout)


class LlamaBench:
    """One llama.cpp context with the settings that match `hanlin bench`."""

    def __init__(self, path, threads, n_ctx):
        self.llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_ubatch=512,
                         n_threads=threads, n_threads_batch=threads, flash_attn=False,
                         n_gpu_layers=0, logits_all=False, verbose=False)
        self.n_vocab = self.llm.n_vocab()

    def _argmax(self):
        ptr = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        arr = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                    shape=(self.n_vocab,))
        return int(arr.argmax())

    def rep(self, prompt, gen):
        """Empty cache, prefill `prompt`, generate `gen` greedily: (pp tok/s, tg tok/s)."""
        self.llm.reset()
        t0 = time.perf_counter()
        self.llm.eval(prompt)
        tok = self._argmax()
        pp = time.perf_counter() - t0
        t1 = time.perf_counter()
        for _ in range(gen):
            self.llm.eval([tok])
            tok = self._argmax()
        tg = time.perf_counter() - t1
        return len(prompt) / pp, gen / tg


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}


def bench_one(args, model, threads):
    n, g = args.prompt_tokens, args.gen_tokens
    h_pp, h_tg, l_pp, l_tg = [], [], [], []
    first = None
    llama = None
    for r in range(args.reps):
        order = ("hanlin", "llama") if r % 2 == 0 else ("llama", "hanlin")
        for side in order:
            if side == "hanlin":
                res = hanlin_run(args.hanlin, model, n, g, threads, bandwidth=first is None)
                first = first or res
                h_pp.append(res["prompt_tokens_per_s"])
                h_tg.append(res["gen_tokens_per_s"])
            else:
                if llama is None:
                    llama = LlamaBench(first["model_path"], threads, n + g)
                    llama.rep(first["prompt_token_ids"], min(WARMUP_GEN, g))
                pp, tg = llama.rep(first["prompt_token_ids"], g)
                l_pp.append(pp)
                l_tg.append(tg)
        log(f"  {label(model)} t={threads} rep {r + 1}/{args.reps}: "
            f"hanlin pp {h_pp[-1]:.1f} tg {h_tg[-1]:.1f} | "
            f"llama.cpp pp {l_pp[-1]:.1f} tg {l_tg[-1]:.1f}")
    del llama
    return {
        "model": model,
        "model_path": first["model_path"],
        "file_size_bytes": first["file_size_bytes"],
        "threads": threads,
        "isa": first["isa"],
        "weight_bytes_per_token": first["weight_bytes_per_token"],
        "bandwidth_gb_per_s": first["bandwidth_gb_per_s"],
        "load_ms": first.get("load_ms"),
        "kv_cache_bytes": first.get("kv_cache_bytes"),
        "peak_rss_bytes": first.get("peak_rss_bytes"),
        "hanlin_pp": spread(h_pp),
        "hanlin_tg": spread(h_tg),
        "llama_pp": spread(l_pp),
        "llama_tg": spread(l_tg),
    }


# llama.cpp's `llama_ftype` values for the quantizations the goals name.
SYNTHETIC_TYPES = {"q4_0": 2, "q8_0": 7, "q4_k_m": 15}


def synthetic_models(root, cache, vocab):
    """Paths of the synthetic benchmark models (Llama 3.2 1B and Qwen2.5 0.5B shapes, random
    normal weights) in Q4_0, Q4_K_M and Q8_0, generated on first use: the F16 files come from
    hanlin-test-support's `write_bench_models` (deterministic generator), the quantized ones
    from llama.cpp's own quantizer, so both engines read the same bytes."""
    out = os.path.join(cache, "synthetic-bench")
    os.makedirs(out, exist_ok=True)
    cmd = ["cargo", "run", "--quiet", "--release", "-p", "hanlin-test-support",
           "--example", "write_bench_models", "--", out, vocab]
    log("writing/reusing the F16 synthetic models (" + " ".join(cmd) + ") …")
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"write_bench_models failed:\n{res.stderr}")
    paths = []
    for f16 in res.stdout.split():
        for name, ftype in SYNTHETIC_TYPES.items():
            q = f16.replace("-f16.gguf", f"-{name}.gguf")
            if not os.path.exists(q):
                log(f"quantizing {os.path.basename(f16)} → {name} with llama.cpp …")
                params = llama_cpp.llama_model_quantize_default_params()
                params.ftype = ftype
                params.nthread = os.cpu_count() or 1
                tmp = q + ".part"
                rc = llama_cpp.llama_model_quantize(f16.encode(), tmp.encode(),
                                                    ctypes.byref(params))
                if rc != 0:
                    sys.exit(f"llama_model_quantize {f16} → {name} failed ({rc})")
                os.rename(tmp, q)
            paths.append(q)
    return paths


def label(model):
    return os.path.basename(model) if os.path.sep in model else model


def report(args, mach, rows):
    out = []
    out.append(f"## hanlin vs llama.cpp — pp{args.prompt_tokens} / tg{args.gen_tokens}, "
               f"{args.reps} reps (median)\n")
    out.append(f"- machine: {mach['cpu']}, {mach['physical_cores']} cores / "
               f"{mach['logical_cpus']} logical CPUs, {mach['mem_gib']:.0f} GiB, "
               f"kernel {mach['kernel']}")
    out.append(f"- CPU flags: {' '.join(mach['flags'])}")
    la0, la1 = mach["loadavg"], mach["loadavg_end"]
    out.append(f"- load average (1/5/15 min): start {la0[0]:.2f} {la0[1]:.2f} {la0[2]:.2f}, "
               f"end {la1[0]:.2f} {la1[1]:.2f} {la1[2]:.2f}")
    out.append(f"- hanlin {mach['hanlin_rev']} (kernels: {rows[0]['isa'] if rows else '?'}); "
               f"llama-cpp-python {llama_cpp.__version__} "
               f"({mach['llama_system_info']})")
    busy = mach["other_cpu_fraction"]
    out.append(f"- other processes used {100 * busy:.0f}% of the CPUs during the run")
    if busy > 0.05:
        out.append("- **the machine was busy with other work: these numbers are noisy; "
                   "rerun on a quiet machine**")
    out.append("- ratio = hanlin ÷ llama.cpp (above 1: hanlin faster)\n")
    out.append("| model | threads | hanlin pp/s | llama.cpp pp/s | ratio "
               "| hanlin tg/s | llama.cpp tg/s | ratio |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        hp, lp = r["hanlin_pp"]["median"], r["llama_pp"]["median"]
        ht, lt = r["hanlin_tg"]["median"], r["llama_tg"]["median"]
        out.append(f"| {label(r['model'])} | {r['threads']} | {hp:.1f} | {lp:.1f} | "
                   f"{hp / lp:.2f} | {ht:.1f} | {lt:.1f} | {ht / lt:.2f} |")
    out.append("\nSpread (min–max over reps) and memory roofline (weights read per generated "
               "token × tg/s, against an in-process STREAM triad on the same threads):\n")
    out.append("| model | threads | hanlin pp | llama.cpp pp | hanlin tg | llama.cpp tg "
               "| MB/token | hanlin GB/s | llama.cpp GB/s | triad GB/s |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mb = r["weight_bytes_per_token"] / 1e6
        bw = r["bandwidth_gb_per_s"] or 0.0

        def mm(s):
            return f"{s['min']:.1f}–{s['max']:.1f}"

        def gbs(tg):
            g = mb * tg / 1e3
            return f"{g:.2f} ({100 * g / bw:.0f}%)" if bw > 0 else f"{g:.2f}"

        out.append(f"| {label(r['model'])} | {r['threads']} | {mm(r['hanlin_pp'])} | "
                   f"{mm(r['llama_pp'])} | {mm(r['hanlin_tg'])} | {mm(r['llama_tg'])} | "
                   f"{mb:.1f} | {gbs(r['hanlin_tg']['median'])} | "
                   f"{gbs(r['llama_tg']['median'])} | {bw:.2f} |")
    out.append("\nhanlin's model load (mmap, checks, tokenizer; file in page cache) and peak RSS "
               "of the bench process against the goal file + KV cache + 10%:\n")
    out.append("| model | threads | file MB | KV MB | load ms | peak RSS MB | of goal |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.get("peak_rss_bytes") is None:
            continue
        f, kv, rss = r["file_size_bytes"] / 1e6, r["kv_cache_bytes"] / 1e6, r["peak_rss_bytes"] / 1e6
        out.append(f"| {label(r['model'])} | {r['threads']} | {f:.0f} | {kv:.1f} | "
                   f"{r['load_ms']:.0f} | {rss:.0f} | {100 * rss / ((f + kv) * 1.1):.0f}% |")
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hanlin", required=True, help="the hanlin binary")
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--gen-tokens", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--raw", help="also write every measurement as JSON to this file")
    p.add_argument("--synthetic", action="store_true",
                   help="also run the synthetic Llama 3.2 1B / Qwen2.5 0.5B shapes in Q4_0, "
                        "Q4_K_M and Q8_0 (generated and quantized on first use)")
    p.add_argument("--synthetic-vocab", help="GGUF whose tokenizer the synthetic models pad "
                   "(default: the shared stories260K model)")
    p.add_argument("models", nargs="*", help="GGUF paths or store names (default gemma3:270m)")
    args = p.parse_args()
    if args.reps < 1 or args.prompt_tokens < 1 or args.gen_tokens < 1:
        sys.exit("--reps, --prompt-tokens and --gen-tokens must be at least 1")
    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        sys.exit(f"--threads: expected comma-separated integers, got {args.threads!r}")
    if not threads or min(threads) < 1:
        sys.exit("--threads: need at least one count, each at least 1")
    models = args.models or ["gemma3:270m"]

    llama_cpp.llama_backend_init()
    if args.synthetic:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cache = os.environ.get("HANLIN_CACHE", os.path.expanduser("~/.cache/hanlin"))
        vocab = args.synthetic_vocab or os.path.join(
            root, "..", "shared", "testdata", "models", "stories260K", "stories260K-f32.gguf")
        models += synthetic_models(root, cache, vocab)
    mach = machine()
    mach["hanlin_rev"] = hanlin_rev(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    mach["llama_system_info"] = llama_cpp.llama_print_system_info().decode().strip(" |")
    rows = []
    snap = cpu_snapshot()
    for model in models:
        for t in threads:
            log(f"{model}, {t} thread(s) …")
            rows.append(bench_one(args, model, t))
    mach["other_cpu_fraction"] = other_load(snap, cpu_snapshot())
    mach["loadavg_end"] = os.getloadavg()
    text = report(args, mach, rows)
    print(text)
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump({"machine": mach, "args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
