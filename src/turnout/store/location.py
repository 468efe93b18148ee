"""Which database a store URL names. Only the scheme is ever quoted: a URL may hold a password."""

from __future__ import annotations

from pathlib import Path

from turnout.store.errors import StoreError

SQLITE = "sqlite:///"


def sqlite_file(url: str | Path) -> Path:
    """The file of a `sqlite:///PATH` URL (a bare path is taken as one too), or a StoreError."""
    text = str(url)
    if text.startswith(SQLITE):
        return Path(text.removeprefix(SQLITE))
    scheme, sep, _ = text.partition("://")
    if not sep:
        return Path(text)
    raise StoreError(
        f"store URLs of scheme {scheme!r} are not supported by this version; "
        "expected sqlite:///PATH"
    )
