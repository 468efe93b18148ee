"""The scanner over requests: where text lives in them, declared patterns and terms, overlaps,
and a summary that carries kinds and counts but never values."""

import pytest

from turnout.privacy import Finding, Scanner, summary


def test_scan_reports_spans_in_text_order() -> None:
    text = "a@b.io then 4111 1111 1111 1111"
    found = Scanner().scan(text)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [
        ("email", "a@b.io"),
        ("payment_card", "4111 1111 1111 1111"),
    ]
    assert all(text[f.start : f.end] == f.value for f in found)


def test_clean_text_has_no_findings() -> None:
    assert Scanner().scan("Summarise the attached meeting notes in three bullet points.") == []


def test_scan_messages_covers_string_content_parts_and_tool_call_arguments() -> None:
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "mail me: ann@example.org"},
        {"role": "user", "content": [{"type": "text", "text": "card 4111111111111111"},
                                     {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "1", "type": "function",
             "function": {"name": "call", "arguments": '{"phone": "+1 415 555 2671"}'}}]},
        {"role": "tool", "tool_call_id": "1", "content": "ok, ssn 123-45-6789"},
    ]  # fmt: skip
    kinds = {f.kind for f in Scanner().scan_messages(messages)}
    assert kinds == {"email", "payment_card", "phone", "us_ssn"}


def test_scan_request_covers_the_prompt_of_a_text_completion() -> None:
    scanner = Scanner()
    assert summary(scanner.scan_request({"prompt": "to bob@example.com"})) == {"email": 1}
    assert summary(scanner.scan_request({"prompt": ["x", "10.1.2.3 y"]})) == {"ip_address": 1}


def test_scan_messages_leaves_the_messages_unchanged() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "ann@example.org"}]}]
    before = repr(messages)
    Scanner().scan_messages(messages)
    assert repr(messages) == before


def test_summary_has_kinds_and_counts_and_no_values() -> None:
    found = Scanner().scan("ann@example.org, bob@example.org, 10.1.2.3")
    assert summary(found) == {"email": 2, "ip_address": 1}
    assert "example" not in repr(summary(found))


def test_a_finding_does_not_show_its_value_in_repr() -> None:
    finding = Finding("email", 0, 15, "ann@example.org")
    assert "ann@example.org" not in repr(finding)


def test_custom_patterns_are_reported_under_their_names() -> None:
    scanner = Scanner(custom_patterns={"employee_id": r"\bEMP-\d{6}\b"})
    assert [(f.kind, f.value) for f in scanner.scan("ask EMP-123456")] == [
        ("custom:employee_id", "EMP-123456")
    ]


def test_an_invalid_custom_pattern_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="broken"):
        Scanner(custom_patterns={"broken": "(unclosed"})


def test_terms_match_whole_words_case_insensitively() -> None:
    scanner = Scanner(terms=["Project Falcon", "acme"])
    found = scanner.scan("project falcon for ACME, not acmeville")
    assert [f.value for f in found] == ["project falcon", "ACME"]
    assert {f.kind for f in found} == {"term"}


def test_overlapping_findings_keep_the_widest() -> None:
    scanner = Scanner(terms=["example"])
    assert [(f.kind, f.value) for f in scanner.scan("ann@example.org")] == [
        ("email", "ann@example.org")
    ]


def test_an_iban_wins_over_the_card_like_digits_inside_it() -> None:
    # "5779 3668 5955 09" alone is a Luhn-valid Maestro-range number
    assert [f.kind for f in Scanner().scan("5779 3668 5955 09")] == ["payment_card"]
    assert [f.kind for f in Scanner().scan("GB64 YLCU 5779 3668 5955 09")] == ["iban"]


def test_kinds_can_be_limited() -> None:
    scanner = Scanner(kinds=["email"])
    assert summary(scanner.scan("ann@example.org 10.1.2.3 4111111111111111")) == {"email": 1}


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        Scanner(kinds=["postcode"])


def test_remembered_scans_equal_fresh_ones_and_the_memory_is_bounded() -> None:
    from turnout.privacy.scanner import MEMO_MIN_CHARS

    plain, remembering = Scanner(), Scanner(memo=2)
    texts = [
        ("filler text " * 60)[: MEMO_MIN_CHARS + 40]
        + f" mail me{i}@example.com, card 4111 1111 1111 1111"
        for i in range(4)
    ]
    for _ in range(3):
        for text in texts:
            fresh = plain.scan(text)
            assert [f.kind for f in fresh] == ["email", "payment_card"]
            assert remembering.scan(text) == fresh
    assert len(remembering._memo) == 2  # the oldest were forgotten
    first = remembering.scan(texts[-1])
    first.clear()  # a caller's list is its own: clearing it leaves the memory intact
    assert remembering.scan(texts[-1]) == plain.scan(texts[-1])
    short = "card 4111 1111 1111 1111"
    assert remembering.scan(short) == plain.scan(short)
    assert short not in remembering._memo
