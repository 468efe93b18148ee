"""Presidio's analyzer as an optional extra: offline, on its no-op NLP engine.

The test extra installs it, so these run (and fail if it is missing) in CI.
"""

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from turnout.privacy import Scanner, summary


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("Presidio tried to reach the network")


@pytest.fixture(scope="module")
def scanner() -> Iterator[Scanner]:
    # Built and used with the network cut off: no spaCy model, no public-suffix download.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse)
        mp.setattr(socket, "getaddrinfo", _refuse)
        yield Scanner(use_presidio=True)


def test_presidio_findings_join_ours_with_kinds_mapped_and_overlaps_settled(
    scanner: Scanner,
) -> None:
    found = scanner.scan("write to ann@example.org; card 4111 1111 1111 1111")
    assert summary(found) == {"email": 1, "payment_card": 1}


def test_presidio_adds_kinds_we_do_not_detect(scanner: Scanner) -> None:
    found = scanner.scan("btc 1BoatSLRHtKNngkdXEeobR76b53LETtpyT")
    assert summary(found) == {"presidio:CRYPTO": 1}
