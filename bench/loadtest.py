#!/usr/bin/env python3
"""Driver behind bench/loadtest: concurrent streaming clients against `hanlin serve` and
llama.cpp's own server (`python -m llama_cpp.server`), one server at a time.

For each server and each client count C, C threads each send R streaming
/v1/chat/completions requests back to back (distinct short prompts, max_tokens G,
temperature 0.8) and the run records, per request: status, time to first content token,
completion tokens (the `usage` chunk where the server sends one, else the number of
non-empty content chunks), and whether the stream ended properly (a finish_reason and
`data: [DONE]`). It prints one markdown table.

`--soak SECONDS` instead keeps `--soak-clients` (64) clients busy against hanlin alone for
SECONDS, polls /health twice a second, and fails (exit 1) on any request error or any
/health answer other than 200.

Only the standard library and `requests`; llama.cpp's server needs llama-cpp-python with
its `[server]` extra's dependencies (fastapi, uvicorn, sse-starlette, ...) in the Python
given by --llama-python.
"""

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import requests
import urllib3
from requests.adapters import HTTPAdapter

TOPICS = [
    "the moon", "rivers", "bread", "a lighthouse", "winter", "bees", "a violin", "deserts",
    "trains", "coral reefs", "volcanoes", "libraries", "owls", "glass", "tea", "mountains",
    "clocks", "the ocean", "maps", "bicycles", "rain", "salt", "comets", "gardens",
    "bridges", "paper", "wolves", "islands", "copper", "thunder", "kites", "forests",
]
STYLES = [
    "Write one sentence about {}.", "Give me a short fact about {}.",
    "Describe {} in a few words.", "Tell a tiny story about {}.",
]


