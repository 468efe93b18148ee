"""`turnout migrate replay --sequential`: replay in looks until the gate decides.

The looks are planned before the first request: the last at N (the `--sample` cap, or every
selected request), each earlier one at half the next, down to `min_look` pairs — 15, 30, 60 for
N = 60. Look k spends α·(t_k³ − t_{k−1}³) of the gate's α, t = pairs / N: a power spending
function shaped like O'Brien–Fleming's, so the early looks spend little and the last keeps 7/8 of α
(a 60-request replay can still PASS at its last look). Every test at a look runs at that look's
level; by the union bound, a null migration fails at some look with probability at most α, and a
candidate worse on a check passes that check at some look with probability at most α. The canary
spreads its α over its stages in the same way (`evidence.look_alpha`).

The requests are replayed in a random order (`--seed`), so every look sees a random sample. A
budget that runs out ends the replay with one more look on the pairs it has, at the level the
schedule gives that many pairs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from turnout.migrate.analysis import Analysis, GateSettings, analyse
from turnout.migrate.diff import CachedEmbed, Embed
from turnout.migrate.gate import Outcome
from turnout.migrate.records import Recorded
from turnout.migrate.replay import Replay, Replayer

MIN_LOOK = 10
POWER = 3  # of the spending function α·t^POWER
SPENDING = "alpha * t^3 (t = pairs / planned)"


def schedule(planned: int, min_look: int = MIN_LOOK) -> list[int]:
    """Pairs at each look: N, and halves of it down to `min_look`."""
    if planned < 1:
        raise ValueError(f"a sequential replay needs at least one request, got {planned}")
    looks = [planned]
    while looks[0] // 2 >= max(1, min_look):
        looks.insert(0, looks[0] // 2)
    return looks


def spent(alpha: float, pairs: int, planned: int) -> float:
    """α spent once `pairs` of the `planned` pairs have been looked at."""
    return alpha * min(1.0, pairs / planned) ** POWER


def look_level(alpha: float, pairs: int, previous: int, planned: int) -> float:
    """The level of a look at `pairs` after one at `previous` (0 for the first)."""
    return spent(alpha, pairs, planned) - spent(alpha, previous, planned)


@dataclass(frozen=True, slots=True)
class Look:
    pairs: int
    alpha: float  # the level every test ran at in this look
    outcome: str
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "alpha": self.alpha,
            "outcome": self.outcome,
            "summary": self.summary,
        }


def sequential_header(planned: int, min_look: int, looks: list[Look]) -> dict[str, Any]:
    return {
        "planned": planned,
        "min_look": min_look,
        "spending": SPENDING,
        "looks": [look.as_dict() for look in looks],
    }


def last_level(alpha: float, sequential: dict[str, Any], pairs: int) -> float:
    """The level of a sequential replay's last look, recomputed for (possibly another) α."""
    looks = sequential.get("looks") or []
    previous = looks[-2]["pairs"] if len(looks) >= 2 else 0
    return look_level(alpha, pairs, previous, int(sequential["planned"]))


OnLook = Callable[[int, int, Look], None]  # (look number, looks planned, the look)


async def replay_sequentially(
    replayer: Replayer,
    records: list[Recorded],
    settings: GateSettings,
    *,
    min_look: int = MIN_LOOK,
    seed: int | None = None,
    embed: Embed | None = None,
    on_look: OnLook | None = None,
) -> tuple[Replay, Analysis | None]:
    """Replay look by look; stop at the first PASS or FAIL, the last look, or the budget."""
    order = list(records)
    random.Random(seed).shuffle(order)
    planned = len(order)
    looks_at = schedule(planned, min_look)
    cached = CachedEmbed(embed)
    progress = replayer.progress
    replay: Replay | None = None
    analysis: Analysis | None = None
    looks: list[Look] = []
    previous = 0
    for number, target in enumerate(looks_at, start=1):
        start = len(replay.pairs) if replay else 0
        if progress is not None:
            replayer.progress = lambda done, _total, usd, s=start: progress(s + done, planned, usd)
        part = await replayer.run(order[start:target])
        if replay is None:
            replay = part
        else:
            replay.pairs += part.pairs
            replay.cost_usd, replay.ended, replay.note = part.cost_usd, part.ended, part.note
        pairs = len(replay.pairs)
        if pairs == previous:
            break  # the budget admitted nothing more: the last look stands
        level = look_level(settings.alpha, pairs, previous, planned)
        analysis = analyse(replay, replace(settings, alpha=level), embed=cached)
        look = Look(pairs, level, analysis.gate.outcome.value, analysis.gate.summary())
        looks.append(look)
        replay.sequential = sequential_header(planned, min_look, looks)
        if on_look is not None:
            on_look(number, len(looks_at), look)
        previous = pairs
        if analysis.gate.outcome is not Outcome.INCONCLUSIVE or part.note:
            break
    replayer.progress = progress
    assert replay is not None
    return replay, analysis
