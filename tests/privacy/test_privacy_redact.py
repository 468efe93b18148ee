"""Redaction and restoration: placeholders out, originals back, streams cut anywhere."""

import json

from turnout.privacy import Redactor, Restorer, Scanner

TEXT = "Mail ann@example.org or bob@example.org; again ann@example.org. Card 4111111111111111."


def test_same_value_gets_the_same_placeholder_and_kinds_count_separately() -> None:
    redactor = Redactor(Scanner())
    out, found = redactor.redact_text(TEXT)
    assert out == ("Mail [EMAIL_1] or [EMAIL_2]; again [EMAIL_1]. Card [PAYMENT_CARD_1].")
    assert len(found) == 4
    assert redactor.mapping == {
        "[EMAIL_1]": "ann@example.org",
        "[EMAIL_2]": "bob@example.org",
        "[PAYMENT_CARD_1]": "4111111111111111",
    }


def test_placeholders_are_stable_across_turns_of_a_conversation() -> None:
    redactor = Redactor(Scanner())
    redactor.redact_text("from bob@example.org")
    out, _ = redactor.redact_text("to ann@example.org, cc bob@example.org")
    assert out == "to [EMAIL_2], cc [EMAIL_1]"


def test_a_redactor_resumes_from_a_saved_mapping() -> None:
    first = Redactor(Scanner())
    first.redact_text("bob@example.org")
    resumed = Redactor(Scanner(), first.mapping)
    out, _ = resumed.redact_text("bob@example.org and ann@example.org")
    assert out == "[EMAIL_1] and [EMAIL_2]"


def test_a_placeholder_already_in_the_text_is_not_reused() -> None:
    redactor = Redactor(Scanner())
    out, _ = redactor.redact_text("literal [EMAIL_1] and ann@example.org")
    assert out == "literal [EMAIL_1] and [EMAIL_2]"
    assert Restorer(redactor.mapping).restore(out) == "literal [EMAIL_1] and ann@example.org"


def test_custom_kinds_become_placeholder_labels() -> None:
    redactor = Redactor(Scanner(custom_patterns={"employee-id": r"EMP-\d{6}"}))
    assert redactor.redact_text("EMP-123456")[0] == "[CUSTOM_EMPLOYEE_ID_1]"


def test_restore_puts_originals_back() -> None:
    redactor = Redactor(Scanner())
    out, _ = redactor.redact_text(TEXT)
    assert redactor.restorer().restore(out) == TEXT


def test_restore_leaves_unknown_placeholders_alone() -> None:
    restorer = Restorer({"[EMAIL_1]": "a@b.io"})
    assert restorer.restore("[EMAIL_1] [EMAIL_9] [X") == "a@b.io [EMAIL_9] [X"


def test_redact_request_copies_and_leaves_the_original_untouched() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "I am ann@example.org"},
            {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {
                "name": "send", "arguments": json.dumps({"to": "ann@example.org"})}}]},
        ],
    }  # fmt: skip
    before = json.dumps(body)
    redactor = Redactor(Scanner())
    out, found = redactor.redact_request(body)
    assert json.dumps(body) == before
    assert out["messages"][0]["content"] == "I am [EMAIL_1]"
    args = json.loads(out["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert args == {"to": "[EMAIL_1]"}  # still valid JSON
    assert [f.kind for f in found] == ["email", "email"]


def test_redact_request_covers_a_completion_prompt() -> None:
    out, _ = Redactor(Scanner()).redact_request({"prompt": "call +1 415 555 2671"})
    assert out["prompt"] == "call [PHONE_1]"


def _stream(restorer: Restorer, pieces: list[str]) -> str:
    return "".join(restorer.feed(p) for p in pieces) + restorer.flush()


def test_stream_split_at_every_position_restores_exactly() -> None:
    redactor = Redactor(Scanner())
    redacted, _ = redactor.redact_text(TEXT)
    response = f"Sure: {redacted} [EMAIL_9] [ and [EMAIL_"
    expected = redactor.restorer().restore(response)
    for cut in range(len(response) + 1):
        got = _stream(redactor.restorer(), [response[:cut], response[cut:]])
        assert got == expected, cut
    for a in range(0, len(response), 3):
        for b in range(a, len(response), 5):
            pieces = [response[:a], response[a:b], response[b:]]
            assert _stream(redactor.restorer(), pieces) == expected, (a, b)


def test_stream_one_character_at_a_time() -> None:
    redactor = Redactor(Scanner())
    redacted, _ = redactor.redact_text(TEXT)
    assert _stream(redactor.restorer(), list(redacted)) == TEXT


def test_stream_holds_back_only_a_possible_placeholder_prefix() -> None:
    restorer = Restorer({"[EMAIL_1]": "a@b.io"})
    assert restorer.feed("Hello [EM") == "Hello "
    assert restorer.feed("AIL_1] and [x") == "a@b.io and [x"
    assert restorer.feed("[EMAIL_") == ""
    assert restorer.flush() == "[EMAIL_"


def test_stream_without_placeholders_passes_text_straight_through() -> None:
    restorer = Restorer({})
    assert restorer.feed("a [b") == "a [b"
    assert restorer.flush() == ""
