"""Which database a store URL names. Only the scheme, user, host and database are ever quoted:
a URL may hold a password."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

from turnout.store.errors import StoreError

SQLITE = "sqlite:///"
POSTGRES = ("postgresql://", "postgres://")
EXPECTED = "expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def is_postgres(url: str | Path) -> bool:
    return str(url).startswith(POSTGRES)


def sqlite_file(url: str | Path) -> Path:
    """The file of a `sqlite:///PATH` URL (a bare path is taken as one too), or a StoreError."""
    text = str(url)
    if text.startswith(SQLITE):
        return Path(text.removeprefix(SQLITE))
    scheme, sep, _ = text.partition("://")
    if not sep:
        return Path(text)
    raise StoreError(f"store URLs of scheme {scheme!r} are not supported; {EXPECTED}")


def describe(url: str | Path) -> str:
    """The store's location for messages: a path, or a PostgreSQL URL without its password."""
    text = str(url)
    if not is_postgres(text):
        return str(sqlite_file(text))
    try:
        parts = urlsplit(text)
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"
    except ValueError:
        return "postgresql://(unparsable URL)"


def scrub(text: str, url: str | Path) -> str:
    """`text` with the URL's password cut out, should a driver's message quote it."""
    try:
        password = urlsplit(str(url)).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


def postgres_module(name: str) -> ModuleType:
    """`turnout.store.<name>`, a PostgreSQL module; a StoreError saying what to install if the
    driver is not (a SQLite-only install does not need it)."""
    try:
        return importlib.import_module(f"turnout.store.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("psycopg", "psycopg_pool"):
            raise StoreError(
                "a PostgreSQL store needs its driver: pip install 'turnout[postgres]'"
            ) from None
        raise
