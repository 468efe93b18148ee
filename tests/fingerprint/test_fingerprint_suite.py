"""Probe suites: the built-in one, and user suites in YAML with precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from turnout.backends.base import Operation
from turnout.config import ConfigError
from turnout.fingerprint.suite import builtin_suite, load_suite, parse_suite


def test_builtin_suite_spans_languages_and_task_types() -> None:
    suite = builtin_suite()
    tags = {t for p in suite.probes for t in p.tags}
    assert len(suite.probes) == 25
    assert {"en", "de", "fr", "es", "pt", "zh", "ru", "ja"} <= tags
    assert {"code", "math", "yes-no", "multiple-choice", "dialogue", "creative"} <= tags
    assert all(p.operation is Operation.COMPLETION for p in suite.probes)  # base models too


def test_builtin_suite_is_balanced_between_answers() -> None:
    ids = {p.id for p in builtin_suite().probes}
    # Yes and no answers, different right letters, a user who is wrong and one who is right.
    assert {"yesno-yes", "yesno-no", "choice-b", "choice-c", "user-wrong", "user-right"} <= ids


def test_the_digest_changes_with_what_is_sent_but_not_with_how_much() -> None:
    suite = builtin_suite()
    assert suite.with_options(samples_per_probe=2).digest() == suite.digest()
    assert suite.with_options(max_tokens=8).digest() != suite.digest()
    assert suite.with_options(probes=5).digest() != suite.digest()


def test_a_chat_only_endpoint_gets_the_prompts_as_user_turns() -> None:
    chat = builtin_suite().with_options(chat=True)
    first = chat.probes[0]
    assert first.operation is Operation.CHAT
    assert first.body() == {
        "messages": [{"role": "user", "content": builtin_suite().probes[0].prompt}]
    }


def test_user_suite_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "support.yaml"
    path.write_text(
        "samples_per_probe: 4\n"
        "sampling: {temperature: 0.8, max_tokens: 24}\n"
        "probes:\n"
        "  - {id: refund, prompt: 'Our refund policy says'}\n"
        "  - id: greet\n"
        "    messages: [{role: user, content: Hello!}]\n"
    )
    suite = load_suite(path)
    assert suite.name == "support"
    assert suite.samples_per_probe == 4
    assert suite.sampling.temperature == 0.8 and suite.sampling.max_tokens == 24
    assert [p.operation for p in suite.probes] == [Operation.COMPLETION, Operation.CHAT]


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("probes: []", "probes", "non-empty"),
        ("probes: [{id: a}]", "probes[0]", "exactly one of"),
        ("probes: [{id: a, prompt: x, colour: red}]", "probes[0].colour", "unknown key"),
        ("probes: [{id: a, prompt: x}, {id: a, prompt: y}]", "probes", "duplicate"),
        (
            "sampling: {max_tokens: 0}\nprobes: [{id: a, prompt: x}]",
            "sampling.max_tokens",
            "at least",
        ),
        ("probes: [{id: a, messages: [{role: user}]}]", "probes[0].messages[0]", "role"),
    ],
)
def test_suite_errors_name_the_file_and_key(text: str, where: str, what: str) -> None:
    import yaml

    with pytest.raises(ConfigError) as err:
        parse_suite(yaml.safe_load(text), "suite.yaml")
    assert err.value.path == where
    assert what in err.value.message
    assert str(err.value).startswith("suite.yaml: ")
