"""A loopback OpenAI-compatible upstream that answers after a fixed delay (a slow candidate).

Run: ``python bench/migrate/slow_upstream.py --delay-s 0.05`` — prints its base URL, then serves
until killed. The scripted test upstream (tests/upstream.py) does the serving.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from upstream import ScriptedUpstream, Step


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-s", type=float, default=0.05)
    args = ap.parse_args()
    with ScriptedUpstream(Step(content="A slower candidate's answer.", delay_s=args.delay_s)) as up:
        print(up.base_url, flush=True)
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
