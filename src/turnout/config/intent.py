"""The `intent:` key of a model: signals of answers that missed, and what to do about them."""

from __future__ import annotations

from turnout.config.reader import _Reader
from turnout.config.schema import INTENT_ACTIONS, IntentSettings


def intent_settings(r: _Reader) -> IntentSettings:
    d = IntentSettings()
    if r.data.get("on_rephrase") is False:  # YAML 1.1 reads a bare `off` as false
        r.data["on_rephrase"] = "none"
    cfg = IntentSettings(
        detect=r.get("detect", bool, d.detect),
        semantic=r.get("semantic", bool, d.semantic),
        on_rephrase=r.choice("on_rephrase", INTENT_ACTIONS, d.on_rephrase),
        regenerate_window_s=r.number("regenerate_window_s", d.regenerate_window_s, minimum=0),
        semantic_wait_ms=r.number("semantic_wait_ms", d.semantic_wait_ms, minimum=0),
    )
    if cfg.on_rephrase == "escalate" and not cfg.detect:
        raise r.error("escalating on rephrase needs detect: true", "on_rephrase")
    r.done()
    return cfg
