"""An in-process llama.cpp model (llama-cpp-python) answering as a Backend.

A `Llama` is not thread-safe, so the backend holds one per concurrency slot and lends each to one
request at a time; generation runs in worker threads, never on the event loop. The pool is guarded
by a thread lock rather than asyncio primitives so one backend serves any event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import random
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jinja2
import llama_cpp
from llama_cpp import Llama, LlamaGrammar, LogitsProcessorList
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import JSON_GBNF

from . import token_logprobs
from .base import Completion, Failure, Operation, StreamChunk, UpstreamError, UpstreamRequest, Usage
from .gguf import ChatTemplate, chat_template_for, resolve_model

_Item = tuple[str, Any]  # worker → loop messages: ("chunk" | "done" | "error", payload)
_Emit = Callable[[_Item], None]
_INT_PARAMS = ("n", "seed", "top_k", "max_tokens", "max_completion_tokens")
_NUMBER_PARAMS = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "min_p",
    "repeat_penalty",
)


class _Slot(Llama):
    """A pooled Llama that counts its tokens and stops between two tokens when told to."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_event = threading.Event()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.recorder: token_logprobs.Recorder | None = None  # set while logprobs are asked for

    def generate(  # type: ignore[override]
        self, tokens: Sequence[int], *args: Any, **kwargs: Any
    ) -> Generator[int, Any, None]:
        # Every completion path of llama-cpp-python runs through here, so this is the one place
        # where a cancelled request is noticed per token, and where streamed usage is counted.
        self.prompt_tokens, self.completion_tokens = len(tokens), 0
        if self.stop_event.is_set():
            return
        # Evaluate every prompt from scratch: reusing a cached prefix evaluates it in other
        # batches, and the rounding that changes flips greedy answers. The same request gives
        # the same answer whatever ran before it, at the cost of re-reading shared prefixes.
        self.reset()
        inner = super().generate(tokens, *args, **kwargs)
        try:
            for token in inner:
                if self.stop_event.is_set():
                    return
                # End-of-generation tokens are not counted, matching llama's own usage.
                if not llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                    self.completion_tokens += 1
                if self.recorder is not None:
                    self.recorder.took(token)
                yield token
        finally:
            inner.close()


def _bad_request(message: str) -> UpstreamError:
    return UpstreamError(Failure.CLIENT_ERROR, message, status=400)


def _param(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """body[key] if it is absent, null or of `kind` (bools are not numbers); else a 400."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise _bad_request(f"{key!r} must be {what}")
    return value


@functools.lru_cache(maxsize=64)
def _schema_grammar(schema_json: str) -> LlamaGrammar:
    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


def _grammar(response_format: Any) -> LlamaGrammar | None:
    """A grammar enforcing `response_format`, built here because llama-cpp-python ignores
    type "json_schema" and silently falls back to any-JSON when a schema fails to convert."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise _bad_request("'response_format' must be an object")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":  # "schema" here is llama-cpp-python's own extension
        schema = response_format.get("schema")
        if schema is None:
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    elif kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
    else:
        raise _bad_request(f"response_format type {kind!r} is not supported")
    if not isinstance(schema, dict):
        raise _bad_request("response_format needs a JSON schema object")
    try:
        return _schema_grammar(json.dumps(schema, sort_keys=True))
    except Exception as exc:  # the converter raises AssertionError, KeyError, …
        raise _bad_request(f"response_format schema is not supported: {exc}") from exc


def _text_content(content: Any) -> str:
    # Chat templates concatenate strings: null (assistant tool calls) and text parts must be str.
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    raise _bad_request("message content must be a string or a list of text parts")


def _classify(exc: BaseException) -> UpstreamError:
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, ValueError) and "exceed context window" in str(exc):
        return _bad_request(f"prompt too long: {exc}")
    # llama-cpp-python raises ValueError for what the request asks (unknown tool_choice,
    # logprobs without logits_all, a template's raise_exception); a template may fail too.
    if isinstance(exc, ValueError | jinja2.TemplateError):
        return _bad_request(f"{type(exc).__name__}: {exc}")
    return UpstreamError(Failure.SERVER_ERROR, f"llama.cpp failed: {type(exc).__name__}: {exc}")


