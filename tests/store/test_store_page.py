"""The console's reads — a filtered keyset page of the record, each key's spend in time
buckets, each key's refusals — answer alike from SQLite and PostgreSQL. The expectations are
worked out here from the runs themselves, not read back from either store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pg_server import PostgresServer
from test_store_read import T0, record, served

from turnout.lifecycle.run import Attempt, Run
from turnout.lifecycle.states import State
from turnout.store.page import RequestFilter
from turnout.store.read import open_reader

BUCKET_S = 7.0


def failed_over(run_id: str, at: float) -> Run:
    """Two attempts: one to `edge` that failed, one to `spare` that answered."""
    run = Run(id=run_id, model="assistant", operation="chat", started=T0 + at)
    run.transition(State.ROUTED, deployment="edge")
    run.attempts.append(Attempt(1, "edge", started=run.now(), ok=False, cost_usd=0.25))
    run.transition(State.ATTEMPTING, deployment="edge", attempt=1)
    run.transition(State.FALLBACK, deployment="spare")
    run.attempts.append(Attempt(2, "spare", started=run.now(), ok=True, cost_usd=0.5))
    run.transition(State.ATTEMPTING, deployment="spare", attempt=2)
    run.transition(State.VALIDATING)
    run.transition(State.COMPLETED)
    return run


def refused(run_id: str, at: float, key_id: str | None, status: int, code: str | None) -> Run:
    run = Run(id=run_id, model="assistant", operation="chat", started=T0 + at)
    run.key_id = key_id
    run.http_status = status
    run.error = "refused"
    reason = {"code": code} if code else {}
    run.transition(State.REJECTED, status=status, error="refused", **reason)
    return run


def runs() -> list[Run]:
    """Two runs per instant (the cursor must break ties by id), every filter's column varied."""
    out: list[Run] = []
    for i in range(30):
        run = served(
            f"p{29 - i:02d}",  # ids run against time within a tie: the order is not insertion's
            100 + i // 2,
            model="other" if i % 3 == 0 else "assistant",
            deployment="spare" if i % 4 == 0 else "edge",
            outcome=State.TRUNCATED if i % 5 == 0 else State.COMPLETED,
            cost_usd=0.25 * (i % 4),
        )
        run.key_id = (None, "k1", "k2")[i % 3 if i % 5 else 0]
        run.tenant = "t1" if i % 2 else None
        run.wire = "responses" if i % 7 == 0 else "chat.completions"
        run.attrs = {"wire_out": "chat.completions"}
        if i % 6 == 0:
            run.attrs["intent"] = {
                "signals": ["rephrase"] if i % 12 else ["rephrase", "correction"]
            }
        elif i % 6 == 3:
            run.attrs["intent"] = {"signals": []}
        elif i % 6 == 5:
            run.attrs["intent"] = {"conversation": "c"}  # intent recorded, no signals yet
        out.append(run)
    out.append(failed_over("f1", 95))
    out[-1].key_id = "k1"
    out += [
        refused("x1", 90, "k1", 429, "rate_limited"),  # before SINCE: not counted
        refused("x2", 110, "k1", 429, "rate_limited"),
        refused("x3", 111, "k1", 400, None),  # no code: the status names it
        refused("x4", 112, "k2", 401, "invalid_api_key"),
        refused("x5", 113, "k1", 429, "rate_limited"),
        refused("x6", 114, None, 401, "missing_api_key"),  # no key: no one's refusal
    ]
    return out


SINCE = T0 + 95


def matches(run: Run, where: RequestFilter) -> bool:
    signals = (run.attrs.get("intent") or {}).get("signals") or []
    wanted = where.active()
    return all(
        (
            run.outcome is not None
            and run.outcome.value == wanted.get("outcome", run.outcome.value),
            run.model == wanted.get("model", run.model),
            "deployment" not in wanted or wanted["deployment"] in run.deployments,
            "key_id" not in wanted or run.key_id == wanted["key_id"],
            "tenant" not in wanted or run.tenant == wanted["tenant"],
            run.wire == wanted.get("wire", run.wire),
            "intent" not in wanted or wanted["intent"] in signals,
            run.started >= float(wanted.get("since", run.started)),
            "until" not in wanted or run.started < float(wanted["until"]),
        )
    )


def expected(recorded: list[Run], where: RequestFilter) -> list[str]:
    chosen = [r for r in recorded if matches(r, where)]
    return [r.id for r in sorted(chosen, key=lambda r: (r.started, r.id), reverse=True)]


FILTERS = [
    RequestFilter(),
    RequestFilter(outcome="truncated"),
    RequestFilter(outcome="rejected"),
    RequestFilter(model="other"),
    RequestFilter(deployment="spare"),  # any attempt: f1's second one counts
    RequestFilter(deployment="edge"),
    RequestFilter(key_id="k2"),
    RequestFilter(tenant="t1"),
    RequestFilter(wire="responses"),
    RequestFilter(intent="rephrase"),
    RequestFilter(intent="correction"),
    RequestFilter(since=T0 + 105),
    RequestFilter(until=T0 + 105),
    RequestFilter(since=T0 + 103, until=T0 + 110, model="assistant", tenant="t1"),
    RequestFilter(model="nobody"),
    RequestFilter(outcome="", model=""),  # blank fields are no filter, as the form sends them
]


