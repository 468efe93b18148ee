"""API fuzz run: schemathesis, driven by turnout's own OpenAPI document, against a real gateway.

Starts the loopback bench upstream and `turnout serve` (SQLite record on), points schemathesis
at the gateway's `/openapi.json` (with `model` pinned to the models this gateway serves, so that
generated requests reach the lifecycle instead of stopping at a 404, and admission deadlines of
at least a second, so that they are not all shed), and counts:

- cases tried: requests schemathesis sent (its HAR log), by operation;
- 5xx: answers with a status of 500 or more (the upstream is healthy and fast, so each is the
  gateway's own, except 502 `invalid_output` when the client's schema rejects the answer);
- hangs: requests answered after `--hang-s` seconds or not at all (schemathesis' timeouts);
- records missing: requests to a model route whose `x-turnout-request-id` is absent, or names
  no record in the store once the gateway has shut down and flushed;
- whether the gateway still answers a normal request afterwards.

Writes bench/results/fuzz.md and fuzz.json; the first line of each is the command.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/fuzz/run.py
     .venv/bin/python bench/fuzz/run.py --examples 20        (a quick look)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "bench" / ".work" / "fuzz"
MODEL_ROUTES = ("/v1/chat/completions", "/v1/completions")
DECLARED = {
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    *(("GET", p) for p in ("/v1/models", "/healthz", "/readyz", "/metrics", "/openapi.json")),
}
# 5xx answers that are turnout's policy working, not a fault: admission shed a request whose
# deadline it could not meet, or the model's answer failed the client's own schema.
POLICY_OUTCOMES = {"shed", "invalid_output"}
NORMAL = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}


def log(message: str) -> None:
    print(f"[fuzz {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A child process in its own process group, stopped by group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = WORK / f"{name}.log"
        with self.log_path.open("wb") as fh:
            self.popen = subprocess.Popen(
                argv,
                cwd=WORK,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log(f"started {name} (pid {self.popen.pid})")

    def wait_ready(self, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} exited before it was ready:\n{tail}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready at {url} after {timeout:.0f} s")

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


def fetch(url: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def pinned_document(gateway: str) -> Path:
    """The served document with `model` limited to this gateway's models, deadlines ≥ 1 s.

    Otherwise most generated requests stop at a 404 (a random model name) or are shed at
    admission (a deadline of a few ms), and few reach the lifecycle and the upstream.
    """
    _, raw = fetch(f"{gateway}/openapi.json")
    doc = json.loads(raw)
    _, models = fetch(f"{gateway}/v1/models")
    names = [m["id"] for m in json.loads(models)["data"]]
    for schema in ("ChatCompletionRequest", "CompletionRequest"):
        doc["components"]["schemas"][schema]["properties"]["model"] = {"enum": names}
    for header in ("Deadline", "LatencyBudget"):
        doc["components"]["parameters"][header]["schema"]["pattern"] = "^[1-9][0-9]{3,6}$"
    path = WORK / "openapi.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def run_schemathesis(args: argparse.Namespace, doc: Path, gateway: str) -> tuple[Path, Path]:
    har, ndjson = WORK / "report.har.json", WORK / "report.ndjson"
    st = Path(sys.executable).with_name("st")
    argv = [
        str(st), "run", str(doc), "--url", gateway,
        "--checks", "all", "--mode", "all",
        "--phases", "examples,coverage,fuzzing",
        "-n", str(args.examples), "--seed", str(args.seed),
        "--workers", "1", "--continue-on-failure", "--suppress-health-check", "all",
        "--request-timeout", str(args.timeout_s), "--max-response-time", str(args.hang_s),
        "--report", "har,ndjson", "--report-har-path", str(har),
        "--report-ndjson-path", str(ndjson), "--output-truncate", "true",
        "--no-color",
    ]  # fmt: skip
    log(f"schemathesis: {shlex.join(argv[1:])}")
    with (WORK / "schemathesis.log").open("w") as out:
        proc = subprocess.Popen(argv, cwd=WORK, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            text = line.decode(errors="replace")
            out.write(text)
            if (
                text.strip() and len(text) < 200
            ):  # its progress lines; long reproductions go to the log
                sys.stdout.write(text)
        proc.wait()
    return har, ndjson


def analyse(har: Path, ndjson: Path, store_ids: set[str], hang_s: float) -> dict[str, Any]:
    entries = json.loads(har.read_text())["log"]["entries"]
    by_operation: collections.Counter[str] = collections.Counter()
    by_status: collections.Counter[str] = collections.Counter()
    server_errors: collections.Counter[str] = collections.Counter()
    by_policy: collections.Counter[str] = collections.Counter()
    rejected: collections.Counter[str] = collections.Counter()
    slow: list[dict[str, Any]] = []
    no_id: list[str] = []
    unrecorded: list[str] = []
    model_requests = 0
    for e in entries:
        req, resp = e["request"], e["response"]
        path = "/" + req["url"].split("/", 3)[-1].split("?")[0]
        status = int(resp["status"])
        headers = {h["name"].lower(): h["value"] for h in resp["headers"]}
        declared = (req["method"], path) in DECLARED
        by_operation[f"{req['method']} {path}" if declared else "undeclared method (405)"] += 1
        by_status[f"{status // 100}xx"] += 1
        text = resp.get("content", {}).get("text", "")
        outcome = headers.get("x-turnout-outcome")
        if status >= 500 and outcome in POLICY_OUTCOMES:
            by_policy[f"{status} {outcome}"] += 1
        elif status >= 500:
            server_errors[f"{status} {text[:160]}"] += 1
        elif status == 400:
            rejected[_param(text)] += 1
        if e["time"] >= hang_s * 1000:
            slow.append({"operation": f"{req['method']} {path}", "ms": round(e["time"])})
        if req["method"] == "POST" and path in MODEL_ROUTES:
            model_requests += 1
            rid = headers.get("x-turnout-request-id")
            if rid is None:
                no_id.append(f"{status} {req.get('postData', {}).get('text', '')[:200]}")
            elif rid not in store_ids:
                unrecorded.append(rid)
    timeouts = 0
    findings: collections.Counter[str] = collections.Counter()
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if finished and finished.get("status") == "error":
            timeouts += "timed out" in json.dumps(finished).lower()
        for failure in _failures(event):
            findings[failure] += 1
    return {
        "cases": len(entries),
        "by_operation": dict(sorted(by_operation.items())),
        "by_status": dict(sorted(by_status.items())),
        "server_errors": sum(server_errors.values()),
        "server_error_kinds": dict(server_errors.most_common(20)),
        "policy_5xx": dict(by_policy.most_common()),
        "rejected_by_param": dict(rejected.most_common(25)),
        "hangs": len(slow) + timeouts,
        "slow": slow[:20],
        "timeouts": timeouts,
        "model_requests": model_requests,
        "missing_request_id": len(no_id),
        "missing_request_id_examples": no_id[:10],
        "records_missing": len(no_id) + len(unrecorded),
        "unrecorded_ids": unrecorded[:20],
        "checker_findings": dict(findings.most_common()),
    }


def _param(text: str) -> str:
    """Which field a 400 named (`param`), or its code when it named none."""
    try:
        error = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return "(not OpenAI's error shape)"
    param = error.get("param")
    if isinstance(param, str):
        param = re.sub(r"\[\d+\]", "[i]", param)
    return str(param or f"code={error.get('code')}")


def _failures(event: dict[str, Any]) -> list[str]:
    """Names of the checks that failed in a finished scenario, from the NDJSON report."""
    finished = event.get("ScenarioFinished")
    if not finished:
        return []
    names = []
    for case in (finished.get("recorder") or {}).get("checks", {}).values():
        for check in case:
            if check.get("status") == "failure":
                names.append(check.get("name", "?"))
    return names


def render(result: dict[str, Any], command: str) -> str:
    r = result
    lines = [
        f"Command: `{command}`",
        "",
        "# API fuzz run (schemathesis against turnout's OpenAPI document)",
        "",
        f"{r['when']}; turnout at {r['commit']}; schemathesis {r['schemathesis']}, seed "
        f"{r['seed']}, {r['examples']} examples per operation, positive and negative data, "
        f"all checks. A loopback upstream that always answers at once; SQLite record on.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| cases tried | {r['cases']:,} |",
        f"| 5xx from turnout | {r['server_errors']:,} |",
        f"| 5xx by policy (shed 503, invalid_output 502) | {sum(r['policy_5xx'].values()):,} |",
        f"| hangs (≥ {r['hang_s']:g} s or timed out) | {r['hangs']:,} |",
        f"| requests to a model route | {r['model_requests']:,} |",
        f"| records missing (no request id, or no record) | {r['records_missing']:,} "
        f"({r['missing_request_id']:,} without a request id) |",
        f"| normal request afterwards | {r['after']} |",
        "",
        "| operation | cases |",
        "|---|---|",
        *[f"| `{op}` | {n:,} |" for op, n in r["by_operation"].items()],
        "",
        "Statuses: " + ", ".join(f"{k} {v:,}" for k, v in r["by_status"].items()) + ".",
        "",
    ]
    if r["server_error_kinds"]:
        lines += ["## 5xx answers", "", "| count | status and body |", "|---|---|"]
        lines += [f"| {n} | `{k.replace('|', '/')}` |" for k, n in r["server_error_kinds"].items()]
        lines.append("")
    if r["rejected_by_param"]:
        lines += [
            "## 400s by the field they named",
            "",
            "What the edge validation turned away (negative cases, and positive ones where the",
            "document allows more than the gateway accepts).",
            "",
            "| param | count |",
            "|---|---|",
            *[f"| `{k}` | {n:,} |" for k, n in r["rejected_by_param"].items()],
            "",
        ]
    if r["checker_findings"]:
        lines += [
            "## Schemathesis' own checks that failed",
            "",
            "Contract findings beyond crashes (a 405 without `Allow`, a schema-valid request",
            "rejected, an invalid one accepted); `bench/.work/fuzz/schemathesis.log` has each",
            "with a curl reproduction.",
            "",
            "| check | failing cases |",
            "|---|---|",
            *[f"| {name} | {n} |" for name, n in r["checker_findings"].items()],
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--examples", type=int, default=200, help="examples per operation")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hang-s", type=float, default=5.0, help="an answer this late is a hang")
    ap.add_argument("--timeout-s", type=float, default=30.0, help="schemathesis gives up here")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/fuzz/run.py", *(argv or sys.argv[1:])])
    WORK.mkdir(parents=True, exist_ok=True)
    for old in WORK.glob("record.db*"):
        old.unlink()
    up_port, gw_port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{gw_port}"
    (WORK / "turnout.yaml").write_text(
        f"""store: {{url: "sqlite:///{WORK / "record.db"}", flush_interval_s: 0.1}}