class EmbeddedBackend:
    """A GGUF model run in-process by llama.cpp, `max_concurrency` requests at a time."""

    def __init__(
        self,
        name: str,
        model: str,
        *,
        max_concurrency: int = 1,
        max_queue: int = 64,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        model_alias: str | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.model_name = model_alias or model
        self._max_concurrency = max(1, max_concurrency)
        self._max_queue = max(0, max_queue)
        self._n_ctx = n_ctx
        # The slots share the cores, less one for the event loop: llama.cpp's threads spin while
        # they wait for each other, so oversubscribed cores slow generation down many times over.
        cores = max(1, (os.cpu_count() or 1) - 1)
        self._n_threads = n_threads or max(1, cores // self._max_concurrency)
        self._slots: list[_Slot] = []
        self._free: list[_Slot] = []
        self._waiters: collections.deque[asyncio.Future[_Slot]] = collections.deque()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._ready = False
        self._has_chat_template = False
        self._formatter: Jinja2ChatFormatter | None = None  # renders a prefill's prompt

    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        if self._ready:
            return
        self._slots = await asyncio.to_thread(self._load)
        self._free = list(self._slots)
        # Without a template llama-cpp-python silently formats chats as llama-2: wrong for most.
        self._has_chat_template = "tokenizer.chat_template" in self._slots[0].metadata
        fallback = chat_template_for(self.model)
        if not self._has_chat_template and fallback is not None:
            for slot in self._slots:
                slot.chat_handler = _template_handler(slot, fallback)
            self._has_chat_template = True
        own = self._slots[0].metadata.get("tokenizer.chat_template")
        if own is not None:
            self._formatter = _formatter(self._slots[0], own, None)
        elif fallback is not None:
            self._formatter = _formatter(self._slots[0], fallback.jinja, fallback.end_of_turn)
        self._executor = ThreadPoolExecutor(self._max_concurrency, f"embedded-{self.name}")
        self._ready = True

    def _load(self) -> list[_Slot]:
        path, n = str(resolve_model(self.model)), self._n_threads
        kwargs = {"n_ctx": self._n_ctx, "n_threads": n, "n_threads_batch": n, "verbose": False}
        return [_Slot(path, **kwargs) for _ in range(self._max_concurrency)]

    async def close(self, timeout_s: float = 30.0) -> None:
        self._ready = False
        with self._lock:
            waiters, self._waiters = list(self._waiters), collections.deque()
            for slot in self._slots:
                slot.stop_event.set()
        for fut in waiters:
            with contextlib.suppress(RuntimeError):  # that waiter's loop is already closed
                fut.get_loop().call_soon_threadsafe(_fail, fut, "backend closed")
        # Freeing a Llama that a thread still uses would crash: wait for the workers to let go.
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self._free) < len(self._slots) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for slot in self._free:
            slot.close()
        self._slots, self._free = [], []
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    # -- the pool ---------------------------------------------------------------------------

    async def _acquire(self) -> _Slot:
        with self._lock:
            if self._free:  # a free slot implies no waiters: _release hands over first
                return self._free.pop()
            if len(self._waiters) >= self._max_queue:
                raise UpstreamError(
                    Failure.OVERLOADED, f"{self.name}: {len(self._waiters)} requests already queued"
                )
            fut: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            with self._lock:
                if fut in self._waiters:
                    self._waiters.remove(fut)
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release(fut.result())  # handed a slot just as we were cancelled
            raise

    def _release(self, slot: _Slot) -> None:
        """Give `slot` to the oldest waiter, else back to the pool; callable from any thread."""
        with self._lock:
            while self._waiters:
                fut = self._waiters.popleft()
                try:
                    fut.get_loop().call_soon_threadsafe(self._hand_over, fut, slot)
                    return
                except RuntimeError:  # that waiter's loop is closed
                    continue
            self._free.append(slot)

    def _hand_over(self, fut: asyncio.Future[_Slot], slot: _Slot) -> None:
        if fut.done():  # cancelled meanwhile: pass the slot on
            self._release(slot)
        else:
            fut.set_result(slot)

    # -- requests ---------------------------------------------------------------------------

    async def complete(self, request: UpstreamRequest) -> Completion:
        async with contextlib.aclosing(self._run(request, stream=False)) as items:
            async for kind, payload in items:
                if kind == "done":
                    body: dict[str, Any] = payload
                    return Completion(body=body, usage=Usage.from_body(body.get("usage")))
        raise UpstreamError(Failure.SERVER_ERROR, "llama.cpp returned nothing")

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[StreamChunk]:
        last: dict[str, Any] = {}
        # aclosing: when our consumer goes away, _run's cleanup (stopping the worker) runs now,
        # not whenever the garbage collector finalizes it.
        async with contextlib.aclosing(self._run(request, stream=True)) as items:
            async for kind, payload in items:
                if kind == "chunk":
                    last = payload
                    yield StreamChunk(data=payload)
                    continue
                yield StreamChunk(
                    data={
                        "id": last.get("id", request.request_id),
                        "object": last.get("object", "chat.completion.chunk"),
                        "created": last.get("created", 0),
                        "model": self.model_name,
                        "choices": [],
                        "usage": payload,
                    }
                )

    async def _run(self, request: UpstreamRequest, *, stream: bool) -> AsyncIterator[_Item]:
        """Run one request on a slot in a worker thread, relaying what it reports."""
        if not self._ready:
            raise UpstreamError(Failure.SERVER_ERROR, f"{self.name}: model not loaded", status=503)
        call = self._prepare(request, stream=stream)
        slot = await self._acquire()
        stop = threading.Event()  # per request: setting it late cannot touch the slot's next user
        slot.stop_event = stop
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()

        def emit(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone, so is the client
                stop.set()

        try:
            if self._executor is None:
                raise RuntimeError("no executor")
            self._executor.submit(self._work, slot, call, emit, stream)
        except RuntimeError as exc:  # close() ran while we waited for the slot
            self._release(slot)
            raise UpstreamError(Failure.SERVER_ERROR, f"{self.name}: closed", status=503) from exc
        try:
            while True:
                kind, payload = await queue.get()
                if kind == "error":
                    raise _classify(payload)
                yield kind, payload
                if kind == "done":
                    return
        finally:
            stop.set()  # consumer gone (closed, cancelled) or finished: the worker stops

    def _work(self, slot: _Slot, call: Callable[[_Slot], Any], emit: _Emit, stream: bool) -> None:
        # The slot goes back before the last message, so whoever sees "done" can reuse it.
        final: _Item
        try:
            if stream:
                chunks: Iterable[dict[str, Any]] = call(slot)
                try:
                    for chunk in chunks:
                        if slot.stop_event.is_set():
                            break
                        emit(("chunk", chunk))
                finally:
                    getattr(chunks, "close", lambda: None)()
                n_in, n_out = slot.prompt_tokens, slot.completion_tokens
                usage = {"prompt_tokens": n_in, "completion_tokens": n_out}
                final = ("done", {**usage, "total_tokens": n_in + n_out})
            else:
                final = ("done", call(slot))
            if slot.stop_event.is_set():
                # Stopped: either the consumer left (nobody reads this) or close() cut the answer
                # short, which must not look like a normal finish.
                final = (
                    "error",
                    UpstreamError(Failure.SERVER_ERROR, "closed mid-answer", status=503),
                )
        except Exception as exc:
            final = ("error", exc)
        finally:
            self._release(slot)
        emit(final)

    def _prefilled(self, kwargs: dict[str, Any], stream: bool) -> Callable[[_Slot], Any]:
        """Continue the trailing assistant message: the chat's prompt up to the answer, then
        the answer so far, completed as text (what mid-stream continuation relies on)."""
        if self._formatter is None:
            raise _bad_request(f"{self.model} cannot continue an assistant message")
        *earlier, last = kwargs.pop("messages")
        rendered = self._formatter(messages=earlier)
        prompt = rendered.prompt + last["content"]
        for key in ("tools", "tool_choice", "functions", "function_call", "grammar"):
            kwargs.pop(key, None)  # a grammar constrains from the start, not from the middle
        stop = kwargs.pop("stop", None)
        stops = [*([stop] if isinstance(stop, str) else stop or ()), *(rendered.stop or ())]
        kwargs.update(prompt=prompt, stop=stops or None)
        if rendered.stopping_criteria is not None:
            kwargs["stopping_criteria"] = rendered.stopping_criteria
        return lambda slot: _as_chat(Llama.create_completion(slot, **kwargs), stream)

    def _prepare(self, request: UpstreamRequest, *, stream: bool) -> Callable[[_Slot], Any]:
        """Map an OpenAI body to a call on a slot; invalid parameters become a 400 here."""
        body = request.body
        for key in _INT_PARAMS:
            _param(body, key, int, "an integer")
        for key in _NUMBER_PARAMS:
            _param(body, key, (int, float), "a number")
        _param(body, "logit_bias", dict, "an object")
        if (body.get("n") or 1) != 1:
            raise _bad_request("only n=1 is supported")
        max_tokens = body.get("max_completion_tokens")
        max_tokens = body.get("max_tokens") if max_tokens is None else max_tokens
        if max_tokens is not None and max_tokens < 1:
            raise _bad_request("'max_tokens' must be at least 1")
        stop = body.get("stop")
        if not isinstance(stop, str | None) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)
        ):
            raise _bad_request("'stop' must be a string or a list of strings")
        keys = (*_NUMBER_PARAMS, "top_k", "logit_bias", "stop")
        kwargs: dict[str, Any] = {k: body[k] for k in keys if body.get(k) is not None}
        kwargs.setdefault("temperature", 1.0)  # OpenAI's defaults, not llama-cpp-python's
        kwargs.setdefault("top_p", 1.0)
        seed = body.get("seed")
        # Unseeded requests should differ, as OpenAI's do; llama would reuse one fixed seed.
        kwargs["seed"] = random.getrandbits(31) if seed is None else seed
        kwargs.update(stream=stream, model=self.model_name)
        kwargs["grammar"] = _grammar(body.get("response_format"))
        top_k = token_logprobs.requested(body, request.operation)
        if top_k is not None and stream:
            raise _bad_request("logprobs are served on non-streaming requests only")

        if request.operation is Operation.COMPLETION:
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str) and not (
                isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt)
            ):
                raise _bad_request("'prompt' must be a string or a list of token ids")
            # OpenAI's legacy default is 16 tokens; no chat template: base models have none.
            kwargs.update(prompt=prompt, max_tokens=16 if max_tokens is None else max_tokens)
            return _with_logprobs(Llama.create_completion, kwargs, top_k, request.operation)

        if not self._has_chat_template:
            raise _bad_request(
                f"{self.model} has no chat template (a base model?): use completions"
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad_request("'messages' must be a non-empty list")
        if not all(isinstance(m, dict) for m in messages):
            raise _bad_request("each message must be an object")
        kwargs["messages"] = [{**m, "content": _text_content(m.get("content"))} for m in messages]
        kwargs["max_tokens"] = max_tokens
        if messages[-1].get("role") == "assistant" and not body.get("tools"):
            return self._prefilled(kwargs, stream)
        for key in ("tools", "tool_choice", "functions", "function_call"):
            if body.get(key) is not None:
                kwargs[key] = body[key]
        tools = body.get("tools")
        if (
            body.get("tool_choice") == "required"
            and isinstance(tools, list)
            and len(tools) == 1
            and isinstance(tools[0], dict)
            and "function" in tools[0]
        ):
            # llama forces a call only for a named tool (by grammar); "required" with one tool
            # names it, else it would be ignored like "auto".
            kwargs["tool_choice"] = {"type": "function", "function": tools[0]["function"]}
        return _with_logprobs(Llama.create_chat_completion, kwargs, top_k, request.operation)


def _formatter(slot: _Slot, template: str, end_of_turn: str | None) -> Jinja2ChatFormatter:
    eos, bos = slot.token_eos(), slot.token_bos()

    def text(token: int) -> str:
        return slot._model.token_get_text(token) if token >= 0 else ""

    stops = [eos] if eos >= 0 else []
    if end_of_turn is not None:
        end = slot.tokenize(end_of_turn.encode(), add_bos=False, special=True)
        stops += end if len(end) == 1 else []
    return Jinja2ChatFormatter(template, text(eos), text(bos), stop_token_ids=stops)


def _as_chat(out: Any, stream: bool) -> Any:
    """A completion's output in chat completions' shape."""

    def choice(c: dict[str, Any], key: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"index": 0, key: value, "logprobs": None, "finish_reason": c.get("finish_reason")}

    if not stream:
        c = out["choices"][0]
        message = {"role": "assistant", "content": c.get("text") or ""}
        return {**out, "object": "chat.completion", "choices": [choice(c, "message", message)]}
    return (
        {**ch, "object": "chat.completion.chunk",
         "choices": [choice(c, "delta", {"content": c.get("text") or ""}) for c in ch["choices"]]}
        for ch in out
    )  # fmt: skip


def _with_logprobs(
    method: Callable[..., Any], kwargs: dict[str, Any], top_k: int | None, operation: Operation
) -> Callable[[_Slot], Any]:
    """The call on a slot; with `top_k` set, the answer carries log-probabilities."""
    if top_k is None:
        return lambda slot: method(slot, **kwargs)

    def call(slot: _Slot) -> Any:
        vocab = slot._model.vocab
        slot.recorder = token_logprobs.Recorder(
            slot, top_k, lambda t: llama_cpp.llama_vocab_is_eog(vocab, t)
        )
        try:
            out = method(slot, **kwargs, logits_processor=LogitsProcessorList([slot.recorder]))
            slot.recorder.attach(out, operation)
        finally:
            slot.recorder = None
        return out

    return call


def _template_handler(slot: _Slot, template: ChatTemplate) -> Any:
    """A chat handler from `template`, built as llama-cpp-python builds one from a GGUF's own."""
    eos, bos = slot.token_eos(), slot.token_bos()

    def text(token: int) -> str:
        return slot._model.token_get_text(token) if token >= 0 else ""

    end = slot.tokenize(template.end_of_turn.encode(), add_bos=False, special=True)
    stops = [t for t in (eos, *(end if len(end) == 1 else ())) if t >= 0]
    formatter = Jinja2ChatFormatter(template.jinja, text(eos), text(bos), stop_token_ids=stops)
    return formatter.to_chat_handler()


def _fail(fut: asyncio.Future[Any], message: str) -> None:
    if not fut.done():
        fut.set_exception(UpstreamError(Failure.SERVER_ERROR, message, status=503))
