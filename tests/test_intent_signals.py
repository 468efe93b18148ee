"""The request-path scan: which signal a conversation shows, read from its words alone."""

from __future__ import annotations

import pytest

from turnout.intent.conversation import Turn, last_exchange, prefix_hash, turns_of
from turnout.intent.newquestion import swapped
from turnout.intent.signals import Signal, decide_rephrase, is_clarifying, is_correction, scan

ASKED = "How do I sort a list in Python?"
ANSWER = "Use sorted(items), or items.sort() to sort in place."


def talk(*texts: str) -> list[Turn]:
    return [Turn("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]


@pytest.mark.parametrize(
    "text",
    [
        "No, I meant sorting by the second element.",
        "That's not what I asked.",
        "You misunderstood me, I need it descending.",
        "Nein, ich meinte absteigend.",
        "Non, je voulais dire par ordre décroissant.",
        "No, me refería al orden descendente.",
        "No, intendevo in ordine decrescente.",
        "Nee, ik bedoelde aflopend.",
        "Não, eu quis dizer em ordem decrescente.",
        "That’s wrong — descending, please.",  # a typographic apostrophe
    ],
)
def test_an_explicit_negation_of_the_answer_is_a_correction(text: str) -> None:
    assert is_correction(text)
    assert scan(talk(ASKED, ANSWER, text), semantic=False).signal is Signal.CORRECTION


@pytest.mark.parametrize(
    "text",
    [
        "No thanks, that's all I needed.",
        "Nein danke, das reicht.",
        "Non merci, c'est tout.",
        "Thanks! And how do I remove duplicates?",
        "Is there a way to do it in place without a copy?",
    ],
)
def test_a_dismissal_or_an_ordinary_follow_up_is_not_a_correction(text: str) -> None:
    assert not is_correction(text)


def test_an_answer_that_asks_what_was_meant_makes_the_next_turn_a_clarification() -> None:
    turns = talk(
        "Sort my data.", "Do you mean a Python list or a DataFrame?", "No, I meant the DataFrame."
    )
    assert scan(turns, semantic=False).signal is Signal.CLARIFICATION


@pytest.mark.parametrize(
    ("answer", "asks"),
    [
        ("Which operating system are you on?", True),
        ("¿Te refieres a una lista de Python o a un DataFrame?", True),
        ("Bedoel je een lijst of een DataFrame?", True),
        ("15% of 80 is 12. Would you like me to show the steps?", False),  # an offer
        ("Use sorted(). Anything else?", False),
        ("Use sorted(items); it returns a new list.", False),
    ],
)
def test_only_a_question_about_what_was_meant_is_clarifying(answer: str, asks: bool) -> None:
    assert is_clarifying(answer) is asks


def test_a_verbatim_repeat_of_the_question_is_a_rephrase_without_the_model() -> None:
    assert scan(talk(ASKED, ANSWER, ASKED), semantic=True).signal is Signal.REPHRASE


def test_an_open_case_is_left_to_the_semantic_check_with_both_turns() -> None:
    s = scan(talk(ASKED, ANSWER, "How can I get a Python list sorted?"), semantic=True)
    assert s.signal is None and s.undecided == (ASKED, "How can I get a Python list sorted?")
    assert s.answer_at == 1


@pytest.mark.parametrize(
    ("asked", "answer", "new"),
    [
        ("What's the capital of Australia?", "The capital of Australia is Canberra.",
         "What's the capital of New Zealand?"),
        (ASKED, ANSWER, "How do I sort a dictionary by value in Python?"),
        ("Wie lange muss ein Ei kochen?", "Für ein hartes Ei etwa 10 Minuten.",
         "Wie lange muss ein Ei pochiert werden?"),
        ("Combien de calories dans une banane ?", "Environ 105 calories.",
         "Combien de calories dans une pomme ?"),
        ("How do I center a div in CSS?", "Use display: flex with justify-content: center.",
         "How do I also center the text inside it?"),  # builds on the answer
        ("¿Cuál es la capital de Australia?", "Canberra.", "¿Y qué pasa con Nueva Zelanda?"),
    ],
)  # fmt: skip
def test_a_new_question_on_the_same_topic_is_settled_without_the_model(
    asked: str, answer: str, new: str
) -> None:
    s = scan(talk(asked, answer, new), semantic=True)
    assert s.signal is None and s.undecided is None and s.new_question


@pytest.mark.parametrize(
    ("asked", "new"),
    [
        ("What's the capital of Australia?", "Which city is Australia's capital?"),
        ("Quante calorie ha una banana?", "Quante calorie ci sono in una banana?"),  # small words
        ("Comment faire des crêpes ?", "Quelle est la recette des crêpes ?"),  # a new opening
    ],
)
def test_a_restatement_that_keeps_what_it_asks_about_is_left_to_the_model(
    asked: str, new: str
) -> None:
    s = scan(talk(asked, "An answer.", new), semantic=True)
    assert s.undecided == (asked, new) and not s.new_question


def test_a_fixed_typo_or_a_repeat_is_not_a_new_question() -> None:
    assert not swapped("How do I sort a lsit in Python?", ANSWER, ASKED, 0.4)
    repeat = "Can I also sort it in place?"  # a follow-up word the question itself had
    assert scan(talk(repeat, ANSWER, repeat), semantic=True).signal is Signal.REPHRASE


def test_a_word_the_answer_used_is_not_new() -> None:
    answer = "Canberra; Sydney is the largest city."
    assert not swapped("What's the capital of Australia?", answer, "What's the largest city?", 0.4)
    assert swapped("What's the capital of Australia?", answer, "What's the capital of Fiji?", 0.4)


def test_ich_meinen_opens_a_restatement_not_a_correction() -> None:
    assert not is_correction("Wie stelle ich meinen Router auf Werkseinstellungen zurück?")
    assert is_correction("Nein, ich meine den anderen Router.")


def test_without_the_model_only_a_cue_with_overlap_makes_a_rephrase() -> None:
    assert decide_rephrase(0.6, True, None)
    assert not decide_rephrase(0.8, False, None)  # a new question on the same topic overlaps too
    assert decide_rephrase(0.95, False, None)


def test_a_resent_conversation_is_a_regenerate_whatever_it_says() -> None:
    assert scan(talk(ASKED), resent=True).signal is Signal.REGENERATE


def test_a_first_turn_has_no_exchange_and_no_signal() -> None:
    assert scan(talk(ASKED)).signal is None
    assert last_exchange(talk(ASKED)) is None


def test_the_prefix_hash_names_the_conversation_an_answer_continued() -> None:
    body = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [
        {"type": "text", "text": ASKED}]}]}  # fmt: skip
    earlier = turns_of(body)
    later = [*earlier, Turn("assistant", ANSWER), Turn("user", "No, I meant descending.")]
    assert prefix_hash(later[:2]) == prefix_hash(earlier)
    assert prefix_hash(later) != prefix_hash(earlier)
    assert prefix_hash([Turn("user", "ab"), Turn("user", "c")]) != prefix_hash(
        [Turn("user", "a"), Turn("user", "bc")]
    )
