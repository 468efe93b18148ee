"""The record of a Responses request: the tools read it like any other."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import openai
from gateway_harness import RunningGateway
from upstream import ScriptedUpstream, Step

from turnout.migrate.records import select

Factory = Callable[[str], RunningGateway]


def test_requests_and_trace_show_the_format_in_and_out_and_replay_selects_it(
    upstream: ScriptedUpstream, gateway_factory: Factory
) -> None:
    gw = gateway_factory(
        f"""
deployments:
  up: {{kind: openai, base_url: "{upstream.base_url}", model: up-model}}
models:
  assistant: {{deployments: [up]}}
"""
    )
    upstream.script(Step(content="Recorded."))
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    made = client.responses.create(model="assistant", input="Record me", instructions="Be kind.")
    run_id = made.id.removeprefix("resp_")
    gw.gateway.writer.flush()
    url = gw.gateway.config.store.url

    def cli(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "turnout", *args, "--store", url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return out.stdout

    assert "responses→chat.completions" in cli("requests")
    assert "wire responses→chat.completions" in cli("trace", run_id)
    [recorded] = select(url, models=("assistant",))
    assert recorded.id == run_id and recorded.operation == "chat"
    assert recorded.body["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Record me"},
    ]  # what replay sends: the chat body turnout ran
    assert recorded.answer.text == "Recorded."
