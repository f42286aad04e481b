"""The Ollama API over plain HTTP (NDJSON streaming), as Ollama clients and UIs use it."""

import json
from datetime import datetime, timezone

import requests


def test_chat_streams_ndjson(server):
    body = {"model": server.model, "messages": [{"role": "user", "content": "Hi"}], "options": {"num_predict": 5}}
    with requests.post(f"{server.url}/api/chat", json=body, stream=True, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in r.iter_lines() if line]
    *parts, last = lines
    assert all(not p["done"] and p["message"]["role"] == "assistant" for p in parts)
    assert last["done"] is True and last["done_reason"] in ("stop", "length")
    assert last["eval_count"] <= 5 and last["prompt_eval_count"] > 0
    assert last["total_duration"] >= last["eval_duration"] > 0


def test_chat_and_generate_without_streaming(server):
    body = {"model": server.model, "stream": False, "options": {"num_predict": 4, "temperature": 0},
            "messages": [{"role": "user", "content": "Hi"}]}
    r = requests.post(f"{server.url}/api/chat", json=body, timeout=60).json()
    assert r["done"] is True and r["message"]["content"]
    r = requests.post(
        f"{server.url}/api/generate",
        json={"model": server.model, "prompt": "Once upon a time", "raw": True, "stream": False,
              "options": {"num_predict": 4, "temperature": 0}},
        timeout=60,
    ).json()
    assert r["done"] is True and r["response"] and r["eval_count"] <= 4


def test_tags_show_version_and_errors(server):
    tags = requests.get(f"{server.url}/api/tags", timeout=10).json()
    assert server.model in [m["name"] for m in tags["models"]]
    show = requests.post(f"{server.url}/api/show", json={"model": server.model}, timeout=10)
    assert show.status_code == 200 and "details" in show.json()
    assert requests.get(f"{server.url}/api/version", timeout=10).json()["version"]
    r = requests.post(f"{server.url}/api/chat", json={"model": "nope", "messages": []}, timeout=10)
    assert r.status_code == 404 and r.json() == {"error": "model 'nope' not found"}
    r = requests.post(f"{server.url}/api/chat", data=b"{not json", timeout=10)
    assert r.status_code == 400 and isinstance(r.json()["error"], str)


def test_load_unload_keep_alive_and_ps(server):
    url = server.url

    def loaded():
        return {m["name"]: m for m in requests.get(f"{url}/api/ps", timeout=30).json()["models"]}

    r = requests.post(f"{url}/api/generate", json={"model": server.model}, timeout=60)
    assert r.status_code == 200, r.text
    assert (r.json()["done"], r.json()["done_reason"]) == (True, "load")
    assert server.model in loaded()

    r = requests.post(f"{url}/api/generate", json={"model": server.model, "keep_alive": 0}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["done_reason"] == "unload"
    assert server.model not in loaded()

    # The next request loads it again and sets how long it stays.
    r = requests.post(
        f"{url}/api/generate",
        json={
            "model": server.model,
            "prompt": "Once upon a time",
            "stream": False,
            "keep_alive": "10m",
            "options": {"num_predict": 4, "temperature": 0},
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["done"] is True
    entry = loaded()[server.model]
    expires = datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00"))
    left = (expires - datetime.now(timezone.utc)).total_seconds()
    assert 500 < left <= 605, entry["expires_at"]

    r = requests.post(f"{url}/api/generate", json={"model": server.model, "keep_alive": "soon"}, timeout=30)
    assert r.status_code == 400
    assert "keep_alive" in r.json()["error"]
    r = requests.post(f"{url}/api/generate", json={"model": "no-such-model", "keep_alive": 0}, timeout=30)
    assert r.status_code == 404

    # Back to "never unload" for the tests that follow.
    r = requests.post(f"{url}/api/generate", json={"model": server.model, "keep_alive": -1}, timeout=60)
    assert r.json()["done_reason"] == "load"
    assert loaded()[server.model]["expires_at"].startswith("9999")
