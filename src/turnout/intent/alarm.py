"""An alarm when a group's miss rate rises: a Bernoulli CUSUM per group over its answers in order.

Each answer is one observation: missed (a later rephrase, correction or regenerate was attributed
to it) or not. The detector is the fingerprint watch's rate CUSUM; its false-alarm rate on
unchanged traffic and its delay on a simulated rise are measured in bench/intent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from turnout.fingerprint.cusum import RateCusum, Shift


@dataclass(slots=True)
class MissAlarm:
    warmup: int = 1000
    h: float = 14.0
    min_rise: float = 0.03
    _groups: dict[str, RateCusum] = field(default_factory=dict)

    def update(self, group: str, missed: bool) -> Shift | None:
        detector = self._groups.get(group)
        if detector is None:
            detector = self._groups[group] = RateCusum(self.warmup, self.h, self.min_rise)
        return detector.update(missed)
