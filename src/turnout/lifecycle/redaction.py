"""`privacy: redact` in a request's path: placeholders out, originals back in, streams included."""

from __future__ import annotations

from typing import Any

from turnout.privacy.redact import Redactor, Restorer
from turnout.privacy.scanner import Scanner


class Redaction:
    """One request's placeholders: the same value gets the same placeholder on every attempt."""

    def __init__(self, scanner: Scanner) -> None:
        self._redactor = Redactor(scanner)

    def body(self, body: dict[str, Any]) -> dict[str, Any]:
        redacted, _ = self._redactor.redact_request(body)
        return redacted

    def restore_response(self, body: dict[str, Any]) -> dict[str, Any]:
        restorer = self._redactor.restorer()
        for choice in body.get("choices") or ():
            if isinstance(choice.get("text"), str):
                choice["text"] = restorer.restore(choice["text"])
            message = choice.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("content"), str):
                    message["content"] = restorer.restore(message["content"])
                for call in message.get("tool_calls") or ():
                    fn = call.get("function") or {}
                    if isinstance(fn.get("arguments"), str):
                        fn["arguments"] = restorer.restore(fn["arguments"])
        return body

    def stream(self) -> StreamRestorer:
        return StreamRestorer(self._redactor)


class StreamRestorer:
    """Restores chunk by chunk; a placeholder split across chunks is held until it is whole."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._texts: dict[tuple[int, int | None], Restorer] = {}

    def _restorer(self, key: tuple[int, int | None]) -> Restorer:
        r = self._texts.get(key)
        if r is None:
            r = self._texts[key] = self._redactor.restorer()
        return r

    def apply(self, chunk: dict[str, Any]) -> dict[str, Any]:
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            finished = bool(choice.get("finish_reason"))
            if "text" in choice:  # text completion
                r = self._restorer((index, None))
                choice["text"] = r.feed(choice.get("text") or "") + (r.flush() if finished else "")
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            r = self._restorer((index, None))
            if delta.get("content") or finished:
                out = r.feed(delta.get("content") or "") + (r.flush() if finished else "")
                if out or delta.get("content") is not None:
                    delta["content"] = out
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                cr = self._restorer((index, call.get("index", 0)))
                if isinstance(fn.get("arguments"), str):
                    fn["arguments"] = cr.feed(fn["arguments"])
            if finished:
                for (i, slot), cr in self._texts.items():
                    tail = cr.flush() if slot is not None and i == index else ""
                    if tail:  # an argument tail held back: send it in a last delta of its own
                        delta.setdefault("tool_calls", []).append(
                            {"index": slot, "function": {"arguments": tail}}
                        )
        return chunk
