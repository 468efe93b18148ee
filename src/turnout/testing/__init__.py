"""Testing agent workflows against real model behaviour: record/replay, faults, verdicts.

Three tiers over the real orchestration code:
1. cassettes — real model answers recorded once, replayed by the gateway (`Cassette`, `Mode`);
2. faults placed by position in a run (`faults.rate_limited(at=6)`, `FaultPlan.wrap_tools`);
3. statistical verdicts on live behaviour (`@pytest.mark.trials`, `run_trials`, `stats`).
Plus assertions that fit non-determinism: `assert_trajectory`, `assert_json_schema`,
`assert_similar` (needs the `similarity` extra).
"""

from __future__ import annotations

from turnout.testing import faults
from turnout.testing.cassette import Cassette, CassetteError, CassetteMiss, Mode
from turnout.testing.faults import At, Fault, FaultKind, FaultPlan, ToolFault, parse_fault
from turnout.testing.stats import (
    SPRT,
    Verdict,
    compare,
    difference_interval,
    pass_hat_k,
    wilson_interval,
)
from turnout.testing.trajectory import (
    ANY,
    Call,
    OneOf,
    Regex,
    ToolCall,
    assert_json_schema,
    assert_trajectory,
    match_trajectory,
)
from turnout.testing.trials import TrialsResult, TrialsSpec, run_trials

__all__ = [
    "ANY",
    "SPRT",
    "At",
    "Calibration",
    "Call",
    "Cassette",
    "CassetteError",
    "CassetteMiss",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "InProcessGateway",
    "Mode",
    "OneOf",
    "Regex",
    "ToolCall",
    "ToolFault",
    "TrialsResult",
    "TrialsSpec",
    "Verdict",
    "assert_json_schema",
    "assert_similar",
    "assert_trajectory",
    "backend_wrapper",
    "calibrate",
    "compare",
    "difference_interval",
    "faults",
    "match_trajectory",
    "parse_fault",
    "pass_hat_k",
    "run_trials",
    "wilson_interval",
]


_LAZY = {
    # The gateway (uvicorn, backends) and the embedding model load only when used: the pytest
    # plugin imports this package in every test run.
    "InProcessGateway": "turnout.testing.inprocess",
    "backend_wrapper": "turnout.testing.inprocess",
    "assert_similar": "turnout.testing.similarity",
    "calibrate": "turnout.testing.similarity",
    "Calibration": "turnout.testing.similarity",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'turnout.testing' has no attribute {name!r}")
