"""How well turnout reads intent signals, what the scan costs, and how its alarm behaves.

    PYTHONPATH=src flock /tmp/turnout-bench.lock .venv/bin/python bench/intent/quality.py
    (with --calibrate: fit turnout's thresholds on the calibration half and print them)

Cases: bench/intent/cases/cases.jsonl (written by hand for turnout; see cases/written.py), split
in halves: every other case of each kind calibrates, the rest is scored. Compared, on the scored
half, per signal:
- turnout: the request-path scan (cue words, trigram overlap, the new-question test) with the
  MiniLM check for the rephrases the words leave open;
- turnout without the new-question test: as it was before that test (intent/newquestion.py);
- turnout, words only: the same without the model;
- bag of words: word-set overlap for rephrase, a bag of negation words for correction, any "?"
  in the answer for clarification, any identical resend for regenerate;
- embedding threshold only: MiniLM cosine to the earlier turn for rephrase, to written prototype
  sentences for correction and clarification, cosine 1 for regenerate.
Thresholds of every method are fitted on the calibration half (best F1), the same way.
Writes bench/results/intent_quality.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turnout.intent.alarm import MissAlarm
from turnout.intent.attribution import Origin, is_regenerate
from turnout.intent.calibration import CALIBRATED, Thresholds
from turnout.intent.conversation import Turn, last_exchange, prefix_hash, prompt_fingerprint
from turnout.intent.cues import normal
from turnout.intent.semantic import Embeddings
from turnout.intent.signals import decide_rephrase, scan

HERE = Path(__file__).parent
RESULTS = HERE.parent / "results"
KINDS = ("rephrase", "correction", "regenerate", "clarification")
WINDOW_S = 600.0
COMMAND = "PYTHONPATH=src flock /tmp/turnout-bench.lock .venv/bin/python bench/intent/quality.py"
EMB = Embeddings()

Case = dict[str, Any]


def load() -> tuple[list[Case], list[Case]]:
    cases = [json.loads(line) for line in (HERE / "cases" / "cases.jsonl").open()]
    seen: Counter[str] = Counter()
    calibrate, score = [], []
    for c in cases:
        (calibrate if seen[c["expect"]] % 2 == 0 else score).append(c)
        seen[c["expect"]] += 1
    return calibrate, score


def turns(c: Case) -> list[Turn]:
    return [Turn(r, t) for r, t in c["turns"]]


def pair(c: Case) -> tuple[str, str, str] | None:
    t = turns(c)
    ex = last_exchange(t)
    return None if ex is None else (t[ex[0]].text, t[ex[1]].text, t[ex[2]].text)


# -- methods: case -> predicted signal (or "none") ----------------------------------------------

Method = Callable[[Case], str]


def resent(c: Case) -> bool:
    after = c.get("resent_after_s")
    if after is None:
        return False
    before = Origin("r0", "m", "d", None, "primary", None, at=0.0)
    return is_regenerate(before, None, float(after), WINDOW_S)


MODEL_CALLS: Counter[str] = Counter()  # per method: how many cases needed the model


def turnout(t: Thresholds, semantic: bool, new_questions: bool = True, name: str = "") -> Method:
    def predict(c: Case) -> str:
        s = scan(turns(c), resent=resent(c), semantic=semantic, t=t, new_questions=new_questions)
        if s.undecided is not None:
            if name:
                MODEL_CALLS[name] += 1
            sim = EMB.similarity_now(*s.undecided)
            return "rephrase" if decide_rephrase(s.lexical, s.cue, sim, t) else "none"
        return s.signal.value if s.signal else "none"

    return predict


_NEGATIONS = frozenset(
    [
        "no",
        "not",
        "wrong",
        "nope",
        "incorrect",
        "nein",
        "nicht",
        "falsch",
        "non",
        "pas",
        "faux",
        "mal",
        "incorrecto",
        "nee",
        "niet",
        "fout",
        "não",
        "errado",
        "sbagliato",
        "meant",
        "meinte",
    ]
)


def words(text: str) -> set[str]:
    return set("".join(ch if ch.isalnum() else " " for ch in normal(text)).split())


def bag_of_words(t_overlap: float) -> Method:
    def predict(c: Case) -> str:
        if c.get("resent_after_s") is not None:
            return "regenerate"
        p = pair(c)
        if p is None:
            return "none"
        asked, answer, new = p
        if "?" in answer:
            return "clarification"
        if words(new) & _NEGATIONS:
            return "correction"
        a, b = words(asked), words(new)
        jaccard = len(a & b) / max(1, len(a | b))
        return "rephrase" if jaccard >= t_overlap else "none"

    return predict


CORRECTION_PROTOTYPES = [
    "No, that's not what I meant.",
    "That's wrong, I asked something else.",
    "You misunderstood my question.",
    "Nein, das meinte ich nicht.",
    "Non, ce n'est pas ce que je voulais dire.",
    "No, eso no es lo que pregunté.",
    "No, non è quello che intendevo.",
    "Nee, dat bedoelde ik niet.",
    "Não, não foi isso que eu perguntei.",
]
CLARIFY_PROTOTYPES = [
    "Could you clarify what you mean?",
    "Do you mean this one or that one?",
    "Which one are you referring to?",
    "Meinen Sie das eine oder das andere?",
    "Voulez-vous dire ceci ou cela ?",
    "¿Te refieres a esto o a aquello?",
]


def best_cos(text: str, prototypes: list[str]) -> float:
    return max(EMB.similarity_now(text, p) or 0.0 for p in prototypes)


def embedding_only(t_rephrase: float, t_correction: float, t_clarify: float) -> Method:
    def predict(c: Case) -> str:
        if c.get("resent_after_s") is not None:
            return "regenerate"  # an identical conversation has cosine 1, whenever it comes
        p = pair(c)
        if p is None:
            return "none"
        asked, answer, new = p
        if best_cos(answer, CLARIFY_PROTOTYPES) >= t_clarify:
            return "clarification"
        if best_cos(new, CORRECTION_PROTOTYPES) >= t_correction:
            return "correction"
        return "rephrase" if (EMB.similarity_now(asked, new) or 0.0) >= t_rephrase else "none"

    return predict


# -- scoring ------------------------------------------------------------------------------------


def scores(method: Method, cases: list[Case]) -> dict[str, dict[str, float]]:
    predicted = [(c["expect"], method(c)) for c in cases]
    out = {}
    for kind in KINDS:
        tp = sum(1 for e, p in predicted if e == kind and p == kind)
        fp = sum(1 for e, p in predicted if e != kind and p == kind)
        fn = sum(1 for e, p in predicted if e == kind and p != kind)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[kind] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "tp": tp,
            "fp": fp,
            "fn": fn,
        }
    return out


def f1_of(method: Method, cases: list[Case], kind: str) -> float:
    return scores(method, cases)[kind]["f1"]


def grid(lo: float, hi: float, step: float) -> list[float]:
    n = round((hi - lo) / step)
    return [round(lo + i * step, 4) for i in range(n + 1)]


def fit(
    cases: list[Case], make: Callable[[float], Method], kind: str, values: list[float]
) -> float:
    return max(
        values, key=lambda v: (f1_of(make(v), cases, kind), -abs(v - values[len(values) // 2]))
    )


def calibrate_turnout(cases: list[Case]) -> Thresholds:
    t = CALIBRATED

    def with_(**kw: float) -> Thresholds:
        return Thresholds(**{**{k: getattr(t, k) for k in t.__slots__}, **kw})

    semantic = fit(
        cases, lambda v: turnout(with_(semantic=v), True), "rephrase", grid(0.5, 0.95, 0.01)
    )
    t = with_(semantic=semantic)
    cue = fit(
        cases, lambda v: turnout(with_(semantic_with_cue=v), True), "rephrase", grid(0.2, 0.9, 0.05)
    )
    t = with_(semantic_with_cue=cue)
    lcue = fit(
        cases, lambda v: turnout(with_(lexical_with_cue=v), False), "rephrase", grid(0.1, 0.9, 0.05)
    )
    t = with_(lexical_with_cue=lcue)
    kept = fit(cases, lambda v: turnout(with_(swap_kept=v), True), "rephrase", grid(0.2, 0.8, 0.1))
    return with_(swap_kept=kept)


# -- cost ---------------------------------------------------------------------------------------

_SENTENCES = [
    "Could you explain how the retry budget interacts with the per-attempt timeout here?",
    "The budget caps total attempts; each attempt still has its own timeout, "
    "so the slowest case is attempts times timeout.",
    "What happens to a streamed answer if the upstream disconnects halfway through?",
    "turnout continues the stream from what the client already has, "
    "on the same or the next deployment.",
]


# The last user turn: a correction (settled by the cue words) or a question on the same topic
# (the new-question test reads it against the earlier question and the answer).
LAST_TURNS = {
    "correction": "No, I meant the idle timeout, not the total one.",
    "same topic": "Could you explain how the retry budget interacts with the idle timeout here?",
}


def conversation(n: int, rng: random.Random, last: str) -> list[Turn]:
    out = [Turn("system", "You are a helpful assistant for a gateway's operators.")]
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        out.append(Turn(role, rng.choice(_SENTENCES) + f" ({i})"))
    if out[-1].role != "user":
        out.append(Turn("user", last))
    return out


def request_path(ts: list[Turn]) -> None:
    """What IntentLayer.begin does on the event loop for one request."""
    prefix_hash(ts)
    prompt_fingerprint(ts)
    s = scan(ts, semantic=True)
    if s.answer_at is not None:
        prefix_hash(ts[: s.answer_at])


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def scan_cost() -> list[dict[str, Any]]:
    rows = []
    for n in (2, 4, 10, 20, 40, 80):
        row: dict[str, Any] = {}
        for kind, last in LAST_TURNS.items():
            conv = conversation(n, random.Random(7), last)
            for _ in range(200):
                request_path(conv)
            took = []
            for _ in range(3000):
                t0 = time.perf_counter()
                request_path(conv)
                took.append((time.perf_counter() - t0) * 1e6)
            row["turns"] = len(conv)
            row[kind] = {"p50_us": percentile(took, 0.5), "p99_us": percentile(took, 0.99)}
        rows.append(row)
    return rows


def embed_cost_one_thread() -> dict[str, float]:
    """The same in a fresh process whose BLAS runs one thread (OPENBLAS_NUM_THREADS=1)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    code = "import json, quality; print(json.dumps(quality.embed_cost()))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=HERE, env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def embed_cost() -> dict[str, float]:
    EMB.similarity_now("warm", "up")
    fresh, cached = [], []
    for i in range(40):
        a, b = f"{_SENTENCES[0]} [{i}]", f"{_SENTENCES[2]} [{i}]"
        t0 = time.perf_counter()
        EMB.similarity_now(a, b)  # both new: two embeddings
        fresh.append((time.perf_counter() - t0) * 1e3 / 2)
        t0 = time.perf_counter()
        EMB.similarity_now(a, b)
        cached.append((time.perf_counter() - t0) * 1e3)
    return {
        "new_turn_p50_ms": statistics.median(fresh),
        "cached_pair_p50_ms": statistics.median(cached),
    }


