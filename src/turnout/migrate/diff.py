"""The behavioural diff: each replayed answer compared with the recorded one, old and candidate.

The old model's rerun is the yardstick: it shows how far the same model drifts from its own
recorded answer (sampling, batching), so a candidate is judged by how much further it drifts.
The semantic-match threshold is calibrated on those old-against-old similarities.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from turnout.migrate.features import Features, json_diff, parse_json, tool_trajectory
from turnout.migrate.records import Answer
from turnout.migrate.replay import Pair

QUANTILE = 0.10  # a match sits at least as close as 90% of the old model's own reruns do
TOLERANCE = 0.02
_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    """Case, spacing, punctuation and Unicode forms folded away."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", folded)).strip()


def wants_json(request: dict[str, Any]) -> bool:
    fmt = request.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def wants_tool(request: dict[str, Any]) -> bool:
    choice = request.get("tool_choice")
    return bool(request.get("tools")) and (choice == "required" or isinstance(choice, dict))


@dataclass(slots=True)
class ArmDiff:
    """One replayed answer against the recorded one."""

    ok: bool  # answered without an upstream error
    valid: bool  # met the request's own constraints (JSON asked → JSON; a tool required → called)
    exact: bool
    normalised: bool
    similarity: float
    tools_applicable: bool
    tool_names_match: bool
    tool_args_match: bool
    json_applicable: bool
    json_valid: bool
    json_structure_match: bool
    json_value_share: float
    format_match: bool
    language_match: bool
    refusal: bool
    refusal_match: bool
    truncated: bool
    chars: int
    latency_s: float | None
    cost_usd: float
    json_paths: list[str] = field(default_factory=list)
    semantic_match: bool = False  # set once the threshold is calibrated

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def arm_diff(
    request: dict[str, Any], recorded: Answer, answer: Answer, similarity: float
) -> ArmDiff:
    rf, af = Features.of(recorded.text), Features.of(answer.text)
    ok = answer.ok
    rec_tools, ans_tools = tool_trajectory(recorded.tool_calls), tool_trajectory(answer.tool_calls)
    tools_applicable = bool(rec_tools or ans_tools or request.get("tools"))
    json_applicable = wants_json(request) or rf.is_json
    json_valid, parsed = parse_json(answer.text) if json_applicable else (False, None)
    structure, share, paths = False, 0.0, list[str]()
    if json_applicable and json_valid:
        rec_ok, rec_parsed = parse_json(recorded.text)
        if rec_ok:
            structure, share, paths = json_diff(rec_parsed, parsed)
    valid = (
        ok
        and (json_valid or not wants_json(request))
        and (bool(ans_tools) or not wants_tool(request))
    )
    return ArmDiff(
        ok=ok,
        valid=valid,
        exact=ok and answer.text == recorded.text and ans_tools == rec_tools,
        normalised=ok and normalise(answer.text) == normalise(recorded.text),
        similarity=similarity,
        tools_applicable=tools_applicable,
        tool_names_match=[n for n, _ in ans_tools] == [n for n, _ in rec_tools],
        tool_args_match=ans_tools == rec_tools,
        json_applicable=json_applicable,
        json_valid=json_valid,
        json_structure_match=structure,
        json_value_share=share,
        format_match=ok and af.format == rf.format,
        language_match=af.language == rf.language or "und" in (af.language, rf.language),
        refusal=af.refusal,
        refusal_match=af.refusal == rf.refusal,
        truncated=answer.finish_reason == "length",
        chars=af.chars,
        latency_s=answer.latency_s,
        cost_usd=answer.cost_usd,
        json_paths=paths,
    )


def similarities(pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity (all-MiniLM-L6-v2) of each replayed answer to the recorded one: (old,
    candidate). Two empty answers are identical; one empty answer matches nothing."""
    from turnout.testing._minilm import embed

    texts = sorted({t for p in pairs for t in (p.recorded.text, p.old.text, p.candidate.text) if t})
    index = {t: i for i, t in enumerate(texts)}
    vectors = np.asarray(embed(texts)) if texts else np.zeros((0, 1))

    def sim(a: str, b: str) -> float:
        if not a or not b:
            return 1.0 if a == b else 0.0
        return float(vectors[index[a]] @ vectors[index[b]])

    old = np.array([sim(p.recorded.text, p.old.text) for p in pairs])
    new = np.array([sim(p.recorded.text, p.candidate.text) for p in pairs])
    return old, new


@dataclass(slots=True)
class Calibration:
    """The semantic-match threshold, from the old model's similarity to its own recorded answers."""

    threshold: float
    quantile: float
    tolerance: float
    old_vs_old: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "quantile": self.quantile,
            "tolerance": self.tolerance,
            "old_vs_old_median": float(np.median(self.old_vs_old)) if self.old_vs_old else None,
        }


def calibrate(
    old_vs_old: np.ndarray, quantile: float = QUANTILE, tolerance: float = TOLERANCE
) -> Calibration:
    if len(old_vs_old) == 0:
        return Calibration(1.0, quantile, tolerance, [])
    threshold = float(np.quantile(old_vs_old, quantile)) - tolerance
    return Calibration(threshold, quantile, tolerance, [float(x) for x in old_vs_old])


@dataclass(slots=True)
class PairDiff:
    pair: Pair
    old: ArmDiff
    candidate: ArmDiff

    @property
    def lost(self) -> list[str]:
        """The checks the old model's rerun passed and the candidate failed."""
        return [name for name, ok in checks(self) if ok[0] and not ok[1]]

    @property
    def severity(self) -> tuple[int, float]:
        """For ordering: more lost checks first, then the larger similarity drop."""
        return (len(self.lost), self.old.similarity - self.candidate.similarity)


def checks(d: PairDiff) -> list[tuple[str, tuple[bool, bool]]]:
    """The pass/fail checks that apply to this pair: (name, (old passed, candidate passed))."""
    o, c = d.old, d.candidate
    out = [
        ("valid", (o.valid, c.valid)),
        ("semantic_match", (o.semantic_match, c.semantic_match)),
        ("format_match", (o.format_match, c.format_match)),
        ("language_match", (o.language_match, c.language_match)),
        ("refusal_match", (o.refusal_match, c.refusal_match)),
        ("not_truncated", (not o.truncated, not c.truncated)),
    ]
    if o.tools_applicable or c.tools_applicable:
        out.append(("tool_calls_match", (o.tool_args_match, c.tool_args_match)))
    if o.json_applicable:
        out.append(("json_match", (o.json_structure_match, c.json_structure_match)))
    return out


def diff(
    pairs: Sequence[Pair], calibration: Calibration | None = None
) -> tuple[list[PairDiff], Calibration]:
    """Every pair's comparison; the semantic threshold calibrated here unless given."""
    sim_old, sim_new = similarities(pairs)
    calibration = calibration or calibrate(sim_old)
    out = []
    for p, so, sn in zip(pairs, sim_old, sim_new, strict=True):
        o = arm_diff(p.request, p.recorded, p.old, float(so))
        c = arm_diff(p.request, p.recorded, p.candidate, float(sn))
        o.semantic_match = o.ok and o.similarity >= calibration.threshold
        c.semantic_match = c.ok and c.similarity >= calibration.threshold
        out.append(PairDiff(p, o, c))
    return out, calibration
