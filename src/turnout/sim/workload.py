"""Synthetic traffic: prompt families with heavy-tailed answer lengths, and open-loop arrivals.

A family is one kind of work (classify, chat, summarise, …) served to several applications,
each with its own system prompt — the shared prefix a KV cache can reuse and the key a length
predictor learns under. Lengths are lognormal or Pareto; arrivals Poisson or Gamma (bursty).
A trace file (JSON lines) can stand in for the generator.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from turnout.routing.length import LengthFeatures
from turnout.sim.timing import Profile

ROUTE = "fleet"


@dataclass(frozen=True, slots=True)
class Lengths:
    """A token-count distribution: lognormal (median, sigma) or Pareto (minimum, alpha)."""

    kind: str  # lognormal | pareto | exponential | fixed
    scale: float  # lognormal: median; pareto: minimum; exponential: mean; fixed: the value
    shape: float = 1.0  # lognormal: sigma; pareto: alpha

    def draw(self, rng: random.Random) -> float:
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(self.scale), self.shape)
        if self.kind == "pareto":
            return self.scale * rng.paretovariate(self.shape)
        if self.kind == "exponential":
            return rng.expovariate(1 / self.scale)
        if self.kind == "fixed":
            return self.scale
        raise ValueError(f"unknown length distribution {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    weight: float
    prompt: Lengths
    output: Lengths
    max_tokens: int | None
    response_format: str = "text"
    apps: int = 1  # distinct system prompts
    prefix_tokens: int = 0  # the system prompt's length, shared by an app's requests


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    families: tuple[Family, ...]


@dataclass(slots=True)
class SimRequest:
    id: int
    arrival: float
    prompt_tokens: int
    output_tokens: int  # the truth, known to the simulated instance and to the oracle
    features: LengthFeatures
    prefix_key: str | None = None
    prefix_tokens: int = 0
    instance: str = ""
    first_token: float = math.nan
    end: float = math.nan
    prefix_hit: bool = False

    @property
    def latency(self) -> float:
        return self.end - self.arrival

    @property
    def ttft(self) -> float:
        return self.first_token - self.arrival

    @property
    def tpot(self) -> float:
        n = self.output_tokens - 1
        return (self.end - self.first_token) / n if n > 0 else 0.0


# ShareGPT/BurstGPT-like shapes: chat answers lognormal around a few hundred tokens with a long
# tail, short classifications, long-form writing, and agents whose outputs are Pareto-tailed.
WORKLOADS: dict[str, Workload] = {
    "mixed": Workload(
        "mixed",
        (
            Family(
                "classify",
                0.20,
                Lengths("lognormal", 300, 0.6),
                Lengths("lognormal", 4, 0.5),
                16,
                "json",
                apps=20,
                prefix_tokens=250,
            ),
            Family(
                "chat",
                0.35,
                Lengths("lognormal", 400, 0.9),
                Lengths("lognormal", 180, 0.9),
                None,
                apps=30,
                prefix_tokens=300,
            ),
            Family(
                "summarize",
                0.15,
                Lengths("lognormal", 1500, 0.5),
                Lengths("lognormal", 220, 0.5),
                1024,
                apps=10,
                prefix_tokens=150,
            ),
            Family(
                "extract",
                0.10,
                Lengths("lognormal", 1000, 0.5),
                Lengths("lognormal", 120, 0.5),
                512,
                "json",
                apps=10,
                prefix_tokens=400,
            ),
            Family(
                "write",
                0.15,
                Lengths("lognormal", 300, 0.7),
                Lengths("lognormal", 900, 0.6),
                4096,
                apps=10,
                prefix_tokens=200,
            ),
            Family(
                "agent",
                0.05,
                Lengths("lognormal", 3000, 0.5),
                Lengths("pareto", 60, 1.3),
                8192,
                "tools",
                apps=5,
                prefix_tokens=1500,
            ),
        ),
    ),
    # One family, nothing to tell requests apart: what is left is the tail itself.
    "sharegpt": Workload(
        "sharegpt",
        (
            Family(
                "chat",
                1.0,
                Lengths("lognormal", 250, 1.0),
                Lengths("lognormal", 200, 1.1),
                None,
                apps=1,
            ),
        ),
    ),
}


def workload(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; one of {', '.join(WORKLOADS)}") from None


def _clamp(x: float, hi: int | None) -> int:
    n = max(1, round(x))
    return n if hi is None else min(n, hi)


def draw_request(w: Workload, rng: random.Random, i: int, arrival: float) -> SimRequest:
    fam = rng.choices(w.families, weights=[f.weight for f in w.families])[0]
    app = rng.randrange(fam.apps)
    system = f"{fam.name}/{app}" if fam.apps > 1 or fam.prefix_tokens else None
    prompt = max(_clamp(fam.prompt.draw(rng), 100_000), fam.prefix_tokens + 1)
    output = _clamp(fam.output.draw(rng), fam.max_tokens or 16_384)
    return SimRequest(
        id=i,
        arrival=arrival,
        prompt_tokens=prompt,
        output_tokens=output,
        features=LengthFeatures(ROUTE, system, fam.max_tokens, fam.response_format),
        prefix_key=system if fam.prefix_tokens else None,
        prefix_tokens=fam.prefix_tokens,
    )


def arrivals(rate: float, rng: random.Random, cv: float = 1.0) -> Iterator[float]:
    """Open-loop arrival times: Poisson (cv = 1) or Gamma inter-arrivals (cv > 1 is bursty)."""
    t = 0.0
    shape = 1 / (cv * cv)
    while True:
        t += rng.expovariate(rate) if cv == 1.0 else rng.gammavariate(shape, 1 / (rate * shape))
        yield t


def generate(w: Workload, rate: float, n: int, seed: int, cv: float = 1.0) -> list[SimRequest]:
    rng = random.Random(seed)
    times = arrivals(rate, random.Random(seed + 1_000_003), cv)
    return [draw_request(w, rng, i, next(times)) for i in range(n)]


@dataclass(frozen=True, slots=True)
class WorkStats:
    prompt_tokens: float  # mean per request
    output_tokens: float  # mean per request
    context_tokens: float  # mean context a decoding request holds, weighted by decode time


def work_stats(w: Workload, samples: int = 20_000, seed: int = 7) -> WorkStats:
    """Monte Carlo means (the Pareto tail is capped by max_tokens, so they exist)."""
    rng = random.Random(seed)
    reqs = [draw_request(w, rng, i, 0.0) for i in range(samples)]
    out = sum(r.output_tokens for r in reqs)
    held = sum(r.output_tokens * (r.prompt_tokens + r.output_tokens / 2) for r in reqs)
    return WorkStats(sum(r.prompt_tokens for r in reqs) / samples, out / samples, held / out)


def capacity_rps(w: Workload, profiles: Sequence[Profile]) -> float:
    """Requests/s the fleet sustains with every instance at its fullest batch (prefix caching
    not counted): each request holds an instance alone for its prefill, then a 1/batch share
    of the decode steps that produce its answer."""
    st = work_stats(w)
    return sum(
        1
        / (
            p.prefill_s(round(st.prompt_tokens))
            + st.output_tokens * p.full_batch_s_per_token(st.context_tokens)
        )
        for p in profiles
    )


def write_trace(reqs: Sequence[SimRequest], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for r in reqs:
            f = r.features
            out.write(
                json.dumps(
                    {
                        "arrival": r.arrival,
                        "prompt_tokens": r.prompt_tokens,
                        "output_tokens": r.output_tokens,
                        "system": f.system_hash,
                        "max_tokens": f.max_tokens,
                        "format": f.response_format,
                        "prefix_tokens": r.prefix_tokens,
                    }
                )
                + "\n"
            )


def read_trace(path: Path, speed: float = 1.0) -> list[SimRequest]:
    """A JSON-lines trace: arrival (s), prompt_tokens, output_tokens; optionally system,
    max_tokens, format, prefix_tokens. `speed` > 1 replays it faster (more load)."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        d = json.loads(line)
        system = d.get("system")
        prefix = int(d.get("prefix_tokens") or 0)
        out.append(
            SimRequest(
                id=i,
                arrival=float(d["arrival"]) / speed,
                prompt_tokens=int(d["prompt_tokens"]),
                output_tokens=max(1, int(d["output_tokens"])),
                features=LengthFeatures(
                    ROUTE, system, d.get("max_tokens"), d.get("format") or "text"
                ),
                prefix_key=system if prefix else None,
                prefix_tokens=prefix,
            )
        )
    out.sort(key=lambda r: r.arrival)
    return out
