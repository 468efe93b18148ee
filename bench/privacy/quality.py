"""Detector quality: recall and precision per kind on a generated corpus, turnout's scanner side
by side with Presidio's analyzer (no-op NLP engine: its regex, checksum and `phonenumbers`
recognizers; no spaCy model) as the baseline.

A detected span counts when it overlaps a labelled span of the same kind; a detection that
overlaps none is a false positive. Results: bench/results/privacy_quality.{md,json}.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/privacy/quality.py
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
import results

from turnout.privacy import Scanner

Span = tuple[str, int, int]
Detect = Callable[[str], Iterable[Span]]


def turnout_detector() -> Detect:
    scanner = Scanner()
    return lambda text: [(f.kind, f.start, f.end) for f in scanner.scan(text)]


# Kinds each system has a recognizer for; the others show as n/a, not as a recall of zero.
PRESIDIO_KINDS = frozenset({"email", "phone", "payment_card", "iban", "us_ssn", "ip_address"})


def presidio_detector(regions: tuple[str, ...] | None = None) -> Detect:
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from turnout.privacy.presidio import KINDS, build_analyzer

    analyzer = build_analyzer()
    if regions:
        analyzer.registry.remove_recognizer("PhoneRecognizer")
        analyzer.registry.add_recognizer(PhoneRecognizer(supported_regions=regions))
    entities = sorted(KINDS)

    def detect(text: str) -> list[Span]:
        found = analyzer.analyze(text=text, language="en", entities=entities)
        return [(KINDS[r.entity_type], r.start, r.end) for r in found]

    return detect


def evaluate(detect: Detect, docs: list[corpus.Doc]) -> dict[str, Any]:
    tp_gold: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    tp_pred: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    exact: Counter[str] = Counter()
    misses: dict[str, Counter[str]] = defaultdict(Counter)
    false_pos: dict[str, Counter[str]] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    started = time.perf_counter()
    for doc in docs:
        pred = list(detect(doc.text))
        for kind, s, e in doc.gold:
            n_gold[kind] += 1
            hits = [p for p in pred if p[0] == kind and p[1] < e and s < p[2]]
            if hits:
                tp_gold[kind] += 1
                exact[kind] += any(p[1] == s and p[2] == e for p in hits)
            else:
                misses[kind][f"{doc.locale}/{doc.form}"] += 1
                if len(examples[f"miss {kind}"]) < 8:
                    examples[f"miss {kind}"].append(doc.text[s:e])
        for kind, s, e in pred:
            n_pred[kind] += 1
            if any(g[0] == kind and g[1] < e and s < g[2] for g in doc.gold):
                tp_pred[kind] += 1
            else:
                form = doc.form if not doc.gold else f"next to {doc.gold[0][0]}"
                false_pos[kind][form] += 1
                if len(examples[f"fp {kind}"]) < 8:
                    examples[f"fp {kind}"].append(doc.text[s:e])
    elapsed = time.perf_counter() - started
    kinds: dict[str, Any] = {}
    for kind in corpus.KINDS:
        kinds[kind] = {
            "labelled": n_gold[kind],
            "found": tp_gold[kind],
            "recall": tp_gold[kind] / n_gold[kind] if n_gold[kind] else None,
            "detections": n_pred[kind],
            "precision": tp_pred[kind] / n_pred[kind] if n_pred[kind] else None,
            "exact_span": exact[kind] / tp_gold[kind] if tp_gold[kind] else None,
            "misses": dict(misses[kind].most_common(10)),
            "false_positives": dict(false_pos[kind].most_common(10)),
        }
    return {"kinds": kinds, "examples": dict(examples), "seconds": round(elapsed, 2)}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _cells(name: str, kind: str, k: dict[str, Any]) -> list[str]:
    if name.startswith("presidio") and kind not in PRESIDIO_KINDS:
        return ["n/a", "n/a"]
    return [_pct(k["recall"]), _pct(k["precision"])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The detectors were tuned on seeds 1, 7 and 11; the reported run uses another one.
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--per-kind", type=int, default=1000)
    p.add_argument("--negatives", type=int, default=5000)
    p.add_argument("--no-presidio", action="store_true")
    args = p.parse_args()

    docs = corpus.build(seed=args.seed, per_kind=args.per_kind, negatives=args.negatives)
    print(f"corpus: {len(docs)} documents, locales {', '.join(corpus.LOCALES)}")
    systems: dict[str, Detect] = {"turnout": turnout_detector()}
    if not args.no_presidio:
        systems["presidio"] = presidio_detector()
        regions = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BR")
        systems["presidio+regions"] = presidio_detector(regions)
    scores = {name: evaluate(detect, docs) for name, detect in systems.items()}

    header = ["kind", "labelled"]
    for name in systems:
        header += [f"{name} recall", f"{name} precision"]
    rows = []
    for kind in corpus.KINDS:
        row: list[Any] = [kind, scores["turnout"]["kinds"][kind]["labelled"]]
        for name in systems:
            row += _cells(name, kind, scores[name]["kinds"][kind])
        rows.append(row)
    main_table = results.table(header, rows)
    print(main_table)

    detail = []
    for name, score in scores.items():
        detail.append(f"\n### {name} ({score['seconds']} s for the corpus)\n")
        for kind, k in score["kinds"].items():
            if k["misses"] or k["false_positives"]:
                detail.append(
                    f"- {kind}: misses {k['misses'] or '–'}; "
                    f"false positives {k['false_positives'] or '–'}"
                )
        for what, values in score["examples"].items():
            detail.append(f"- e.g. {what}: " + ", ".join(repr(v) for v in values[:5]))
    forms = Counter(d.form for d in docs if not d.gold)
    body = (
        f"Corpus: seed {args.seed}; {args.per_kind} documents per kind (one labelled value each,"
        f" between two PII-free risky sentences), {args.negatives} PII-free risky documents;"
        f" locales {', '.join(corpus.LOCALES)} (us_ssn: en_US).\n"
        f"Risky forms: {', '.join(sorted(forms))}.\n\n"
        "Target: recall ≥ 0.98 and precision ≥ 0.95 per kind. A detection counts when it"
        " overlaps a labelled span of the same kind. presidio: AnalyzerEngine with NoOpNlpEngine,"
        " its default recognizers and score threshold; presidio+regions: the same with its phone"
        " recognizer given the corpus's regions (default: US, GB, DE, FR, IL, IN, CA, BR);"
        " Presidio has no recognizer for secrets (n/a).\n\n" + main_table + "\n" + "\n".join(detail)
    )
    results.write(
        "privacy_quality",
        "Sensitivity detectors: recall and precision",
        body,
        {
            "seed": args.seed,
            "per_kind": args.per_kind,
            "negatives": args.negatives,
            "locales": list(corpus.LOCALES),
            "systems": scores,
        },
    )


if __name__ == "__main__":
    main()
