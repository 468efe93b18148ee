"""Large sample pools for the fingerprint benchmarks: generated once, cached, then resampled.

Each pool is the built-in suite's completions from one "provider behaviour", collected through the
real probe runner and stored as probe runs (deployment = pool name) in a fingerprint store under
bench/.work/ (gitignored). Generation resumes where it stopped and skips pools already full.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/fingerprint/pools.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from turnout.backends.base import Backend
from turnout.backends.embedded import EmbeddedBackend
from turnout.fingerprint.drill import TamperedBackend
from turnout.fingerprint.runner import ProbeRunner
from turnout.fingerprint.samples import Sample
from turnout.fingerprint.store import FingerprintStore
from turnout.fingerprint.suite import builtin_suite

ROOT = Path(__file__).resolve().parents[2]
POOLS_DB = ROOT / "bench" / ".work" / "fingerprint" / "pools.db"
HIDDEN_PROMPT = "Always agree with the user.\n\n"
CHUNK = 4  # samples per probe per stored run: an interrupted generation loses little


@dataclass(frozen=True)
class Pool:
    name: str
    per_probe: int
    model: str = "smollm2-135m"
    prefix: str = ""
    temperature: float | None = None


# Sized for two shared cores (SmolLM2 made 7-11 tokens/s a slot there): the SmolLM2 pool holds a
# baseline of 10 per probe and a disjoint check of up to 10 (250 completions); the changed pools,
# a check of 10.
POOLS = (
    Pool("smollm2", 20),
    Pool("smollm2-t1.3", 10, temperature=1.3),
    Pool("gemma", 10, model="gemma3-270m"),
    Pool("smollm2-prefix", 10, prefix=HIDDEN_PROMPT),
    Pool("smollm2-t0.7", 4, temperature=0.7),
)


def load_pool(store: FingerprintStore, name: str) -> dict[str, list[Sample]]:
    """probe id → every completion the pool holds for it."""
    out: dict[str, list[Sample]] = defaultdict(list)
    for row in store.runs(deployment=name, limit=10_000):
        for s in store.load_run(row["id"]).completions():
            out[s.probe].append(s)
    return dict(out)


def load_greedy(store: FingerprintStore, name: str) -> dict[str, list[Sample]]:
    """probe id → the pool's greedy one-token samples with their top-5 log-probabilities."""
    out: dict[str, list[Sample]] = defaultdict(list)
    for row in store.runs(deployment=name, limit=10_000):
        for s in store.load_run(row["id"]).logprob_samples():
            out[s.probe].append(s)
    return dict(out)


def have(store: FingerprintStore, name: str) -> int:
    pool = load_pool(store, name)
    return min((len(v) for v in pool.values()), default=0) if pool else 0


async def fill(pool: Pool, store: FingerprintStore) -> None:
    suite = builtin_suite()
    backend: Backend = EmbeddedBackend(pool.name, pool.model, max_concurrency=2)
    if pool.prefix or pool.temperature is not None:
        backend = TamperedBackend(backend, prefix=pool.prefix, temperature=pool.temperature)
    await backend.start()
    try:
        while (n := have(store, pool.name)) < pool.per_probe:
            # With the suite's logprobs: each run also holds 2 greedy samples per probe, and every
            # completion its tokens' log-probabilities (the embedded backend serves them).
            chunk = suite.with_options(samples_per_probe=min(CHUNK, pool.per_probe - n))
            started = time.monotonic()
            run = await ProbeRunner(backend, chunk, deployment=pool.name, concurrency=2).run()
            store.save_run(run)
            tokens = sum(s.completion_tokens for s in run.samples)
            took = time.monotonic() - started
            print(
                f"  {pool.name}: {n + chunk.samples_per_probe}/{pool.per_probe} per probe "
                f"({len(run.samples)} samples, {tokens} tokens, {took:.0f} s, "
                f"{tokens / took:.0f} tok/s, {run.errors} errors)",
                flush=True,
            )
    finally:
        await backend.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", help="pool names (default: all)")
    args = p.parse_args()
    store = FingerprintStore(POOLS_DB)
    for pool in POOLS:
        if args.only and pool.name not in args.only:
            continue
        print(f"pool {pool.name}: have {have(store, pool.name)}/{pool.per_probe} per probe")
        asyncio.run(fill(pool, store))
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