def walk(url: str, where: RequestFilter, limit: int) -> list[str]:
    """Every page of `where`, each from the last row of the one before."""
    ids: list[str] = []
    before = None
    with open_reader(url) as reader:
        while True:
            page = reader.page(where, before, limit)
            assert len(page) <= limit
            ids += [r["id"] for r in page]
            if len(page) < limit:
                return ids
            before = (page[-1]["started"], page[-1]["id"])


def test_every_filter_pages_newest_first_with_ties_broken_by_id(
    new_store: Callable[[], str],
) -> None:
    recorded = runs()
    url = record(new_store(), recorded)
    assert expected(recorded, RequestFilter(deployment="spare"))[-1] == "f1"
    assert len(expected(recorded, RequestFilter(intent="correction"))) == 3
    with open_reader(url) as reader:
        for where in FILTERS:
            assert [r["id"] for r in reader.page(where, limit=100)] == expected(recorded, where), (
                where
            )


@pytest.mark.parametrize("limit", [1, 2, 5, 37])
def test_the_cursor_walks_every_row_once_across_pages(
    new_store: Callable[[], str], limit: int
) -> None:
    recorded = runs()
    url = record(new_store(), recorded)
    for where in (RequestFilter(), RequestFilter(model="assistant"), RequestFilter(tenant="t1")):
        ids = walk(url, where, limit)
        assert ids == expected(recorded, where)  # no gap, no repeat, in order
    # A cursor inside a tie: the row with the same time and a smaller id comes next.
    with open_reader(url) as reader:
        first, second = reader.page(RequestFilter(), limit=2)
        assert first["started"] == second["started"] and first["id"] > second["id"]
        (after,) = reader.page(RequestFilter(), (first["started"], first["id"]), 1)
        assert after["id"] == second["id"]


def test_a_page_row_holds_the_listing_columns_and_the_intent_signals(
    new_store: Callable[[], str],
) -> None:
    url = record(new_store(), runs())
    with open_reader(url) as reader:
        rows = {r["id"]: r for r in reader.page(RequestFilter(), limit=100)}
    assert rows["p29"]["intent"] == ["rephrase", "correction"]
    assert rows["p23"]["intent"] == ["rephrase"]
    assert rows["p26"]["intent"] == [] and rows["p24"]["intent"] is None
    assert rows["p28"]["intent"] is None  # no intent recorded
    f1 = rows["f1"]
    assert f1["deployments"] == ["edge", "spare"] and f1["attempts"] == 2
    assert f1["cost_usd"] == 0.75 and f1["wire_out"] is None  # no attrs recorded
    assert rows["p29"]["wire_out"] == "chat.completions"
    assert (f1["key_id"], f1["tenant"], f1["wire"]) == ("k1", None, "chat.completions")
    assert rows["p29"]["stream"] is False and rows["x3"]["http_status"] == 400
    assert "request_body" not in f1 and "events" not in f1


def spend(recorded: list[Run], since: float, bucket_s: float = BUCKET_S) -> list[dict[str, Any]]:
    sums: dict[tuple[int, str], list[float]] = {}
    for run in recorded:
        if run.key_id is not None and run.started >= since:
            got = sums.setdefault((int(run.started / bucket_s), run.key_id), [0, 0.0])
            got[0] += 1
            got[1] += run.cost_usd
    return [
        {"key_id": k, "bucket": b * bucket_s, "requests": n, "cost_usd": usd}
        for (b, k), (n, usd) in sorted(sums.items())
    ]


def test_key_spend_sums_each_keys_cost_in_buckets_oldest_first(
    new_store: Callable[[], str],
) -> None:
    recorded = runs()
    url = record(new_store(), recorded)
    want = spend(recorded, SINCE)
    assert {w["key_id"] for w in want} == {"k1", "k2"} and len(want) > 4
    assert sum(w["cost_usd"] for w in want) > 0
    with open_reader(url) as reader:
        assert reader.key_spend(SINCE, BUCKET_S) == want
        assert reader.key_spend(T0 + 1000, BUCKET_S) == []
        # Whole hours (a bucket size given as an int): the same sums, in fewer buckets.
        assert reader.key_spend(0.0, 3600) == spend(recorded, 0.0, 3600)


def test_key_refusals_count_each_keys_rejections_by_code_since_a_time(
    new_store: Callable[[], str],
) -> None:
    url = record(new_store(), runs())
    with open_reader(url) as reader:
        assert reader.key_refusals(SINCE) == [
            {"key_id": "k1", "code": "400", "requests": 1},
            {"key_id": "k1", "code": "rate_limited", "requests": 2},
            {"key_id": "k2", "code": "invalid_api_key", "requests": 1},
        ]
        assert reader.key_refusals(0.0)[1] == {
            "key_id": "k1",
            "code": "rate_limited",
            "requests": 3,
        }
        assert reader.key_refusals(T0 + 1000) == []


def test_sqlite_and_postgres_give_the_same_pages_spend_and_refusals(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    recorded = runs()  # once: their times are the clock's

    def reads(url: str) -> dict[str, Any]:
        record(url, recorded)
        with open_reader(url) as reader:
            out: dict[str, Any] = {str(w): reader.page(w, limit=100) for w in FILTERS}
            out["cursor"] = reader.page(RequestFilter(), (T0 + 107, "p14"), 5)
            out["spend"] = reader.key_spend(SINCE, BUCKET_S)
            out["refusals"] = reader.key_refusals(SINCE)
        return out

    lite = reads(f"sqlite:///{tmp_path / 'r.db'}")
    pg = reads(pg_server.create_database())
    assert len(lite[str(RequestFilter())]) == len(recorded)
    for name in lite:
        assert pg[name] == lite[name], name
