#!/usr/bin/env python3
"""llama.cpp's side of `hanlin-models/examples/prefill.rs`: the same token ids, prefill timed
by wall clock and by process CPU time (steadier on a shared machine).

    python bench/llamacpp_prefill.py MODEL.gguf [TOKENS] [THREADS] [REPS]

Run it with the Python that `bench/vs-llamacpp` uses (it needs llama_cpp).
"""
import sys
import time

import llama_cpp
from llama_cpp import Llama


def main() -> None:
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    th = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    llm = Llama(model_path=path, n_ctx=n + 48, n_batch=512, n_ubatch=512, flash_attn=False,
                n_threads=th, n_threads_batch=th, verbose=False)
    print(llama_cpp.llama_print_system_info().decode())
    vocab = llm.n_vocab()
    # Same ids as examples/prefill.rs.
    toks = [vocab // 16 + (i * 7919) % (vocab // 2) for i in range(n)]
    llm.reset()
    llm.eval(toks)
    wall, cpu = [], []
    for _ in range(reps):
        llm.reset()
        t, c = time.time(), time.process_time()
        llm.eval(toks)
        wall.append(time.time() - t)
        cpu.append(time.process_time() - c)
    wall.sort()
    cpu.sort()
    print(f"llama.cpp pp{n} threads={th} median {n / wall[len(wall) // 2]:.1f} tok/s")
    print(f"  per CPU-second: {n / cpu[len(cpu) // 2]:.1f} tok/s")


if __name__ == "__main__":
    main()
