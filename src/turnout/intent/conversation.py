"""A chat request's conversation as turns of plain text, and the hashes that identify it.

The body is OpenAI-shaped whatever wire format came in (the edge maps the others onto it), so
one reading serves them all. Hashes cover roles and text only: a client that resends a turn with
other metadata (names, cache hints) still continues the same conversation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

_SEP = b"\x1f"
_TURN = b"\x1e"


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # system | user | assistant | tool
    text: str


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


def turns_of(body: dict[str, Any]) -> list[Turn]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    out: list[Turn] = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            continue
        role = "system" if m["role"] == "developer" else m["role"]
        out.append(Turn(role, text_of(m.get("content"))))
    return out


def prefix_hash(turns: list[Turn]) -> str:
    """Names the conversation an answer continues: every turn sent for it, in order."""
    h = hashlib.blake2b(digest_size=12)
    for t in turns:
        h.update(t.role.encode())
        h.update(_SEP)
        h.update(t.text.encode("utf-8", "surrogatepass"))
        h.update(_TURN)
    return h.hexdigest()


def prompt_fingerprint(turns: list[Turn]) -> str | None:
    """A short name for the system prompt, so reports group by it without showing it."""
    system = "\n".join(t.text for t in turns if t.role == "system")
    if not system:
        return None
    return hashlib.blake2b(system.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


def last_exchange(turns: list[Turn]) -> tuple[int, int, int] | None:
    """Indexes of (previous user turn, the assistant answer after it, the new user turn), when
    the conversation ends with a user turn that follows an answer; else None."""
    if not turns or turns[-1].role != "user":
        return None
    answer = next((i for i in range(len(turns) - 2, -1, -1) if turns[i].role == "assistant"), None)
    if answer is None:
        return None
    asked = next((i for i in range(answer - 1, -1, -1) if turns[i].role == "user"), None)
    if asked is None:
        return None
    return asked, answer, len(turns) - 1
