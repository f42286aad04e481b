"""Shared helpers for the gateway scripts: start fake_serve, call the admin API, load."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "examples", "fake_serve")
SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def build():
    subprocess.run(["cargo", "build", "--release", "-p", "hanlin-gateway", "--example", "fake_serve"],
                   cwd=ROOT, check=True)


def init(db):
    out = subprocess.run([BIN, "init", "--db", db], check=True, capture_output=True, text=True,
                         env=dict(os.environ, HANLIN_SECRET_KEY=SECRET))
    return out.stdout.strip()


def start(mode, port, db=None, extra=(), log=None):
    args = [BIN, mode, "--port", str(port)] + (["--db", db] if db else []) + list(extra)
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, text=True,
                         env=dict(os.environ, HANLIN_SECRET_KEY=SECRET))
    line = p.stdout.readline()
    if "listening" not in line:
        raise RuntimeError(f"{mode} did not start: {line!r}")
    return p


def kill9(p):
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def call(port, method, path, key=None, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def admin(port, admin_key, method, path, body=None):
    st, _, text = call(port, method, "/admin/v1" + path, admin_key, body)
    if st >= 300:
        raise RuntimeError(f"{method} {path}: {st} {text}")
    return json.loads(text) if text else None


def wait_up(port, key, tries=100):
    for _ in range(tries):
        try:
            call(port, "GET", "/v1/models", key, timeout=2)
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError("server did not come up")
