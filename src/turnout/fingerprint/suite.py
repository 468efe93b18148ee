"""Probe suites: which prompts to send, how often, and at which fixed sampling settings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import yaml

from turnout.backends.base import Operation
from turnout.config import ConfigError
from turnout.fingerprint._builtin import PROBES

BUILTIN = "builtin"


@dataclass(frozen=True, slots=True)
class Probe:
    """One prompt: a text-completion `prompt`, or chat `messages` for chat-only endpoints."""

    id: str
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    tags: tuple[str, ...] = ()

    @property
    def operation(self) -> Operation:
        return Operation.COMPLETION if self.prompt is not None else Operation.CHAT

    def body(self) -> dict[str, Any]:
        """The request body, sampling settings aside."""
        if self.prompt is not None:
            return {"prompt": self.prompt}
        return {"messages": [dict(m) for m in self.messages or ()]}

    def as_chat(self) -> Probe:
        """The same probe as one user turn, for endpoints that only speak chat."""
        if self.prompt is None:
            return self
        return replace(self, prompt=None, messages=({"role": "user", "content": self.prompt},))


@dataclass(frozen=True, slots=True)
class Sampling:
    """Fixed for a suite: a baseline and a check compare like with like."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 32

    def body(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    probes: tuple[Probe, ...]
    sampling: Sampling = field(default_factory=Sampling)
    samples_per_probe: int = 10
    # Top-k log-probabilities asked for, one greedy token per probe, where the endpoint has them.
    logprobs: int = 5

    def digest(self) -> str:
        """Identifies what is sent: two runs compare only if their suites send the same thing."""
        what = {
            "probes": [(p.id, p.prompt, p.messages) for p in self.probes],
            "sampling": self.sampling.body(),
        }
        return hashlib.sha256(orjson.dumps(what)).hexdigest()[:16]

    def to_spec(self) -> dict[str, Any]:
        """What a run stores, so that a later check can send exactly what its baseline sent."""
        return {
            "name": self.name,
            "samples_per_probe": self.samples_per_probe,
            "logprobs": self.logprobs,
            "sampling": self.sampling.body(),
            "probes": [
                {"id": p.id, "tags": list(p.tags)}
                | ({"prompt": p.prompt} if p.prompt is not None else {})
                | ({"messages": [dict(m) for m in p.messages]} if p.messages else {})
                for p in self.probes
            ],
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Suite:
        return parse_suite(spec, "<stored suite>")

    def with_options(
        self,
        *,
        samples_per_probe: int | None = None,
        max_tokens: int | None = None,
        probes: int | None = None,
        chat: bool = False,
    ) -> Suite:
        """The suite trimmed or resized from the command line."""
        out = self
        if samples_per_probe is not None:
            out = replace(out, samples_per_probe=samples_per_probe)
        if max_tokens is not None:
            out = replace(out, sampling=replace(out.sampling, max_tokens=max_tokens))
        if probes is not None:
            out = replace(out, probes=out.probes[:probes])
        if chat:
            out = replace(out, probes=tuple(p.as_chat() for p in out.probes))
        return out


def builtin_suite() -> Suite:
    probes = tuple(Probe(id=pid, prompt=prompt, tags=tags) for pid, tags, prompt in PROBES)
    return Suite(name=BUILTIN, probes=probes)


def resolve_suite(spec: str | None) -> Suite:
    """`builtin` (or nothing) for the built-in suite, else the path of a YAML suite."""
    if spec is None or spec == BUILTIN:
        return builtin_suite()
    return load_suite(spec)


def load_suite(path: str | Path) -> Suite:
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
    return parse_suite(data, source, default_name=Path(path).stem)


def _number(
    data: dict[str, Any], key: str, kind: type, where: str, source: str, default: Any
) -> Any:
    value = data.get(key, default)
    ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
    if isinstance(value, bool) or not ok:
        raise ConfigError(source, f"{where}{key}", f"expected a {kind.__name__}, got {value!r}")
    return value


def parse_suite(data: Any, source: str = "<suite>", *, default_name: str = "suite") -> Suite:
    """A suite from parsed YAML; errors name the file, the key path and what is wrong.

    name: support-bot            # optional
    samples_per_probe: 10
    logprobs: 5                  # 0: never ask for log-probabilities
    sampling: {temperature: 1.0, top_p: 1.0, max_tokens: 32}
    probes:
      - {id: refund, prompt: "Our refund policy says"}
      - {id: greet, messages: [{role: user, content: "Hello!"}]}
    """
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a mapping with a `probes` list")
    unknown = set(data) - {"name", "samples_per_probe", "logprobs", "sampling", "probes"}
    if unknown:
        raise ConfigError(source, sorted(map(str, unknown))[0], "unknown key")
    s = data.get("sampling") or {}
    if not isinstance(s, dict):
        raise ConfigError(source, "sampling", "expected a mapping")
    unknown_s = sorted(set(s) - {"temperature", "top_p", "max_tokens"})
    if unknown_s:
        raise ConfigError(source, f"sampling.{unknown_s[0]}", "unknown key")
    d = Sampling()
    sampling = Sampling(
        temperature=float(_number(s, "temperature", float, "sampling.", source, d.temperature)),
        top_p=float(_number(s, "top_p", float, "sampling.", source, d.top_p)),
        max_tokens=_number(s, "max_tokens", int, "sampling.", source, d.max_tokens),
    )
    if sampling.max_tokens < 1:
        raise ConfigError(source, "sampling.max_tokens", "must be at least 1")
    raw = data.get("probes")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(source, "probes", "expected a non-empty list of probes")
    probes = [_probe(p, f"probes[{i}]", source) for i, p in enumerate(raw)]
    ids = [p.id for p in probes]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(source, "probes", f"duplicate probe id {dupes[0]!r}")
    n = _number(data, "samples_per_probe", int, "", source, 10)
    if n < 1:
        raise ConfigError(source, "samples_per_probe", "must be at least 1")
    k = _number(data, "logprobs", int, "", source, 5)
    name = data.get("name", default_name)
    if not isinstance(name, str):
        raise ConfigError(source, "name", "expected a string")
    return Suite(name, tuple(probes), sampling, n, max(0, k))


def _probe(raw: Any, where: str, source: str) -> Probe:
    if not isinstance(raw, dict):
        raise ConfigError(source, where, "expected a mapping with `id` and `prompt` or `messages`")
    unknown = sorted(set(raw) - {"id", "prompt", "messages", "tags"})
    if unknown:
        raise ConfigError(source, f"{where}.{unknown[0]}", "unknown key")
    pid = raw.get("id")
    if not isinstance(pid, str) or not pid:
        raise ConfigError(source, f"{where}.id", "expected a non-empty string")
    prompt, messages = raw.get("prompt"), raw.get("messages")
    if (prompt is None) == (messages is None):
        raise ConfigError(source, where, "needs exactly one of `prompt` or `messages`")
    if prompt is not None and not isinstance(prompt, str):
        raise ConfigError(source, f"{where}.prompt", "expected a string")
    if messages is not None:
        if not isinstance(messages, list) or not messages:
            raise ConfigError(source, f"{where}.messages", "expected a non-empty list")
        for j, m in enumerate(messages):
            if not (
                isinstance(m, dict)
                and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)
            ):
                raise ConfigError(
                    source, f"{where}.messages[{j}]", "expected {role: …, content: …} strings"
                )
        messages = tuple({"role": m["role"], "content": m["content"]} for m in messages)
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ConfigError(source, f"{where}.tags", "expected a list of strings")
    return Probe(pid, prompt, messages, tuple(tags))
