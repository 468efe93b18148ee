"""One record written to both stores reads back the same through every reader: migration
status with its canary evidence, intent's conversations and answers, a key's usage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pg_server import PostgresServer
from test_store_read import T0, record, served

from turnout.lifecycle.run import Run
from turnout.migrate.status import status
from turnout.store.events import MigrationEvent, open_event_log
from turnout.store.read import open_reader

STAGES = {"stages": [5.0, 25.0, 100.0]}


def placed(arm: str, stage: int) -> dict[str, Any]:
    canary = {"candidate": "cand", "arm": arm, "stage": stage, "percent": 5.0}
    return {"canary": {**canary, "status": "running"}}


def runs() -> list[Run]:
    out = []
    for i in range(12):
        arm = "candidate" if i % 3 == 0 else "old"
        run = served(f"c{i:02d}", 10 + i, deployment="cand" if arm == "candidate" else "edge",
                     migration=placed(arm, 0), cost_usd=0.001 * i)  # fmt: skip
        run.key_id = "k1" if i % 2 else "k2"
        run.attrs = {"conversation_prefix": f"h{i % 4}", "wire_out": "chat.completions"}
        out.append(run)
    out.append(served("p1", 30, migration={"shadow": "s1"}))
    out.append(
        served("s1", 31, deployment="cand", migration={"shadow_of": "p1", "candidate": "cand"})
    )
    return out


def fill(url: str, recorded: list[Run]) -> str:
    record(url, recorded)
    log = open_event_log(url)
    log.append(MigrationEvent(T0 + 5, "assistant", "canary", "cand", "started", 0, 5.0,
                              {"settings": STAGES}))  # fmt: skip
    log.append(MigrationEvent(T0 + 40, "assistant", "shadow", "cand", "budget_spent", None,
                              None, {"budget_usd": 1.0}))  # fmt: skip
    log.close()
    return url


def reads(url: str) -> dict[str, Any]:
    with open_reader(url) as reader:
        return {
            "status": status(url),
            "conversations": reader.conversations(since=T0, bodies=True),
            "answer": reader.answer("h1"),
            "answer_before": reader.answer("h1", before=T0 + 15),
            "usage": reader.key_usage("k1"),
            "listing": reader.requests(limit=5, key_id="k2"),
            "canary": reader.canary_stage("assistant", "cand", 0, T0),
        }


def test_every_reader_answers_the_same_from_sqlite_and_postgres(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    recorded = runs()  # once: their times (latencies) are the clock's
    lite = reads(fill(f"sqlite:///{tmp_path / 'r.db'}", recorded))
    pg = reads(fill(pg_server.create_database(), recorded))
    canary = lite["status"]["assistant"]["canaries"][0]
    assert canary["status"] == "running" and canary["current"]["candidate"]
    assert lite["status"]["assistant"]["shadows"][0]["budget_usd"] == 1.0
    assert [r["id"] for r in lite["conversations"]][:2] == ["c00", "c01"]
    assert lite["answer"]["id"] == "c09" and lite["answer_before"]["id"] == "c01"
    assert lite["usage"][0]["requests"] == 6
    for name in lite:
        assert pg[name] == lite[name], name
