"""The behavioural diff: each replayed answer compared with the recorded one, old and candidate.

The old model's rerun is the yardstick: it shows how far the same model drifts from its own
recorded answer (sampling, batching), so a candidate is judged by how much further it drifts.
The semantic-match threshold is calibrated on those old-against-old similarities, and reported
with a distribution-free interval (it is a sample quantile: few pairs, wide interval).

A failed call fails every check that needs an answer. An answer closer to the prompt than to the
recorded answer is an echo, not a match, however similar it is to the recorded answer.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
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
    not_truncated: bool  # answered, and not cut off by the token limit
    chars: int
    latency_s: float | None
    cost_usd: float
    json_paths: list[str] = field(default_factory=list)
    prompt_similarity: float | None = None  # to the request's last user message or prompt
    semantic_match: bool = False  # set once the threshold is calibrated

    @property
    def echo(self) -> bool:
        """Closer to the prompt than to the recorded answer: repeating the request."""
        return self.prompt_similarity is not None and self.prompt_similarity > self.similarity

    @property
    def distance(self) -> float:
        """1 − similarity to the recorded answer, in [0, 2]."""
        return max(0.0, 1.0 - self.similarity)

    def as_dict(self) -> dict[str, Any]:
        return {**{f: getattr(self, f) for f in self.__dataclass_fields__}, "echo": self.echo}


@functools.lru_cache(maxsize=8192)
def features(text: str) -> Features:
    """Cached: the recorded answer is read once per arm, and a sequential replay at every look."""
    return Features.of(text)


def arm_diff(
    request: dict[str, Any],
    recorded: Answer,
    answer: Answer,
    similarity: float,
    prompt_similarity: float | None = None,
) -> ArmDiff:
    rf, af = features(recorded.text), features(answer.text)
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
        tool_names_match=ok and [n for n, _ in ans_tools] == [n for n, _ in rec_tools],
        tool_args_match=ok and ans_tools == rec_tools,
        json_applicable=json_applicable,
        json_valid=json_valid,
        json_structure_match=structure,
        json_value_share=share,
        format_match=ok and af.format == rf.format,
        language_match=ok and (af.language == rf.language or "und" in (af.language, rf.language)),
        refusal=af.refusal,
        refusal_match=ok and af.refusal == rf.refusal,
        truncated=answer.finish_reason == "length",
        not_truncated=ok and answer.finish_reason != "length",
        chars=af.chars,
        latency_s=answer.latency_s,
        cost_usd=answer.cost_usd,
        json_paths=paths,
        prompt_similarity=prompt_similarity,
    )


Embed = Callable[[list[str]], Any]  # texts → unit vectors, one row each


def prompt_text(request: dict[str, Any]) -> str:
    """What the answer responds to: a completion's prompt, else the last user message's text."""
    if isinstance(request.get("prompt"), str):
        return str(request["prompt"])
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(
                    str(part.get("text") or "")
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                ).strip()
            return str(content or "")
    return ""


class CachedEmbed:
    """Embeds each text once: a sequential replay judges the same answers again at every look."""

    def __init__(self, embed: Embed | None = None) -> None:
        self.embed = embed
        self.vectors: dict[str, Any] = {}

    def __call__(self, texts: list[str]) -> Any:
        new = [t for t in texts if t not in self.vectors]
        if new:
            embed = self.embed
            if embed is None:
                from turnout.testing._minilm import embed as minilm

                embed = self.embed = minilm
            self.vectors.update(zip(new, np.asarray(embed(new)), strict=True))
        return np.array([self.vectors[t] for t in texts])


@dataclass(frozen=True, slots=True)
class Similarities:
    """Cosine similarities per pair: each arm's answer to the recorded answer and to the prompt."""

    old: np.ndarray
    candidate: np.ndarray
    old_prompt: np.ndarray  # NaN where the request has no prompt text
    candidate_prompt: np.ndarray


def similarities(pairs: Sequence[Pair], embed: Embed | None = None) -> Similarities:
    """all-MiniLM-L6-v2 similarities. Two empty answers are identical; one empty answer matches
    nothing."""
    if embed is None:
        from turnout.testing._minilm import embed as minilm

        embed = minilm
    prompts = [prompt_text(p.request) for p in pairs]
    texts = sorted(
        {t for p in pairs for t in (p.recorded.text, p.old.text, p.candidate.text) if t}
        | {t for t in prompts if t}
    )
    index = {t: i for i, t in enumerate(texts)}
    vectors = np.asarray(embed(texts)) if texts else np.zeros((0, 1))

    def sim(a: str, b: str) -> float:
        if not a or not b:
            return 1.0 if a == b else 0.0
        return float(vectors[index[a]] @ vectors[index[b]])

    def to_prompt(answer: Answer, prompt: str) -> float:
        return sim(prompt, answer.text) if prompt and answer.ok else math.nan

    return Similarities(
        np.array([sim(p.recorded.text, p.old.text) for p in pairs]),
        np.array([sim(p.recorded.text, p.candidate.text) for p in pairs]),
        np.array([to_prompt(p.old, q) for p, q in zip(pairs, prompts, strict=True)]),
        np.array([to_prompt(p.candidate, q) for p, q in zip(pairs, prompts, strict=True)]),
    )


