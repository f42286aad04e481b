"""Starts a real `hanlin serve` on a free port for the SDK tests.

The binary comes from $HANLIN_BIN (default: target/release/hanlin); the model is the tiny
stories260K GGUF from shared test data ($HANLIN_TEST_MODEL overrides). Without the model the
tests skip, unless HANLIN_REQUIRE_MODELS=1 (as in scripts/test.sh), where they fail.
"""

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO.parent / "shared/testdata/models/stories260K/stories260K-f32.gguf"


def _binary() -> Path:
    path = Path(os.environ.get("HANLIN_BIN", REPO / "target/release/hanlin"))
    if not path.is_file():
        pytest.fail(f"hanlin binary not found at {path}; build it or set HANLIN_BIN")
    return path


def _model() -> Path:
    path = Path(os.environ.get("HANLIN_TEST_MODEL", DEFAULT_MODEL))
    if not path.is_file():
        msg = f"test model not found at {path}"
        if os.environ.get("HANLIN_REQUIRE_MODELS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


GEMMA3_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def gemma3_model() -> Path:
    """Gemma 3 270M: $HANLIN_GEMMA3_GGUF, else the model store blob (`hanlin pull gemma3:270m`).
    Skips when absent, unless HANLIN_REQUIRE_MODELS=1."""
    env = os.environ.get("HANLIN_GEMMA3_GGUF")
    home = Path(os.environ.get("HANLIN_HOME", Path.home() / ".hanlin"))
    path = Path(env) if env else home / "models/blobs" / f"sha256-{GEMMA3_SHA}"
    if not path.is_file():
        msg = f"Gemma 3 270M not found at {path} (run `hanlin pull gemma3:270m`)"
        if os.environ.get("HANLIN_REQUIRE_MODELS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


class Server:
    """A running `hanlin serve`; `url` is its base address, `model` the id it serves."""

    def __init__(self, *extra: str, model: Path | None = None, ctx: int = 512):
        model = model or _model()
        self.model = model.stem
        self.log = tempfile.NamedTemporaryFile("w+", prefix="hanlin-serve-", suffix=".log")
        cmd = [str(_binary()), "serve", "--model", str(model), "--port", "0", "--ctx", str(ctx), *extra]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = self._wait_for_address()
        self._wait_healthy()

    def _read_log(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            m = re.search(r"serving .* on (http://\S+)", self._read_log())
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                pytest.fail(f"hanlin serve exited early:\n{self._read_log()}")
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"hanlin serve did not start:\n{self._read_log()}")

    def _wait_healthy(self) -> None:
        for _ in range(200):
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        pytest.fail(f"/health never answered:\n{self._read_log()}")

    def stop(self) -> int:
        """SIGTERM, then the exit code (graceful shutdown must exit 0)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"hanlin serve ignored SIGTERM:\n{self._read_log()}")
        finally:
            self.log.close()


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    code = s.stop()
    assert code == 0, f"graceful shutdown exited with {code}"


@pytest.fixture(scope="session")
def keyed_server():
    s = Server("--api-key", "test-key-123")
    yield s
    assert s.stop() == 0


@pytest.fixture()
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)
