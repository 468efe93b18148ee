"""Every run writes its configs afresh and starts its own upstream and gateways, so a result
depends on nothing left over from an earlier run; the machine and versions are recorded
with it."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway_overhead.closed import Bench
from gateway_overhead.common import BENCH, PORTKEY_DIR, REPO, WORK, log
from gateway_overhead.procs import Proc, Processes, free_port, wait_ready
from gateway_overhead.targets import Target, probe_target


def env_info(args: argparse.Namespace) -> dict[str, Any]:
    def run(cmd: list[str]) -> str:
        try:
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (cp.stdout or cp.stderr).strip()
        except Exception as exc:
            return f"unavailable ({exc})"

    cpu_model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    ver = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
    turnout_py = Path(args.turnout_bin).parent / "python"
    litellm_py = Path(args.litellm_venv) / "bin" / "python"
    rev = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    # only the gateway's sources count: results written by an earlier run are not its code
    dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "src"])
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "wrk": run(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else "missing",
        "python_bench": sys.version.split()[0],
        "turnout": run([str(turnout_py), "-c", ver, "turnout"]) if turnout_py.exists() else "-",
        "turnout_git": rev + (" (uncommitted changes)" if dirty else ""),
        "litellm": run([str(litellm_py), "-c", ver, "litellm"]) if litellm_py.exists() else "-",
        "turnout_src": turnout_source(run([str(turnout_py), "-c", WHERE])),
        "portkey": portkey_version(),
        "node": run(["node", "--version"]) if shutil.which("node") else "missing",
    }


WHERE = "import os, turnout; print(os.path.dirname(os.path.dirname(turnout.__file__)))"


def turnout_source(where: str) -> str:
    """Which `turnout` the gateway runs (PYTHONPATH may point it at this checkout's src/)."""
    if not where.startswith("/"):
        return where
    if Path(where).resolve().is_relative_to(REPO.resolve()):
        return os.path.relpath(where, REPO) + " (this checkout)"
    return "another checkout"


PORTKEY_SERVER = (
    PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
)


def portkey_version() -> str:
    pkg = PORTKEY_SERVER.parent.parent / "package.json"
    try:
        return str(json.loads(pkg.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "-"


def write_turnout_config(port: int, up_port: int, otlp_port: int) -> Path:
    """Every default on: the record with full bodies (the default), metrics, and spans."""
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "turnout.db"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(db) + suffix).unlink()
    path = WORK / "turnout.yaml"
    path.write_text(
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        f'store: {{url: "sqlite:///{db}", record_bodies: full}}\n'
        f'telemetry: {{otlp_endpoint: "http://127.0.0.1:{otlp_port}"}}\n'
        "deployments:\n"
        f'  up: {{kind: openai, base_url: "http://127.0.0.1:{up_port}/v1", '
        "model: bench-model, tags: [cloud]}\n"
        "models:\n"
        "  bench: {deployments: [up], routing: ordered}\n"
    )
    return path


LITELLM_CONFIG = """\
model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench-model
      api_base: http://127.0.0.1:{up_port}/v1
      api_key: sk-bench-dummy-upstream-key
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  # LiteLLM's production checklist: no per-request DB writes, no error-log writes
  disable_spend_logs: true
  disable_error_logs: true
  allow_requests_on_db_unavailable: true
litellm_settings:
  set_verbose: false
  request_timeout: 600
"""


def write_litellm_config(up_port: int) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "litellm.yaml"
    path.write_text(LITELLM_CONFIG.format(up_port=up_port))
    return path


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "LITELLM_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_all(args: argparse.Namespace, procs: Processes, names: list[str]) -> Bench:
    up_port = free_port()
    up_py = Path(args.bench_python)
    upstream = procs.start(
        "upstream",
        [str(up_py), str(BENCH / "upstream.py"), "--port", str(up_port)],
        base_env(),
        BENCH,
    )
    wait_ready(upstream, f"http://127.0.0.1:{up_port}/health", 30)
    targets: dict[str, Target] = {
        "direct": Target(
            "direct", f"http://127.0.0.1:{up_port}/v1/chat/completions", "bench-model"
        ),
    }
    sink: Proc | None = None
    otlp_port = 0
    if "turnout" in names:
        otlp_port = free_port()
        sink = procs.start(
            "otlp-sink",
            [str(up_py), str(BENCH / "otlp_sink.py"), "--port", str(otlp_port)],
            base_env(),
            BENCH,
        )
        wait_ready(sink, f"http://127.0.0.1:{otlp_port}/health", 30)
        port = free_port()
        cfg = write_turnout_config(port, up_port, otlp_port)
        proc = procs.start(
            "turnout",
            [args.turnout_bin, "serve", "--config", str(cfg), "--port", str(port)],
            base_env(),
            WORK,
        )
        took = wait_ready(proc, f"http://127.0.0.1:{port}/readyz", args.ready_timeout)
        log(f"turnout ready after {took:.1f}s")
        targets["turnout"] = Target(
            "turnout", f"http://127.0.0.1:{port}/v1/chat/completions", "bench", proc=proc
        )
    if "portkey" in names:
        port = free_port()
        proc = procs.start(
            "portkey",
            ["node", str(PORTKEY_SERVER), f"--port={port}", "--headless"],
            base_env(),
            PORTKEY_DIR,
        )
        took = wait_ready(proc, f"http://127.0.0.1:{port}/", args.ready_timeout)
        log(f"portkey ready after {took:.1f}s")
        targets["portkey"] = Target(
            "portkey",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            "bench-model",
            auth="sk-bench-dummy-upstream-key",
            headers={
                "x-portkey-provider": "openai",
                "x-portkey-custom-host": f"http://127.0.0.1:{up_port}/v1",
            },
            proc=proc,
        )
    if "litellm" in names:
        port = free_port()
        cfg = write_litellm_config(up_port)
        key = "sk-" + secrets.token_hex(16)
        env = base_env()
        env.update(
            LITELLM_MASTER_KEY=key,
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_LOG="ERROR",
        )
        bin_ = str(Path(args.litellm_venv) / "bin" / "litellm")
        proc = procs.start(
            "litellm",
            [
                bin_,
                "--config",
                str(cfg),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            env,
            WORK,
        )
        took = wait_ready(proc, f"http://127.0.0.1:{port}/health/readiness", args.ready_timeout)
        log(f"litellm ready after {took:.1f}s")
        targets["litellm"] = Target(
            "litellm",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            "bench",
            auth=key,
            proc=proc,
        )
    for t in targets.values():
        t.probe = probe_target(t)
        ok = all(v.get("ok") for v in t.probe.values())
        log(f"probe {t.name}: {'ok' if ok else 'FAILED ' + json.dumps(t.probe)[:400]}")
    sink_url = f"http://127.0.0.1:{otlp_port}" if sink is not None else None
    return Bench(args, upstream, targets, sink, sink_url)
