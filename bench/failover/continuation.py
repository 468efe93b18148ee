"""How long a client waits when its stream breaks mid-answer and turnout continues it.

A real `turnout serve` (this checkout's code) in front of two scripted upstreams on loopback,
both deployments `supports_prefill: true`. For each of `--breaks` streamed requests the first
upstream closes the connection after `--break-after` words; turnout must continue the answer on
a deployment that supports prefill. Recovery time = the upstream closing the connection
(timestamped by the scripted upstream) → the first delta past the break reaching the client.
Every stream is checked: the exact full text once, one finish_reason, one [DONE], no error event,
one continuation request carrying the text already sent. A break that was not continued is a
failure; with any failure the run reports the failures and no times.

Run: `flock /tmp/turnout-bench.lock .venv/bin/python bench/failover/continuation.py`
(a few seconds); results in bench/results/failover_continuation.{md,json}.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "bench" / ".work" / "failover"
sys.path.insert(0, str(REPO / "tests"))

from upstream import ScriptedUpstream, Step, split_words  # noqa: E402

TEXT = " ".join(f"word{i}" for i in range(60)) + "."
PREFILL = (
    "supports_prefill: true,"
    " prefill_fields: {continue_final_message: true, add_generation_prompt: false}"
)
CONFIG = """\
server: {{host: 127.0.0.1, port: {port}}}
store: {{url: "sqlite:///{db}", record_bodies: none}}
deployments:
  a: {{kind: openai, base_url: "{a}", model: m-a, rtt_probe_s: 0, {prefill},
      cooldown: {{failures: 1000000, seconds: 1}}}}
  b: {{kind: openai, base_url: "{b}", model: m-b, rtt_probe_s: 0, {prefill},
      cooldown: {{failures: 1000000, seconds: 1}}}}
models:
  bench: {{deployments: [a, b], lifecycle: {{backoff: {{base_s: 0.01, max_s: 1.0}}}}}}
