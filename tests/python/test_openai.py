"""The official OpenAI Python SDK against `hanlin serve`."""

import openai
import pytest
from openai import OpenAI

MESSAGES = [{"role": "user", "content": "Once upon a time"}]


def test_chat_completion(client, server):
    r = client.chat.completions.create(
        model=server.model, messages=MESSAGES, max_tokens=8, temperature=0, seed=1
    )
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == server.model
    assert r.system_fingerprint.startswith("fp_")
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens >= 0


def test_chat_stream_with_usage_matches_non_streamed(client, server):
    args = dict(model=server.model, messages=MESSAGES, max_tokens=12, temperature=0)
    whole = client.chat.completions.create(**args)
    chunks = list(
        client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    *body, usage_chunk = chunks
    assert usage_chunk.choices == []
    assert usage_chunk.usage.completion_tokens == whole.usage.completion_tokens
    assert usage_chunk.usage.prompt_tokens == whole.usage.prompt_tokens
    assert all(c.usage is None for c in body)
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert text == whole.choices[0].message.content, "greedy decoding is deterministic"
    assert body[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_repeated_chat_reuses_prefix(client, server):
    args = dict(model=server.model, messages=MESSAGES, max_tokens=2, temperature=0)
    client.chat.completions.create(**args)
    second = client.chat.completions.create(**args)
    assert second.usage.prompt_tokens_details.cached_tokens > 0


def test_chat_logprobs(client, server):
    r = client.chat.completions.create(
        model=server.model, messages=MESSAGES, max_tokens=3, temperature=0, logprobs=True, top_logprobs=2
    )
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in content)
    # Greedy: the chosen token is the most likely one.
    assert content[0].top_logprobs[0].token == content[0].token


def test_completions(client, server):
    r = client.completions.create(model=server.model, prompt="Once upon a time", max_tokens=6, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 6
    streamed = list(
        client.completions.create(
            model=server.model, prompt="Once upon a time", max_tokens=6, temperature=0,
            stream=True, stream_options={"include_usage": True},
        )
    )
    assert streamed[-1].choices == [] and streamed[-1].usage.completion_tokens == r.usage.completion_tokens
    assert "".join(c.choices[0].text for c in streamed[:-1]) == r.choices[0].text


def test_models(client, server):
    ids = [m.id for m in client.models.list()]
    assert server.model in ids
    m = client.models.retrieve(server.model)
    assert (m.id, m.object, m.owned_by) == (server.model, "model", "hanlin")
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such-model")
    assert e.value.code == "model_not_found"


@pytest.mark.parametrize(
    "extra, param",
    [
        (dict(temperature=3), "temperature"),
        (dict(top_p=0), "top_p"),
        (dict(n=17), "n"),
        (dict(stop=["a", "b", "c", "d", "e"]), "stop"),
        (dict(logit_bias={"x": 1}), "logit_bias"),
        (dict(top_logprobs=3), "top_logprobs"),
        (dict(presence_penalty=-2.5), "presence_penalty"),
        (dict(messages=[]), "messages"),
        (dict(messages=[{"role": "wizard", "content": "hi"}]), "messages.[0].role"),
    ],
)
def test_bad_request_names_param(client, server, extra, param):
    args = {"model": server.model, "messages": MESSAGES, "max_tokens": 2, **extra}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**args)
    assert e.value.status_code == 400
    assert e.value.param == param
    assert e.value.type == "invalid_request_error"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt="x")


def test_context_length_exceeded(client, server):
    long = "one two three four " * 400
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": long}])
    assert e.value.code == "context_length_exceeded"


def test_api_key(keyed_server):
    def make(key):
        return OpenAI(base_url=f"{keyed_server.url}/v1", api_key=key, max_retries=0, timeout=60)

    with pytest.raises(openai.AuthenticationError) as e:
        make("wrong-key").models.list()
    assert e.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        make("wrong-key").chat.completions.create(model=keyed_server.model, messages=MESSAGES)
    ids = [m.id for m in make("test-key-123").models.list()]
    assert keyed_server.model in ids