deployments:
  up: {{kind: openai, base_url: "http://127.0.0.1:{up_port}/v1", model: bench-model,
        max_concurrency: 4}}
models:
  assistant: {{deployments: [up]}}
"""
    )
    servers: list[Server] = []
    try:
        up = Server(
            "upstream", [sys.executable, str(ROOT / "bench/upstream.py"), "--port", str(up_port)]
        )
        servers.append(up)
        up.wait_ready(f"http://127.0.0.1:{up_port}/health")
        gw = Server(
            "turnout",
            [
                sys.executable,
                "-m",
                "turnout",
                "serve",
                "--config",
                "turnout.yaml",
                "--port",
                str(gw_port),
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        servers.append(gw)
        gw.wait_ready(f"{gateway}/readyz")
        doc = pinned_document(gateway)
        started = time.monotonic()
        har, ndjson = run_schemathesis(args, doc, gateway)
        took = time.monotonic() - started
        status, _ = fetch(f"{gateway}/v1/chat/completions", NORMAL)
        after = "200" if status == 200 else f"{status} (failed)"
        gw.stop()  # flushes the record
        sys.path.insert(0, str(ROOT / "src"))
        from turnout.store.query import list_requests

        rows = list_requests(f"sqlite:///{WORK / 'record.db'}", limit=10**7)
        result = analyse(har, ndjson, {row["id"] for row in rows}, args.hang_s)
    finally:
        for server in reversed(servers):
            server.stop()
    import schemathesis

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    result.update(
        command=command,
        when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        commit=commit,
        schemathesis=schemathesis.__version__ if hasattr(schemathesis, "__version__") else "?",
        seed=args.seed,
        examples=args.examples,
        hang_s=args.hang_s,
        after=after,
        seconds=round(took, 1),
        records_in_store=len(rows),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    report = render(result, command)
    (args.out / "fuzz.md").write_text(report + "\n")
    print()
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
