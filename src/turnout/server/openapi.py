"""The OpenAPI 3.1 description of turnout's HTTP surface, served at `GET /openapi.json`.

The document is a file beside this module, kept by hand next to `wire.py` and `app.py`; a test
checks that it is valid OpenAPI and that every route the app serves is in it.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def openapi_document() -> bytes:
    return resources.files("turnout.server").joinpath("openapi.json").read_bytes()
