"""Shadow pairs read back from the record: the primary's answer next to the candidate's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turnout.store.read import open_reader


@dataclass(frozen=True, slots=True)
class ShadowPair:
    primary: dict[str, Any]
    shadow: dict[str, Any]

    @property
    def candidate(self) -> str:
        return str(self.shadow["migration"]["candidate"])


def shadow_pairs(url: str, model: str | None = None, limit: int = 1000) -> list[ShadowPair]:
    """Newest first; a shadow whose primary is not (yet) in the record is left out."""
    with open_reader(url) as reader:
        return [ShadowPair(p, s) for p, s in reader.shadow_pairs(model, limit)]
