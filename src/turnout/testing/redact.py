"""Keep secrets out of cassettes.

Cassettes are recorded behind the backend seam, so the Authorization header a backend adds never
reaches them. What can still leak is a secret inside a prompt or an answer: those are replaced,
before anything is written, by `<redacted:NAME>`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Key formats of common providers, and bearer tokens pasted into text.
_PATTERNS = (
    re.compile(r"sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-~+/]{16,}=*"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}"),
)
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_MIN_SECRET_LEN = 8
_MIN_GUESSED_LEN = 12


class Redactor:
    """Replaces known secret values and key-shaped strings in any JSON-like value."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted(
            ((name, value) for name, value in secrets.items() if len(value) >= _MIN_SECRET_LEN),
            key=lambda item: -len(item[1]),
        )

    @classmethod
    def from_environment(
        cls, extra_names: Iterable[str] = (), env: Mapping[str, str] | None = None
    ) -> Redactor:
        """Secrets are the values of variables named like keys, plus the ones named explicitly."""
        env = os.environ if env is None else env
        # By name alone only long values that are not paths: a short or common value replaced
        # in prompts would change request keys between a recording machine and CI.
        guessed = {
            n: v
            for n, v in env.items()
            if _SECRET_NAME.search(n) and len(v) >= _MIN_GUESSED_LEN and not v.startswith("/")
        }
        named = {n: env[n] for n in extra_names if env.get(n)}
        return cls({**guessed, **named})

    def add(self, name: str, secret: str) -> None:
        if len(secret) >= _MIN_SECRET_LEN and (name, secret) not in self._secrets:
            self._secrets = sorted([*self._secrets, (name, secret)], key=lambda i: -len(i[1]))

    def text(self, value: str) -> str:
        for name, secret in self._secrets:
            if secret in value:
                value = value.replace(secret, f"<redacted:{name}>")
        for pattern in _PATTERNS:
            value = pattern.sub("<redacted:key>", value)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value