class _TrackedConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection that records its socket, so the soak can cut every open stream
    (mid-stream or still waiting for response headers) at its deadline."""

    tracked = set()
    lock = threading.Lock()

    def connect(self):
        super().connect()
        with _TrackedConnection.lock:
            _TrackedConnection.tracked.add(self.sock)

    @classmethod
    def cut_all(cls):
        with cls.lock:
            socks, cls.tracked = list(cls.tracked), set()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _TrackedPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _TrackedConnection


def tracked_session():
    adapter = HTTPAdapter(pool_maxsize=1)
    adapter.poolmanager.pool_classes_by_scheme = {"http": _TrackedPool}
    sess = requests.Session()
    sess.mount("http://", adapter)
    return sess


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def prompt_for(client, req):
    i = client * 7 + req * 131
    return STYLES[(client + req) % len(STYLES)].format(TOPICS[i % len(TOPICS)]) + f" (#{client}.{req})"


def machine():
    model, cores = "unknown", set()
    phys = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, val = line.partition(":")
            key, val = key.strip(), val.strip()
            if key == "model name" and model == "unknown":
                model = val
            elif key == "physical id":
                phys = val
            elif key == "core id":
                cores.add((phys, val))
    mem = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / (1 << 20)
    return (f"{model}, {os.cpu_count()} logical CPUs ({len(cores) or '?'} cores), "
            f"{mem:.0f} GiB RAM, Linux {platform.release()}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def proc_cpu(pid):
    """CPU seconds used so far by process pid (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def machine_busy():
    """CPU seconds the whole machine has been busy."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def resolve_gguf(hanlin, model):
    if os.path.isfile(model):
        return model
    out = subprocess.run([hanlin, "models", "show", model], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        if line.startswith("path"):
            return line.split(None, 1)[1].strip()
    raise SystemExit(f"error: no path for {model} in `hanlin models show`")


class Server:
    """One server process: started, waited for, stopped with SIGTERM."""

    def __init__(self, name, argv, port, ready_path, logfile):
        self.name, self.argv, self.port, self.ready_path = name, argv, port, ready_path
        self.base = f"http://127.0.0.1:{port}"
        self.logfile = logfile
        self.proc = None
        self.model_id = None

    def start(self, timeout=180):
        log(f"starting {self.name}: {' '.join(self.argv)}")
        self.log = open(self.logfile, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"error: {self.name} exited with {self.proc.returncode}; "
                                 f"see {self.logfile}")
            try:
                if requests.get(self.base + self.ready_path, timeout=2).status_code == 200:
                    models = requests.get(self.base + "/v1/models", timeout=5).json()
                    self.model_id = models["data"][0]["id"]
                    log(f"{self.name} ready on {self.base} (model id {self.model_id!r})")
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"error: {self.name} not ready after {timeout}s; see {self.logfile}")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
            log(f"{self.name} stopped (exit {rc})")
        except subprocess.TimeoutExpired:
            log(f"warning: {self.name} ignored SIGTERM for 30 s; killing it")
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def one_request(base, model_id, prompt, max_tokens, timeout, session=None, stop=None):
    """Stream one chat completion. Returns a dict of timings and counts. With `stop`, a
    failure after stop is set counts as `cancelled` rather than as an error."""
    body = {
        "model": model_id,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0.8,
    }
    res = {"status": None, "error": None, "ttft": None, "chunks": 0, "usage": None,
           "finish": None, "done": False}
    t0 = time.monotonic()
    t_first = t_last = None
    try:
        with (session or requests).post(base + "/v1/chat/completions", json=body,
                                         stream=True, timeout=timeout) as r:
            res["status"] = r.status_code
            if r.status_code != 200:
                res["error"] = f"HTTP {r.status_code}: {r.text[:200]}"
                return res
            for raw in r.iter_lines(chunk_size=None):
                if not raw or raw.startswith(b":"):
                    continue  # blank separator or SSE comment (keep-alive ping)
                if not raw.startswith(b"data:"):
                    continue  # "event:" lines etc.
                data = raw[5:].strip()
                if data == b"[DONE]":
                    res["done"] = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    res["error"] = f"error event: {str(chunk['error'])[:200]}"
                    return res
                if chunk.get("usage"):
                    res["usage"] = chunk["usage"].get("completion_tokens")
                for ch in chunk.get("choices") or []:
                    if (ch.get("delta") or {}).get("content"):
                        now = time.monotonic()
                        if t_first is None:
                            t_first = now
                        t_last = now
                        res["chunks"] += 1
                    if ch.get("finish_reason"):
                        res["finish"] = ch["finish_reason"]
    except (requests.RequestException, ValueError, OSError) as e:
        res["error"] = f"{type(e).__name__}: {str(e)[:200]}"
        return cancelled_or(res, stop)
    t_end = time.monotonic()
    if not res["done"] or res["finish"] is None:
        res["error"] = "stream ended without finish_reason/[DONE]"
        return cancelled_or(res, stop)
    res["start"], res["end"] = t0, t_end
    res["tokens"] = res["usage"] if res["usage"] is not None else res["chunks"]
    if t_first is not None:
        res["ttft"] = t_first - t0
        # decode rate once the first token is out: the rate this client sees while streaming
        if res["tokens"] > 1 and t_last > t_first:
            res["decode_tps"] = (res["tokens"] - 1) / (t_last - t_first)
    return res


def cancelled_or(res, stop):
    if stop is not None and stop.is_set():
        res["cancelled"], res["error"] = res["error"], None
    return res


def pct(xs, p):
    """Nearest-rank percentile (p in 0..100)."""
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, -(-p * len(xs) // 100) - 1))
    return xs[int(k)]


def run_level(server, clients, per_client, max_tokens, timeout):
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(ci):
        barrier.wait()
        for ri in range(per_client):
            r = one_request(server.base, server.model_id, prompt_for(ci, ri), max_tokens, timeout)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    cpu0 = (machine_busy(), proc_cpu(server.proc.pid), proc_cpu(os.getpid()))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    cpu1 = (machine_busy(), proc_cpu(server.proc.pid), proc_cpu(os.getpid()))
    row = summarize(server.name, clients, results, wall)
    # CPU use over the level, in cores: the server, this load generator, everything else
    row["cpu_server"] = (cpu1[1] - cpu0[1]) / wall
    row["cpu_client"] = (cpu1[2] - cpu0[2]) / wall
    row["cpu_other"] = max(0.0, (cpu1[0] - cpu0[0]) / wall - row["cpu_server"] - row["cpu_client"])
    return row


def summarize(name, clients, results, wall):
    cancelled = [r for r in results if r.get("cancelled")]
    ok = [r for r in results if r["error"] is None and not r.get("cancelled")]
    errors = [r["error"] for r in results if r["error"] is not None]
    tokens = sum(r["tokens"] for r in ok)
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    dec = [r["decode_tps"] for r in ok if r.get("decode_tps")]
    chunk_mismatch = sum(1 for r in ok if r["usage"] is not None and r["usage"] != r["chunks"])
    return {
        "server": name, "clients": clients, "requests": len(results) - len(cancelled),
        "ok": len(ok), "cancelled": len(cancelled),
        "wall_s": wall, "tokens": tokens, "agg_tps": tokens / wall if wall > 0 else 0.0,
        "ttft_p50": statistics.median(ttfts) if ttfts else None, "ttft_p99": pct(ttfts, 99),
        "decode_p50": statistics.median(dec) if dec else None,
        "errors": len(errors), "error_samples": sorted(set(errors))[:3],
        "finish": sorted({r["finish"] for r in ok if r["finish"]}),
        "usage_reported": sum(1 for r in ok if r["usage"] is not None),
        "chunk_mismatch": chunk_mismatch,
    }


def fmt(x, spec):
    return "–" if x is None else format(x, spec)


def print_table(rows, out=sys.stdout):
    out.write("| server | clients | requests | agg tok/s | TTFT p50 (s) | TTFT p99 (s) | "
              "per-request tok/s p50 | errors |\n")
    out.write("|---|---:|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        out.write(f"| {r['server']} | {r['clients']} | {r['requests']} | {r['agg_tps']:.1f} | "
                  f"{fmt(r['ttft_p50'], '.3f')} | {fmt(r['ttft_p99'], '.3f')} | "
                  f"{fmt(r['decode_p50'], '.1f')} | {r['errors']} |\n")
    out.flush()


def make_servers(args, gguf, logdir):
    servers = {}
    p = free_port()
    servers["hanlin"] = Server(
        "hanlin",
        [args.hanlin, "serve", "--model", args.model, "--port", str(p), "--parallel",
         str(args.parallel), "--threads", str(args.threads), "--ctx", str(args.ctx),
         "--kv-idle-trim", str(args.kv_idle_trim)],
        p, "/health", os.path.join(logdir, "hanlin-serve.log"))
    p = free_port()
    servers["llama.cpp"] = Server(
        "llama.cpp",
        [args.llama_python, "-m", "llama_cpp.server", "--model", gguf,
         "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
         "--n_ctx", str(args.ctx), "--port", str(p), "--host", "127.0.0.1",
         # The GGUF carries no tokenizer.chat_template, so llama-cpp-python would fall
         # back to llama-2 formatting and answer with EOS at once; use its Gemma format.
         "--chat_format", "gemma",
         # Default True: a waiting request cuts the running stream short. Off, so every
         # request runs to completion (requests are still served one at a time).
         "--interrupt_requests", "False",
         # Default True computes logits for every prompt token; the server never needs them.
         "--logits_all", "False",
         "--verbose", "False"],
        p, "/v1/models", os.path.join(logdir, "llamacpp-server.log"))
    return servers


def warm_up(server, max_tokens, timeout):
    r = one_request(server.base, server.model_id, "Say hello.", max_tokens, timeout)
    if r["error"]:
        raise SystemExit(f"error: warm-up request to {server.name} failed: {r['error']}")


def bench(args, gguf, logdir):
    servers = make_servers(args, gguf, logdir)
    rows = []
    for name in args.servers:
        s = servers[name]
        s.start()
        try:
            warm_up(s, 8, args.timeout)
            for c in args.clients:
                log(f"{name}: {c} clients x {args.requests_per_client} requests …")
                row = run_level(s, c, args.requests_per_client, args.max_tokens, args.timeout)
                row["rss_mib"] = rss_mib(s.proc.pid)
                rows.append(row)
                log(f"  {row['tokens']} tokens in {row['wall_s']:.1f}s = {row['agg_tps']:.1f} tok/s, "
                    f"TTFT p50 {fmt(row['ttft_p50'], '.3f')}s p99 {fmt(row['ttft_p99'], '.3f')}s, "
                    f"errors {row['errors']} {row['error_samples']}, finish {row['finish']}, "
                    f"usage chunks {row['usage_reported']}/{row['ok']}, "
                    f"usage!=chunks {row['chunk_mismatch']}; CPU cores: server "
                    f"{row['cpu_server']:.2f}, load generator {row['cpu_client']:.2f}, "
                    f"other {row['cpu_other']:.2f}")
        finally:
            s.stop()
    return rows


def soak(args, gguf, logdir):
    """64 clients (by default) keep hanlin busy for args.soak seconds; /health is polled
    twice a second. At the deadline every open connection is cut (mid-stream or still
    waiting for a slot), which also exercises client disconnects; those requests count as
    cancelled, not as errors. Then one probe request must succeed promptly (no slot or
    queue entry leaked by the cut streams) and /health must still answer 200."""
    s = make_servers(args, gguf, logdir)["hanlin"]
    s.start()
    results, health = [], []
    lock = threading.Lock()
    stop = threading.Event()
    max_tokens = args.soak_max_tokens
    try:
        warm_up(s, 8, args.timeout)
        rss0 = rss_mib(s.proc.pid)

        def client(ci):
            sess = tracked_session()
            ri = 0
            while not stop.is_set():
                r = one_request(s.base, s.model_id, prompt_for(ci, ri), max_tokens,
                                args.timeout, session=sess, stop=stop)
                ri += 1
                with lock:
                    results.append(r)

        def poll_health():
            while not stop.is_set():
                t = time.monotonic()
                try:
                    code = requests.get(s.base + "/health", timeout=5).status_code
                except requests.RequestException as e:
                    code = type(e).__name__
                health.append((code, time.monotonic() - t))
                stop.wait(0.5)

        log(f"soak: {args.soak_clients} clients for {args.soak}s against hanlin "
            f"(--parallel {args.parallel}, max_tokens {max_tokens}) …")
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.soak_clients)]
        hp = threading.Thread(target=poll_health)
        t0 = time.monotonic()
        hp.start()
        for t in threads:
            t.start()
        time.sleep(args.soak)
        stop.set()
        _TrackedConnection.cut_all()  # abandon whatever is in flight or queued
        for t in threads:
            t.join(timeout=30)
        stuck = sum(t.is_alive() for t in threads)
        hp.join()
        wall = time.monotonic() - t0
        # after the disconnects: a fresh request must get a slot at once
        time.sleep(1.0)
        probe = one_request(s.base, s.model_id, "Say hello.", 16, 120)
        probe_health = requests.get(s.base + "/health", timeout=5).status_code
        rss1 = rss_mib(s.proc.pid)
        # idle: the engine drops its prefix cache and gives the KV memory back
        time.sleep(args.kv_idle_trim + 2)
        rss2 = rss_mib(s.proc.pid)
        alive = s.proc.poll() is None
    finally:
        s.stop()
    row = summarize("hanlin (soak)", args.soak_clients, results, wall)
    bad_health = [h for h in health if h[0] != 200]
    lat = [h[1] for h in health]
    print(f"### Soak: {args.soak_clients} clients for {args.soak:g} s against hanlin "
          f"(max_tokens {max_tokens})\n")
    print_table([row])
    print()
    print(f"- requests completed: {row['ok']} ({row['tokens']} tokens in {wall:.1f} s); "
          f"cut at the deadline: {row['cancelled']}; client threads stuck after the cut: {stuck}")
    print(f"- request errors: {row['errors']} {row['error_samples'] or ''}")
    print(f"- /health during the soak: {len(health) - len(bad_health)}/{len(health)} answered "
          f"200; latency p50 {fmt(statistics.median(lat) if lat else None, '.3f')} s, "
          f"max {fmt(max(lat) if lat else None, '.3f')} s")
    if bad_health:
        print(f"- non-200 /health answers: {sorted(set(str(h[0]) for h in bad_health))}")
    probe_ok = probe["error"] is None and probe["ttft"] is not None and probe["ttft"] < 5
    print(f"- probe after the cut: {'ok' if probe['error'] is None else probe['error']}, "
          f"TTFT {fmt(probe['ttft'], '.3f')} s; /health {probe_health}")
    # back to the warm-up level (+10% and 16 MiB of allocator slack) once idle
    rss_back = rss0 is not None and rss2 is not None and rss2 <= rss0 * 1.1 + 16
    print(f"- server RSS: {fmt(rss0, '.0f')} MiB after warm-up, {fmt(rss1, '.0f')} MiB at the "
          f"end, {fmt(rss2, '.0f')} MiB after {args.kv_idle_trim + 2} s idle "
          f"(`--kv-idle-trim {args.kv_idle_trim}`): {'back' if rss_back else 'NOT back'} to the "
          f"warm-up level; process alive at the end: {alive}")
    ok = (row["errors"] == 0 and not bad_health and alive and row["ok"] > 0 and stuck == 0
          and probe_ok and probe_health == 200 and rss_back)
    print(f"\n**soak {'PASSED' if ok else 'FAILED'}**")
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hanlin", required=True, help="hanlin binary")
    p.add_argument("--llama-python", default=sys.executable,
                   help="Python with llama_cpp.server importable (default: this one)")
    p.add_argument("--model", default="gemma3:270m", help="store name or GGUF path")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ctx", type=int, default=2048)
    p.add_argument("--kv-idle-trim", type=int, default=3,
                   help="hanlin serve --kv-idle-trim (seconds idle before the KV memory is released)")
    p.add_argument("--parallel", type=int, default=16, help="hanlin serve --parallel")
    p.add_argument("--clients", default="1,4,8,16")
    p.add_argument("--requests-per-client", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--servers", default="hanlin,llama.cpp")
    p.add_argument("--timeout", type=float, default=600, help="per-request timeout, seconds")
    p.add_argument("--soak", type=float, metavar="SECONDS",
                   help="instead of the comparison: keep --soak-clients busy against hanlin")
    p.add_argument("--soak-clients", type=int, default=64)
    p.add_argument("--soak-max-tokens", type=int, default=16,
                   help="max_tokens of soak requests (short, so requests turn over often)")
    p.add_argument("--logdir", default=None, help="where server logs go (default: a temp dir)")
    args = p.parse_args()
    args.clients = [int(x) for x in args.clients.split(",") if x]
    args.servers = [x for x in args.servers.split(",") if x]
    for s in args.servers:
        if s not in ("hanlin", "llama.cpp"):
            p.error(f"unknown server {s!r}")

    logdir = args.logdir or os.path.join("/tmp", f"hanlin-loadtest-{os.getpid()}")
    os.makedirs(logdir, exist_ok=True)
    gguf = resolve_gguf(args.hanlin, args.model)
    mach = machine()
    print(f"# hanlin load test\n")
    print(f"- machine: {mach}")
    print(f"- model: {args.model} ({gguf})")
    print(f"- threads {args.threads}, ctx {args.ctx}, hanlin --parallel {args.parallel}, "
          f"max_tokens {args.soak_max_tokens if args.soak else args.max_tokens}, "
          f"temperature 0.8")
    print(f"- server logs: {logdir}\n", flush=True)

    if args.soak:
        sys.exit(0 if soak(args, gguf, logdir) else 1)

    print(f"{args.requests_per_client} streaming requests per client, back to back; clients "
          f"start together.\n")
    t0 = time.monotonic()
    rows = bench(args, gguf, logdir)
    print_table(rows)
    print(f"\nagg tok/s: completion tokens of successful requests / wall time of the level. "
          f"TTFT: request sent to first content chunk (includes queueing). Per-request tok/s: "
          f"(tokens - 1) / (last - first content chunk). Total run {time.monotonic() - t0:.0f} s.")
    print("\nCPU cores used during each level (server / load generator / rest of machine): " +
          "; ".join(f"{r['server']}@{r['clients']} {r['cpu_server']:.2f}/{r['cpu_client']:.2f}/"
                    f"{r['cpu_other']:.2f}" for r in rows))
    for r in rows:
        if r["error_samples"]:
            print(f"- {r['server']} @ {r['clients']}: {r['error_samples']}")
    sys.exit(1 if any(r["errors"] for r in rows) else 0)


if __name__ == "__main__":
    main()
