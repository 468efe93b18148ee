"""Shadow pairs read back from the record: the primary's answer next to the candidate's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from turnout.store.query import _decode, _open


@dataclass(frozen=True, slots=True)
class ShadowPair:
    primary: dict[str, Any]
    shadow: dict[str, Any]

    @property
    def candidate(self) -> str:
        return str(self.shadow["migration"]["candidate"])


def shadow_pairs(url: str, model: str | None = None, limit: int = 1000) -> list[ShadowPair]:
    """Newest first; a shadow whose primary is not (yet) in the record is left out."""
    sql = (
        "SELECT p.*, s.id AS shadow_id FROM requests s JOIN requests p "
        "ON p.id = json_extract(s.migration, '$.shadow_of') "
        "WHERE json_extract(s.migration, '$.shadow_of') IS NOT NULL"
    )
    args: list[Any] = []
    if model:
        sql += " AND s.model = ?"
        args.append(model)
    sql += " ORDER BY s.started DESC LIMIT ?"
    args.append(limit)
    with _open(url) as conn:
        rows = conn.execute(sql, args).fetchall()
        out = []
        for row in rows:
            primary = _decode(row)
            shadow_id = primary.pop("shadow_id")
            shadow = conn.execute("SELECT * FROM requests WHERE id = ?", (shadow_id,)).fetchone()
            out.append(ShadowPair(primary, _decode(shadow)))
    return out
