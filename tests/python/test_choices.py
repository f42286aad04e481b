"""`n > 1` (several choices per request) through the official OpenAI SDK against `hanlin serve`."""

from collections import defaultdict

MESSAGES = [{"role": "user", "content": "Once upon a time"}]


def _chat(client, server, **extra):
    args = dict(model=server.model, messages=MESSAGES, max_tokens=16, temperature=1.0, seed=1234)
    return client.chat.completions.create(**{**args, **extra})


def test_n3_distinct_with_seed_and_reproducible(client, server):
    r = _chat(client, server, n=3, logprobs=True)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.content for c in r.choices]
    assert all(isinstance(t, str) for t in texts)
    assert len(set(texts)) == 3, texts
    for c in r.choices:
        assert c.finish_reason in ("stop", "length")
        assert c.message.role == "assistant"
    # Prompt counted once, completion tokens summed over the choices (one logprob per token).
    assert r.usage.completion_tokens == sum(len(c.logprobs.content) for c in r.choices)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    single = _chat(client, server)
    assert r.usage.prompt_tokens == single.usage.prompt_tokens
    # Same seed, same choices; choice 0 is the n=1 sample.
    again = _chat(client, server, n=3)
    assert [c.message.content for c in again.choices] == texts
    assert single.choices[0].message.content == texts[0]


def test_n3_greedy_choices_are_identical(client, server):
    r = _chat(client, server, n=3, temperature=0)
    assert len({c.message.content for c in r.choices}) == 1


def test_n3_stream_indices_finish_and_usage(client, server):
    whole = _chat(client, server, n=3)
    chunks = list(
        _chat(client, server, n=3, stream=True, stream_options={"include_usage": True})
    )
    *body, usage_chunk = chunks
    assert usage_chunk.choices == []
    assert usage_chunk.usage.completion_tokens == whole.usage.completion_tokens
    assert usage_chunk.usage.prompt_tokens == whole.usage.prompt_tokens
    texts = defaultdict(str)
    finishes = defaultdict(list)
    for c in body:
        assert c.usage is None
        assert len(c.choices) == 1
        ch = c.choices[0]
        assert not finishes[ch.index], f"chunk after choice {ch.index} finished"
        texts[ch.index] += ch.delta.content or ""
        if ch.finish_reason is not None:
            finishes[ch.index].append(ch.finish_reason)
    assert sorted(finishes) == [0, 1, 2]
    assert all(len(f) == 1 and f[0] in ("stop", "length") for f in finishes.values())
    # Batch-invariant kernels: the streamed choices are the non-streamed ones.
    assert [texts[i] for i in range(3)] == [c.message.content for c in whole.choices]


def test_completions_n2(client, server):
    r = client.completions.create(
        model=server.model, prompt="Once upon a time", max_tokens=12, temperature=1.0, seed=7, n=2
    )
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].text != r.choices[1].text
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)
