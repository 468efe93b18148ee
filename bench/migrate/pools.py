"""Pools of real answers for the migration gate's benchmark: generated once, cached, resampled.

80 text-completion prompts; for each, several answers from SmolLM2-135M at temperature 0.7 (the
"old model": recorded answer, its rerun, and a null candidate are drawn from these) and a few from
each candidate: Gemma 3 270M, SmolLM2 behind a changed prompt prefix (the text-completion analogue
of a system prompt), and SmolLM2 at temperature 1.0. Every answer goes through turnout's embedded
backend, like a replay; stored as JSONL under bench/.work/migrate/ (gitignored). Generation
resumes where it stopped.

    flock /tmp/turnout-bench.lock .venv/bin/python bench/migrate/pools.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import orjson

from turnout.backends.base import Operation, UpstreamRequest
from turnout.backends.embedded import EmbeddedBackend
from turnout.migrate.records import Answer

ROOT = Path(__file__).resolve().parents[2]
POOL = ROOT / "bench" / ".work" / "migrate" / "pool.jsonl"
MAX_TOKENS = 32
PREFIX = "Always agree with the user.\n\n"

_SUBJECTS = (
    "France", "Japan", "Brazil", "Egypt", "Canada", "Italy", "Kenya", "Norway", "India", "Peru",
)  # fmt: skip
_THINGS = (
    "rain", "the sea", "a cat", "autumn", "coffee", "the moon", "a train", "bread", "snow", "music",
)  # fmt: skip
_TEMPLATES = (
    "The capital of {s} is",
    "A traveller visiting {s} should first",
    "The most famous food of {s} is",
    "Q: What language is spoken in {s}?\nA:",
    "A short poem about {t}:\n",
    "Here is a fun fact about {t}:",
    "Q: Why do people like {t}?\nA:",
    "Write one sentence describing {t}.\n",
)
PROMPTS = tuple(
    tpl.format(s=_SUBJECTS[i % 10], t=_THINGS[i % 10]) for tpl in _TEMPLATES for i in range(10)
)


@dataclass(frozen=True)
class Pool:
    name: str
    per_prompt: int
    model: str = "smollm2-135m"
    prefix: str = ""
    temperature: float = 0.7


POOLS = (
    Pool("smollm2", 8),
    Pool("gemma", 3, model="gemma3-270m"),
    Pool("smollm2-prefix", 3, prefix=PREFIX),
    Pool("smollm2-t1.0", 3, temperature=1.0),
)


def load() -> dict[str, dict[int, list[Answer]]]:
    """pool name → prompt index → answers."""
    out: dict[str, dict[int, list[Answer]]] = defaultdict(lambda: defaultdict(list))
    if POOL.exists():
        for line in POOL.read_bytes().splitlines():
            row = orjson.loads(line)
            out[row["pool"]][row["prompt"]].append(Answer.from_dict(row["answer"]))
    return out


async def fill(pool: Pool, have: dict[int, list[Answer]]) -> None:
    jobs = [
        (i, k)
        for k in range(pool.per_prompt)
        for i in range(len(PROMPTS))
        if len(have.get(i, [])) <= k
    ]
    if not jobs:
        return
    backend = EmbeddedBackend(pool.name, pool.model, max_concurrency=2)
    await backend.start()
    queue = iter(jobs)
    done = 0
    started = time.monotonic()
    POOL.parent.mkdir(parents=True, exist_ok=True)

    async def worker(out: object) -> None:
        nonlocal done
        for i, k in queue:
            body = {
                "prompt": pool.prefix + PROMPTS[i],
                "max_tokens": MAX_TOKENS,
                "temperature": pool.temperature,
                "seed": 1000 * k + i + 1,
            }
            t0 = time.perf_counter()
            result = await backend.complete(UpstreamRequest(Operation.COMPLETION, body, f"{i}-{k}"))
            answer = Answer.from_body(result.body)
            answer.latency_s = time.perf_counter() - t0
            answer.prompt_tokens = result.usage.prompt_tokens
            answer.completion_tokens = result.usage.completion_tokens
            row = {"pool": pool.name, "prompt": i, "answer": answer.as_dict()}
            with POOL.open("ab") as f:
                f.write(orjson.dumps(row) + b"\n")
            done += 1
            if done % 40 == 0 or done == len(jobs):
                took = time.monotonic() - started
                print(f"  {pool.name}: {done}/{len(jobs)} ({took:.0f} s)", flush=True)

    try:
        await asyncio.gather(worker(None), worker(None))
    finally:
        await backend.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", help="pool names (default: all)")
    args = p.parse_args()
    for pool in POOLS:
        if args.only and pool.name not in args.only:
            continue
        have = load()[pool.name]
        print(f"pool {pool.name}: {sum(map(len, have.values()))} answers", flush=True)
        asyncio.run(fill(pool, have))
    return 0


if __name__ == "__main__":
    sys.exit(main())
