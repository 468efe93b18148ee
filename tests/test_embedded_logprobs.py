"""The embedded backend serves log-probabilities, and chat for the base model it offers."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from turnout.backends.base import Failure, Operation, UpstreamError, UpstreamRequest
from turnout.backends.embedded import EmbeddedBackend
from turnout.backends.gguf import chat_template_for


def _served(model: str) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(model, model, max_concurrency=1)
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())


@pytest.fixture(scope="module")
def smollm2() -> Iterator[EmbeddedBackend]:
    yield from _served("smollm2-135m")


def answer(backend: EmbeddedBackend, operation: Operation, **body: Any) -> dict[str, Any]:
    request = UpstreamRequest(operation, body, "req")
    return asyncio.run(backend.complete(request)).body


PROMPT = "The history of the printing press begins"


def test_asking_for_logprobs_does_not_change_what_is_sampled(smollm2: EmbeddedBackend) -> None:
    body = {"prompt": PROMPT, "max_tokens": 12, "temperature": 1.0, "seed": 7}
    plain = answer(smollm2, Operation.COMPLETION, **body)["choices"][0]
    with_lp = answer(smollm2, Operation.COMPLETION, **body, logprobs=3)["choices"][0]
    assert plain["text"] == with_lp["text"]
    assert plain.get("logprobs") is None
    lp = with_lp["logprobs"]
    assert "".join(lp["tokens"]) == with_lp["text"]
    assert len(lp["token_logprobs"]) == len(lp["tokens"]) == len(lp["top_logprobs"])
    for chosen, token, top in zip(
        lp["token_logprobs"], lp["tokens"], lp["top_logprobs"], strict=True
    ):
        assert chosen <= 0 and len(top) <= 3
        # A sampled token is either among the top 3 or less likely than all of them.
        assert token in top or chosen <= min(top.values())
        assert all(v <= 0 for v in top.values()) and sum(math.exp(v) for v in top.values()) <= 1


def test_greedy_tokens_are_the_likeliest(smollm2: EmbeddedBackend) -> None:
    out = answer(
        smollm2, Operation.COMPLETION, prompt=PROMPT, max_tokens=4, temperature=0, logprobs=5
    )
    lp = out["choices"][0]["logprobs"]
    for token, chosen, top in zip(
        lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], strict=True
    ):
        assert chosen == max(top.values()) and top[token] == chosen


def test_chat_logprobs_come_in_the_chat_shape(smollm2: EmbeddedBackend) -> None:
    out = answer(
        smollm2,
        Operation.CHAT,
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    choice = out["choices"][0]
    content = choice["logprobs"]["content"]
    assert "".join(c["token"] for c in content) == choice["message"]["content"]
    assert all(
        len(c["top_logprobs"]) == 2 and c["bytes"] == list(c["token"].encode()) for c in content
    )


@pytest.mark.parametrize(
    ("operation", "extra", "message"),
    [
        (Operation.COMPLETION, {"logprobs": 21}, "from 0 to 20"),
        (Operation.COMPLETION, {"logprobs": True}, "from 0 to 20"),
        (Operation.CHAT, {"logprobs": 3}, "true or false"),
        (Operation.CHAT, {"top_logprobs": 2}, "needs 'logprobs': true"),
    ],
)
def test_bad_logprob_requests_are_client_errors(
    smollm2: EmbeddedBackend, operation: Operation, extra: dict[str, Any], message: str
) -> None:
    body: dict[str, Any] = (
        {"prompt": PROMPT} if operation is Operation.COMPLETION
        else {"messages": [{"role": "user", "content": "Hi"}]}
    )  # fmt: skip
    with pytest.raises(UpstreamError) as caught:
        answer(smollm2, operation, **body, **extra, max_tokens=2)
    assert caught.value.failure is Failure.CLIENT_ERROR and message in caught.value.message


def test_streamed_logprobs_are_refused_with_a_reason(smollm2: EmbeddedBackend) -> None:
    request = UpstreamRequest(Operation.COMPLETION, {"prompt": PROMPT, "logprobs": 1}, "req")

    async def first() -> None:
        async for _ in smollm2.stream(request):
            break

    with pytest.raises(UpstreamError, match="non-streaming requests only"):
        asyncio.run(first())


def test_the_base_model_offered_answers_chat_through_gemma3s_template() -> None:
    template = chat_template_for("gemma3-270m")
    assert template is not None and template.name == "gemma3"
    messages = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "What colour is the sky?"},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "And grass?"},
    ]
    prompt = Jinja2ChatFormatter(template.jinja, "<eos>", "<bos>")(messages=messages).prompt
    assert prompt == (
        "<bos><start_of_turn>user\nAnswer in one word.\n\nWhat colour is the sky?<end_of_turn>\n"
        "<start_of_turn>model\nBlue.<end_of_turn>\n"
        "<start_of_turn>user\nAnd grass?<end_of_turn>\n<start_of_turn>model\n"
    )
    for backend in _served("gemma3-270m"):
        out = answer(
            backend,
            Operation.CHAT,
            messages=[
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "What colour is the sky?"},
            ],
            max_tokens=8,
            temperature=0,
        )
        assert out["choices"][0]["message"]["role"] == "assistant"
        assert out["usage"]["prompt_tokens"] > 10  # the turns went in, in Gemma's format
