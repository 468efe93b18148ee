"""Model migration: replay recorded traffic against a candidate, diff behaviour, gate the switch.

`gate` holds the statistics (paired non-inferiority for pass/fail checks, rank tests with
Hodges–Lehmann intervals for latency, cost and length) shared by the offline report and the
gateway's canary.
"""

from __future__ import annotations

from turnout.migrate.family import Family, family
from turnout.migrate.gate import Outcome, Verdict, continuous, paired_pass_rate

__all__ = ["Family", "Outcome", "Verdict", "continuous", "family", "paired_pass_rate"]
