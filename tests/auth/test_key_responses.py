"""A stored response belongs to the client key that created it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from gateway_harness import RunningGateway
from keys_helpers import create_key, gateway_yaml
from upstream import ScriptedUpstream

Factory = Callable[[str], RunningGateway]


def test_only_the_creating_key_reads_continues_or_deletes_a_response(
    gateway_factory: Factory, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    store = tmp_path / "t.db"
    owner, other = create_key(store, "--name", "owner"), create_key(store, "--name", "other")
    gw = gateway_factory(gateway_yaml(upstream, store))
    mine = openai.OpenAI(base_url=gw.base_url, api_key=owner["key"], max_retries=0)
    theirs = openai.OpenAI(base_url=gw.base_url, api_key=other["key"], max_retries=0)
    created = mine.responses.create(model="chat", input="hi")

    with pytest.raises(openai.NotFoundError):
        theirs.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError, match="not found"):
        theirs.responses.create(model="chat", input="and?", previous_response_id=created.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(created.id)
    anonymous = gw.http.get(f"/v1/responses/{created.id}")
    assert anonymous.status_code == 401

    assert mine.responses.retrieve(created.id).id == created.id  # still there for its owner
    follow = mine.responses.create(model="chat", input="and?", previous_response_id=created.id)
    assert follow.status == "completed"
    mine.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        mine.responses.retrieve(created.id)