def _binomial_cdf(n: int, q: float) -> np.ndarray:
    """P(X ≤ k) for k = 0..n, X ~ Binomial(n, q); in log space, so large n does not underflow."""
    k = np.arange(n)
    steps = np.log(n - k) - np.log(k + 1) + math.log(q) - math.log1p(-q)
    log_pmf = np.r_[n * math.log1p(-q), n * math.log1p(-q) + np.cumsum(steps)]
    pmf = np.exp(log_pmf - log_pmf.max())
    return np.asarray(np.cumsum(pmf) / pmf.sum())


def quantile_interval(values: np.ndarray, q: float, level: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the q-quantile: the order statistics x_(l) ≤ x_(u) with
    P(x_(l) ≤ Q_q ≤ x_(u)) ≥ level (binomial, as for a median's interval); −1 or 1 where too few
    values give no order statistic."""
    x = np.sort(np.asarray(values, dtype=float))
    n, tail = len(x), (1 - level) / 2
    if n == 0:
        return -1.0, 1.0
    cdf = _binomial_cdf(n, q)
    # x_(l) ≤ Q unless fewer than l values fall below Q: need P(B ≤ l − 1) ≤ tail
    lo = int(np.searchsorted(cdf, tail, side="right"))
    # x_(u) ≥ Q unless u or more fall below: need P(B ≥ u) = 1 − cdf[u − 1] ≤ tail
    hi = int(np.searchsorted(cdf, 1 - tail, side="left")) + 1
    low = float(x[lo - 1]) if lo >= 1 else -1.0
    high = float(x[hi - 1]) if hi <= n else 1.0
    return low, high


@dataclass(slots=True)
class Calibration:
    """The semantic-match threshold, from the old model's similarity to its own recorded answers."""

    threshold: float
    quantile: float
    tolerance: float
    old_vs_old: list[float]
    interval: tuple[float, float] = (-1.0, 1.0)  # 95%, from the sample quantile's order statistics

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "interval_95": list(self.interval),
            "pairs": len(self.old_vs_old),
            "quantile": self.quantile,
            "tolerance": self.tolerance,
            "old_vs_old_median": float(np.median(self.old_vs_old)) if self.old_vs_old else None,
        }

    def describe(self) -> str:
        lo, hi = self.interval
        span = f"{lo:.3f}..{hi:.3f}" if lo > -1 else f"up to {hi:.3f}, too few for a lower bound"
        return (
            f"semantic match threshold {self.threshold:.3f} (95% interval {span}; "
            f"the old model's own {self.quantile:g} quantile over {len(self.old_vs_old)} reruns "
            f"− {self.tolerance:g})"
        )


def calibrate(
    old_vs_old: np.ndarray, quantile: float = QUANTILE, tolerance: float = TOLERANCE
) -> Calibration:
    if len(old_vs_old) == 0:
        return Calibration(1.0, quantile, tolerance, [])
    threshold = float(np.quantile(old_vs_old, quantile)) - tolerance
    lo, hi = quantile_interval(old_vs_old, quantile)
    interval = (max(-1.0, lo - tolerance), hi - tolerance)
    return Calibration(threshold, quantile, tolerance, [float(x) for x in old_vs_old], interval)


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
        ("not_truncated", (o.not_truncated, c.not_truncated)),
    ]
    if o.tools_applicable or c.tools_applicable:
        out.append(("tool_calls_match", (o.tool_args_match, c.tool_args_match)))
    if o.json_applicable:
        out.append(("json_match", (o.json_structure_match, c.json_structure_match)))
    return out


def diff(
    pairs: Sequence[Pair], calibration: Calibration | None = None, embed: Embed | None = None
) -> tuple[list[PairDiff], Calibration]:
    """Every pair's comparison; the semantic threshold calibrated here unless given. A match is
    at least as similar as the threshold, answered, and not an echo of the prompt."""
    sims = similarities(pairs, embed)
    calibration = calibration or calibrate(sims.old)
    out = []
    for i, p in enumerate(pairs):
        o = arm_diff(p.request, p.recorded, p.old, float(sims.old[i]), _num(sims.old_prompt[i]))
        c = arm_diff(
            p.request, p.recorded, p.candidate, float(sims.candidate[i]),
            _num(sims.candidate_prompt[i]),
        )  # fmt: skip
        for arm in (o, c):
            arm.semantic_match = arm.ok and arm.similarity >= calibration.threshold and not arm.echo
        out.append(PairDiff(p, o, c))
    return out, calibration


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)