# -- the alarm ----------------------------------------------------------------------------------


def alarm_behaviour(streams: int = 200, length: int = 20_000) -> dict[str, Any]:
    """False alarms on unchanged traffic; detection delay after a rise, per base rate."""
    rng = random.Random(11)
    out: dict[str, Any] = {"streams": streams, "length": length, "rows": []}
    for p0, p1 in ((0.05, 0.08), (0.05, 0.10), (0.10, 0.15)):
        false_alarms = 0
        delays: list[int] = []
        missed = 0
        for _ in range(streams):
            alarm = MissAlarm()
            if any(alarm.update("g", rng.random() < p0) for _ in range(length)):
                false_alarms += 1
            alarm = MissAlarm()
            change = alarm.warmup + 1000
            fired = None
            for i in range(change + 10_000):
                p = p0 if i < change else p1
                if alarm.update("g", rng.random() < p) is not None and i >= change:
                    fired = i - change
                    break
            if fired is None:
                missed += 1
            else:
                delays.append(fired)
        out["rows"].append(
            {
                "p0": p0,
                "p1": p1,
                "false_alarm_rate": false_alarms / streams,
                "detected": 1 - missed / streams,
                "delay_median": statistics.median(delays) if delays else None,
                "delay_p90": percentile([float(d) for d in delays], 0.9) if delays else None,
            }
        )
    return out