"""
MAX_FAILURES = 10  # stop early: the gateway is not continuing, more breaks tell nothing new


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def gateway(a: ScriptedUpstream, b: ScriptedUpstream, src: Path) -> Iterator[int]:
    """`turnout serve` in its own process group, stopped by group on the way out."""
    WORK.mkdir(parents=True, exist_ok=True)
    port = free_port()
    db = WORK / "continuation.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    cfg = WORK / "continuation.yaml"
    cfg.write_text(CONFIG.format(port=port, db=db, a=a.base_url, b=b.base_url, prefill=PREFILL))
    env = dict(os.environ, PYTHONPATH=str(src))
    log_path = WORK / "gateway.log"
    with log_path.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "turnout", "serve", "--config", str(cfg)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"turnout serve exited before it was ready:\n{tail}")
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError("turnout serve not ready after 90 s")
            time.sleep(0.2)
        yield port
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass
class Read:
    """One stream as the client read it."""

    text: str = ""
    done: int = 0
    finishes: int = 0
    errors: list[Any] = field(default_factory=list)
    past_break_at: float | None = None  # time.monotonic() of the first delta past the prefix


def read_stream(conn: http.client.HTTPConnection, prefix_chars: int) -> Read:
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": "Count for me."}],
        "stream": True,
    }
    conn.request(
        "POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"}
    )
    resp = conn.getresponse()
    out = Read()
    if resp.status != 200:
        out.errors.append(f"status {resp.status}: {resp.read()[:300]!r}")
        return out
    while True:
        line = resp.readline()
        if not line:
            break
        now = time.monotonic()
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            out.done += 1
            continue
        event = json.loads(data)
        if "error" in event:
            out.errors.append(event["error"])
            continue
        for choice in event.get("choices") or ():
            out.text += (choice.get("delta") or {}).get("content") or ""
            out.finishes += bool(choice.get("finish_reason"))
        if out.past_break_at is None and len(out.text) > prefix_chars:
            out.past_break_at = now
    return out


def one_break(
    conn: http.client.HTTPConnection, a: ScriptedUpstream, b: ScriptedUpstream, words: int
) -> tuple[float | None, str | None, str]:
    """(recovery seconds, deployment that continued, what went wrong or '')."""
    prefix = "".join(split_words(TEXT)[:words])
    breaks, seen = len(a.breaks), (len(a.requests), len(b.requests))
    a.script(Step(content=TEXT, break_after_chunks=words))
    try:
        got = read_stream(conn, len(prefix))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return None, None, f"the client's read failed: {type(exc).__name__}: {exc}"
    try:
        a.wait_for_breaks(breaks + 1, timeout=1.0)
    except TimeoutError:
        return None, None, "the upstream did not break (the request went elsewhere first?)"
    if got.errors:
        return None, None, f"error event: {str(got.errors[0])[:200]}"
    if got.text != TEXT:
        return None, None, f"text differs from the full answer ({len(got.text)} chars)"
    if (got.done, got.finishes) != (1, 1):
        return None, None, f"{got.done} [DONE] and {got.finishes} finish_reason"
    conts = [
        (name, r)
        for name, up, n in (("a", a, seen[0]), ("b", b, seen[1]))
        for r in up.requests[n:]
        if r.prefill is not None
    ]
    if len(conts) != 1 or conts[0][1].prefill != prefix:
        return None, None, f"{len(conts)} continuation requests, expected one with the prefix"
    assert got.past_break_at is not None
    return got.past_break_at - a.breaks[-1], conts[0][0], ""


def measure(
    port: int, a: ScriptedUpstream, b: ScriptedUpstream, breaks: int, words: int, warmup: int
) -> tuple[list[float], dict[str, int], list[str]]:
    """Recovery seconds of each continued break, continuations per deployment, failures."""
    times: list[float] = []
    by: dict[str, int] = {"a": 0, "b": 0}
    failures: list[str] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(warmup):
        read_stream(conn, 0)
    for i in range(1, breaks + 1):
        recovery, dep, wrong = one_break(conn, a, b, words)
        if recovery is None or dep is None:
            failures.append(f"break {i}: {wrong}")
            log(f"  break {i}: NOT CONTINUED: {wrong}")
            conn.close()  # the failed stream may have left it unusable
            if len(failures) >= MAX_FAILURES:
                log(f"stopping after {len(failures)} failures")
                break
            continue
        times.append(recovery)
        by[dep] += 1
        if i % 20 == 0 or i == breaks:
            median = statistics.median(times) * 1000
            log(f"  {i}/{breaks}: p50 {median:.2f} ms, failures {len(failures)}")
    conn.close()
    return times, by, failures


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--breaks", type=int, default=200)
    ap.add_argument("--break-after", type=int, default=20, help="words before the break")
    ap.add_argument("--warmup", type=int, default=5, help="unmeasured unbroken streams first")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--src", type=Path, default=REPO / "src", help="the turnout code to serve")
    args = ap.parse_args()
    command = "python " + shlex.join(["bench/failover/continuation.py", *sys.argv[1:]])

    with (
        ScriptedUpstream(Step(content=TEXT)) as a,
        ScriptedUpstream(Step(content=TEXT)) as b,
        gateway(a, b, args.src) as port,
    ):
        log(f"{args.breaks} breaks after {args.break_after} words, turnout on :{port}")
        times, by, failures = measure(port, a, b, args.breaks, args.break_after, args.warmup)

    result = {
        "command": command,
        "ok": not failures and len(times) == args.breaks,
        "breaks": args.breaks,
        "break_after_words": args.break_after,
        "answer_words": len(split_words(TEXT)),
        "continued": len(times),
        "failures": failures,
        "continued_on": by,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "commit": _commit(),
        "src": None if args.src == REPO / "src" else str(args.src),
    }
    if result["ok"]:
        ms = [t * 1000 for t in times]
        result["recovery_ms"] = {
            "p50": pct(ms, 50),
            "p90": pct(ms, 90),
            "p99": pct(ms, 99),
            "min": min(ms),
            "max": max(ms),
            "mean": statistics.fmean(ms),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "failover_continuation.json").write_text(json.dumps(result, indent=2) + "\n")
    md = render(result)
    (args.out / "failover_continuation.md").write_text(md)
    print(md)
    return 0 if result["ok"] else 1


def render(r: dict[str, Any]) -> str:
    lines = [
        f"Command: `{r['command']}`",
        "",
        "# Recovering a broken stream: break → next delta at the client",
        "",
        f"`turnout serve` at {r['commit']}"
        + (f" (code from `{r['src']}`)" if r.get("src") else "")
        + " in front of two scripted upstreams on loopback, both"
        " `supports_prefill: true`; one sequential streaming client. The first upstream closes the"
        f" connection after {r['break_after_words']} words of a {r['answer_words']}-word answer;"
        " recovery is the"
        " time from that close (stamped by the upstream) to the first delta past the break"
        " reaching the client. Each stream was checked: the full text once, one finish_reason,"
        " one [DONE], no error event, one continuation request with the text already sent.",
        "",
        f"Machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']},"
        f" {r['machine']['platform']}; upstreams and client share the process that drives them.",
        "",
    ]
    if not r["ok"]:
        lines += [
            f"**FAILED: {len(r['failures'])} breaks not continued** ({r['continued']} of"
            f" {r['breaks']} were); no times are reported.",
            "",
            *[f"- {f}" for f in r["failures"]],
            "",
        ]
        return "\n".join(lines)
    t = r["recovery_ms"]
    lines += [
        "| breaks | continued on a / b | p50 ms | p90 ms | p99 ms | min ms | max ms |",
        "|---|---|---|---|---|---|---|",
        f"| {r['breaks']} | {r['continued_on'].get('a', 0)} / {r['continued_on'].get('b', 0)}"
        f" | {t['p50']:.2f} | {t['p90']:.2f} | {t['p99']:.2f} | {t['min']:.2f} | {t['max']:.2f} |",
        "",
    ]
    return "\n".join(lines)


def _commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
