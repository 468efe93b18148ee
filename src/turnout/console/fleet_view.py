"""What the running gateway holds about its deployments: breakers, estimates, work in flight.

Read from the gateway's own objects on the event loop (no I/O): a snapshot, never a lock.
"""

from __future__ import annotations

from typing import Any

from turnout.gateway import Gateway


def breaker_state(gw: Gateway, name: str) -> tuple[str, float]:
    """(closed | open | half-open, seconds left open)."""
    b = gw.breakers[name]
    left = b.remaining_s()
    if left > 0:
        return "open", left
    if b.half_open():
        return "half-open", 0.0
    return "closed", 0.0


def deployments(gw: Gateway) -> list[dict[str, Any]]:
    out = []
    for name, dep in gw.config.deployments.items():
        state, left = breaker_state(gw, name)
        est = gw.estimates[name]
        predicted, parts = est.predict(None)
        fixed, _, per_token = est.service.fit()
        price = dep.price
        out.append(
            {
                "deployment": name,
                "kind": dep.kind,
                "model": dep.model,
                "tags": list(dep.tags),
                "breaker": state,
                "open_for_s": round(left, 1),
                "failures": gw.breakers[name].failures,
                "in_flight": est.in_flight,
                "queued": est.queued,
                "max_concurrency": dep.max_concurrency,
                "observations": est.service.count,
                "rtt_ms": round(est.rtt() * 1000, 1),
                "predicted_ms": round(predicted * 1000, 1),
                "predicted_ttft_ms": round(parts["ttft_s"] * 1000, 1),
                "fixed_ms": round(fixed * 1000, 1),
                "per_token_ms": round(per_token * 1000, 3),
                "price_in_per_mtok": price.input_per_mtok if price else None,
                "price_out_per_mtok": price.output_per_mtok if price else None,
            }
        )
    return out


def alarms(gw: Gateway) -> list[dict[str, str]]:
    """The alarms raised now that the gateway itself knows of."""
    out = []
    for name in gw.config.deployments:
        state, left = breaker_state(gw, name)
        if state != "closed":
            what = f"open for {left:.1f} s more" if state == "open" else "half-open: probing"
            out.append({"kind": "breaker", "subject": name, "message": f"breaker {what}"})
    return out


def breaker_history(gw: Gateway) -> list[dict[str, Any]]:
    """Every breaker's remembered transitions, newest first."""
    rows = [
        {"at": at, "deployment": name, "state": state, "why": why}
        for name, b in gw.breakers.items()
        for at, state, why in b.history
    ]
    return sorted(rows, key=lambda r: -r["at"])


def instances(gw: Gateway) -> list[dict[str, Any]]:
    """The balancer's view of each instance of a `routing: balanced` model; [] without one."""
    if gw.balancer is None:
        return []
    tracker = gw.balancer.tracker
    now, stale = tracker.clock(), tracker.stale_after_s
    out = []
    for name, inst in sorted(tracker.instances.items()):
        signal = inst.fresh(now, stale)
        out.append(
            {
                "instance": name,
                "healthy": inst.healthy,
                "ours": len(inst.flights),
                "others": len(inst.others(now, stale)),
                "load": inst.load(now, stale),
                "batch": inst.batch(),
                "max_batch": inst.max_batch,
                "context_tokens": inst.context_tokens(),
                "kv_tokens": inst.kv_tokens,
                "prefill_tps": round(inst.rates.prefill_tps, 1),
                "reported": None
                if signal is None
                else {
                    "age_s": round(max(0.0, now - signal.at), 1),
                    "running": signal.running,
                    "waiting": signal.waiting,
                    "kv_usage": signal.kv_usage,
                },
                "scrape_url": gw.config.deployments[name].scrape_url,
            }
        )
    return out
