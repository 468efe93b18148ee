"""What an edge attempt's time depends on, from a frontier arm's record: prompt vs output tokens.

turnout's estimate models service time as fixed + per_token × output tokens. On a CPU the prompt
(prefill) costs time too; this least-squares fit over the recorded attempts says how much.

Run after frontier.py: ``.venv/bin/python bench/routing/edge_fit.py [record.db]``
(default: the "all edge" arm's record in bench/.work/frontier/).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np

DEFAULT = Path(__file__).resolve().parents[1] / ".work" / "frontier" / "all_edge" / "record.db"


def fit(db: Path, deployment: str = "edge") -> dict[str, float]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = []
    for (log,) in conn.execute("SELECT attempt_log FROM requests"):
        for a in json.loads(log):
            if a["deployment"] == deployment and a.get("ok") and a.get("ended"):
                rows.append((a["prompt_tokens"], a["completion_tokens"], a["ended"] - a["started"]))
    conn.close()
    x = np.array(rows, dtype=float)
    design = np.column_stack([np.ones(len(x)), x[:, 1], x[:, 0]])
    coef, *_ = np.linalg.lstsq(design, x[:, 2], rcond=None)
    only_output = np.column_stack([np.ones(len(x)), x[:, 1]])
    coef_o, *_ = np.linalg.lstsq(only_output, x[:, 2], rcond=None)

    def r2(d: np.ndarray, c: np.ndarray) -> float:
        resid = x[:, 2] - d @ c
        return float(1 - resid.var() / x[:, 2].var())

    return {
        "attempts": len(x),
        "fixed_s": round(float(coef[0]), 3),
        "s_per_output_token": round(float(coef[1]), 4),
        "s_per_prompt_token": round(float(coef[2]), 4),
        "r2_with_prompt": round(r2(design, coef), 3),
        "r2_output_only": round(r2(only_output, coef_o), 3),
    }


if __name__ == "__main__":
    print(json.dumps(fit(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT), indent=1))