# -- report -------------------------------------------------------------------------------------


def table(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    lines = [
        "| method | signal | precision | recall | F1 | tp/fp/fn |",
        "|---|---|---|---|---|---|",
    ]
    for name, per in results.items():
        for kind, s in per.items():
            lines.append(
                f"| {name} | {kind} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | "
                f"{s['tp']}/{s['fp']}/{s['fn']} |"
            )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--calibrate", action="store_true", help="fit turnout's thresholds and print them"
    )
    args = ap.parse_args()
    cal, held = load()
    if args.calibrate:
        print(calibrate_turnout(cal))
        return 0
    bow_t = fit(cal, bag_of_words, "rephrase", grid(0.1, 0.9, 0.02))
    e_r = fit(cal, lambda v: embedding_only(v, 2, 2), "rephrase", grid(0.5, 0.95, 0.01))
    e_c = fit(cal, lambda v: embedding_only(2, v, 2), "correction", grid(0.3, 0.95, 0.01))
    e_q = fit(cal, lambda v: embedding_only(2, 2, v), "clarification", grid(0.3, 0.95, 0.01))
    methods: dict[str, Method] = {
        "turnout": turnout(CALIBRATED, True, name="turnout"),
        "turnout without the new-question test": turnout(
            CALIBRATED, True, new_questions=False, name="turnout without the new-question test"
        ),
        "turnout, precision first (semantic ≥ 0.85)": turnout(
            Thresholds(
                **{**{k: getattr(CALIBRATED, k) for k in CALIBRATED.__slots__}, "semantic": 0.85}
            ),
            True,
        ),
        "turnout, words only": turnout(CALIBRATED, False),
        f"bag of words (overlap ≥ {bow_t})": bag_of_words(bow_t),
        f"embedding only (≥ {e_r}/{e_c}/{e_q})": embedding_only(e_r, e_c, e_q),
    }
    results = {name: scores(m, held) for name, m in methods.items()}
    model_calls = dict(MODEL_CALLS)  # before the per-language scores ask again
    by_lang = {
        lang: scores(methods["turnout"], [c for c in held if c["lang"] == lang])
        for lang in sorted({c["lang"] for c in held})
    }
    cost = scan_cost()
    load_before = os.getloadavg()[0]
    embed = embed_cost()
    embed_1 = embed_cost_one_thread()
    alarm = alarm_behaviour()
    payload = {
        "command": COMMAND,
        "cases": {
            "calibration": len(cal),
            "scored": len(held),
            "by_kind": Counter(c["expect"] for c in held),
            "source": "bench/intent/cases (written for turnout)",
        },
        "thresholds": CALIBRATED.__repr__(),
        "results": results,
        "turnout_by_language": by_lang,
        "model_calls_scored_half": model_calls,
        "scan_cost": cost,
        "embedding_cost": embed,
        "embedding_cost_one_blas_thread": embed_1,
        "load_average_1m": load_before,
        "alarm": alarm,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "intent_quality.json").write_text(json.dumps(payload, indent=2, default=str))
    md = [f"`{COMMAND}`", "", "# Intent signals: detection quality, scan cost, alarm", ""]
    md += [
        f"Cases: {len(cal)} calibrate, {len(held)} scored ({dict(payload['cases']['by_kind'])}); "
        "written for turnout, 7 languages (bench/intent/cases).",
        f"Thresholds: `{CALIBRATED}`.",
        "",
    ]
    md += table(results)
    md += [
        "",
        "## turnout by language (scored half)",
        "",
        "| lang | " + " | ".join(f"{k} P/R" for k in KINDS) + " |",
        "|---|" + "---|" * len(KINDS),
    ]
    for lang, per in by_lang.items():
        cells = [f"{per[k]['precision']:.2f}/{per[k]['recall']:.2f}" for k in KINDS]
        md.append(f"| {lang} | " + " | ".join(cells) + " |")
    md += [
        "",
        "## Scan cost on the request path (hashes, cues, overlap; no model)",
        "",
        "| turns | last turn a correction: p50 / p99 µs | a question on the same topic |",
        "|---|---|---|",
    ]
    md += [
        f"| {r['turns']} | "
        + " | ".join(f"{r[k]['p50_us']:.0f} / {r[k]['p99_us']:.0f}" for k in LAST_TURNS)
        + " |"
        for r in cost
    ]
    calls = ", ".join(f"{name}: {n}" for name, n in model_calls.items())
    md += [
        "",
        f"Cases of the scored half that needed the model ({len(held)} cases): {calls}.",
        "",
        f"MiniLM (numpy) on this machine (2 shared cores, load average {load_before:.1f}): "
        f"a new turn {embed['new_turn_p50_ms']:.1f} ms p50 "
        f"({embed_1['new_turn_p50_ms']:.1f} ms with OPENBLAS_NUM_THREADS=1); "
        f"a pair already cached {embed['cached_pair_p50_ms']:.3f} ms. The model check therefore "
        "runs in a worker thread while the upstream answers, never on the event loop.",
        "",
        f"## Alarm (Bernoulli CUSUM per group), {alarm['streams']} simulated streams",
        "",
        "| p0 → p1 | false alarms in "
        + str(alarm["length"])
        + " unchanged answers | detected | delay median | delay p90 |",
        "|---|---|---|---|---|",
    ]
    for r in alarm["rows"]:
        md.append(
            f"| {r['p0']:.2f} → {r['p1']:.2f} | {r['false_alarm_rate']:.1%} | "
            f"{r['detected']:.0%} | {r['delay_median']} | {r['delay_p90']} |"
        )
    (RESULTS / "intent_quality.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
