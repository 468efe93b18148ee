"""Hand-edited cassettes: checked on load, errors name the file, the entry and the field."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from toolkit_helpers import upstream_config
from upstream import ScriptedUpstream, Step

from turnout.testing import Cassette, CassetteError, InProcessGateway, Mode
from turnout.testing.cassette_schema import problems

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real cassette: a completion, a stream and a recorded failure, through a real gateway."""
    path = tmp_path_factory.mktemp("rec") / "c.json"
    with ScriptedUpstream() as up:
        up.script(Step(content="first answer"), Step(content="streamed answer"), Step(status=400))
        gw = InProcessGateway(upstream_config(up.base_url), cassette=Cassette.load(path, Mode.ONCE))
        with gw.start().openai() as client:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
            for _ in client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "b"}], stream=True
            ):
                pass
            with pytest.raises(Exception, match="400"):
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "c"}]
                )
        gw.stop()
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


Edit = Callable[[dict[str, Any]], None]


def edited(doc: dict[str, Any], tmp_path: Path, edit: Edit) -> Path:
    changed = copy.deepcopy(doc)
    edit(changed)
    path = tmp_path / "edited.json"
    path.write_bytes(orjson.dumps(changed, option=orjson.OPT_INDENT_2))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(CassetteError) as info:
        Cassette.load(path)
    return str(info.value)


def test_a_recorded_cassette_is_valid_and_so_are_the_example_cassettes(
    recorded: dict[str, Any],
) -> None:
    assert problems(recorded) == []
    assert [sorted(e["response"]) for e in recorded["entries"]] == [
        ["completion"], ["stream"], ["error"]]  # fmt: skip
    examples = sorted((ROOT / "examples").rglob("cassettes/**/*.json"))
    assert examples
    for path in examples:
        assert problems(orjson.loads(path.read_bytes())) == [], path


def rename(where: Callable[[dict[str, Any]], dict[str, Any]], old: str, new: str) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        obj = where(doc)
        obj[new] = obj.pop(old)

    return edit


def first(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["entries"][0]
    return entry


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (rename(lambda d: first(d)["response"], "completion", "completon"),
         "entry 0 (key '{k0}', repeat 0): response: unknown field 'completon' "
         "(allowed: completion, error, stream)"),
        (rename(lambda d: first(d)["response"]["completion"], "choices", "choice"),
         "entry 0 (key '{k0}', repeat 0): response.completion: 'choices' is missing"),
        (lambda d: first(d)["response"]["completion"].update(choices=[]),
         "entry 0 (key '{k0}', repeat 0): response.completion.choices: [] should be non-empty"),
        (lambda d: d["entries"][2]["response"]["error"].update(failure="rate_limit"),
         "entry 2 (key '{k2}', repeat 0): response.error.failure: 'rate_limit' is not one of"),
        (lambda d: d["entries"][1]["response"]["stream"][1].update(raw="oops"),
         "entry 1 (key '{k1}', repeat 0): response.stream[1]: {{'data': "),
        (lambda d: first(d).update(repeat=-1),
         "entry 0 (key '{k0}', repeat -1): repeat: -1 is less than the minimum of 0"),
        (lambda d: first(d).pop("response"),
         "entry 0 (key '{k0}', repeat 0): (the entry): 'response' is missing"),
        (lambda d: first(d).update(response={}),
         "entry 0 (key '{k0}', repeat 0): response: is empty: it needs a completion, a stream "
         "or an error"),
        (lambda d: d.update(turnout_cassette=2), "turnout_cassette: 1 was expected"),
    ],
    ids=["misspelt-response-field", "misspelt-completion-field", "no-choices", "bad-failure",
         "two-event-fields", "negative-repeat", "no-response", "empty-response", "version"],
)  # fmt: skip
def test_an_edit_that_breaks_the_format_names_file_entry_and_field(
    recorded: dict[str, Any], tmp_path: Path, edit: Edit, expected: str
) -> None:
    path = edited(recorded, tmp_path, edit)
    message = load_error(path)
    keys = {f"k{i}": e["key"] for i, e in enumerate(recorded["entries"])}
    assert message.startswith(f"{path}: not a valid turnout cassette")
    assert expected.format(**keys) in message


def test_an_edited_request_under_its_old_key_is_an_error_that_gives_the_new_key(
    recorded: dict[str, Any], tmp_path: Path
) -> None:
    def edit(doc: dict[str, Any]) -> None:
        first(doc)["request"]["messages"][0]["content"] = "a, edited by hand"

    path = edited(recorded, tmp_path, edit)
    message = load_error(path)
    assert f"entry 0 (key '{first(recorded)['key']}', repeat 0): request: edited" in message
    new_key = message.split("set key to '")[1].split("'")[0]
    fixed = orjson.loads(path.read_bytes())
    first(fixed)["key"] = new_key
    path.write_bytes(orjson.dumps(fixed))
    assert Cassette.load(path).recorded[(new_key, 0)].request["messages"][0]["content"] == (
        "a, edited by hand"
    )


def test_raw_stream_events_must_hold_json_and_files_must_be_json(
    recorded: dict[str, Any], tmp_path: Path
) -> None:
    path = edited(recorded, tmp_path, lambda d: d["entries"][1]["response"]["stream"].__setitem__(
        0, {"raw": "data: {not json\n\n"}))  # fmt: skip
    assert "entry 1 (key " in load_error(path)
    assert "response.stream[0].raw: its data lines are not one JSON value" in load_error(path)
    path.write_text('{"turnout_cassette": 1, "entries": [')
    assert load_error(path).startswith(f"{path}: not a valid turnout cassette: not JSON (")


@pytest.fixture
def up() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as u:
        yield u


def test_a_broken_cassette_fails_the_test_with_its_problems_not_an_http_500(
    pytester: pytest.Pytester,
    up: ScriptedUpstream,
    recorded: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOOLKIT_CONFIG", upstream_config(up.base_url))
    pytester.makepyfile(
        test_agent="""
import os

def test_agent(turnout_gateway):
    gw = turnout_gateway(os.environ["TOOLKIT_CONFIG"])
    gw.openai().chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
"""
    )
    folder = pytester.path / "cassettes" / "test_agent"
    folder.mkdir(parents=True)
    path = edited(recorded, folder, rename(lambda d: first(d)["response"], "completion", "answer"))
    path.rename(folder / "test_agent.json")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert f"{folder / 'test_agent.json'}: not a valid turnout cassette" in text
    assert "response: unknown field 'answer'" in text
    assert "Traceback" not in text and "another exception" not in text and not up.requests


def test_cassette_check_lists_the_problems_and_exits_1(
    recorded: dict[str, Any], tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps(recorded))
    bad = edited(recorded, tmp_path, lambda d: first(d).update(repeat="0"))

    def check(*files: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "turnout.cli", "cassette", "check", *map(str, files)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    ok = check(good)
    assert ok.returncode == 0 and f"{good}: ok, 3 recorded calls" in ok.stdout
    failed = check(good, bad)
    assert failed.returncode == 1
    assert "repeat: '0' is not of type 'integer'" in failed.stderr


def test_serve_refuses_a_broken_cassette_with_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "tape.json"
    path.write_text('{"turnout_cassette": 1, "entries": [{"key": "x"}]}')
    done = subprocess.run(
        [sys.executable, "-m", "turnout", "serve", "--record", str(path), "--cassette-mode",
         "none", "--port", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"error: {path}: not a valid turnout cassette" in done.stderr
    assert "entry 0 (key 'x', repeat None): (the entry): 'repeat' is missing" in done.stderr
    assert "Traceback" not in done.stderr
