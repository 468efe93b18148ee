"""The checks that tell an identifier from a lookalike."""

import pytest

from turnout.privacy.validators import (
    iban_valid,
    ipv4_valid,
    luhn_valid,
    payment_card_valid,
    shannon_entropy,
    us_ssn_valid,
)


@pytest.mark.parametrize(
    "number",
    ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
     "3530111333300000", "30569309025904", "4222222222222", "2223003122003222"],
)  # fmt: skip
def test_published_test_card_numbers_are_valid_cards(number: str) -> None:
    assert luhn_valid(number)
    assert payment_card_valid(number)


def test_one_changed_digit_breaks_luhn() -> None:
    assert not luhn_valid("4111111111111112")


def test_luhn_valid_number_outside_issuer_ranges_is_not_a_card() -> None:
    assert luhn_valid("9111111111111110")
    assert not payment_card_valid("9111111111111110")


def test_visa_length_must_be_13_16_or_19() -> None:
    assert luhn_valid("411111111111116")  # 15 digits, Luhn-valid, but no Visa has 15
    assert not payment_card_valid("411111111111116")


@pytest.mark.parametrize(
    "iban",
    ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606",
     "NL91ABNA0417164300", "BE68539007547034", "NO9386011117947"],
)  # fmt: skip
def test_published_example_ibans_pass_mod_97(iban: str) -> None:
    assert iban_valid(iban)


def test_iban_with_a_changed_digit_fails_mod_97() -> None:
    assert not iban_valid("DE89370400440532013001")


def test_iban_with_the_wrong_length_for_its_country_fails() -> None:
    assert not iban_valid("DE8937040044053201300")


@pytest.mark.parametrize(
    ("area", "group", "serial", "ok"),
    [("123", "45", "6789", True), ("000", "45", "6789", False), ("666", "45", "6789", False),
     ("900", "45", "6789", False), ("123", "00", "6789", False), ("123", "45", "0000", False)],
)  # fmt: skip
def test_ssn_rules(area: str, group: str, serial: str, ok: bool) -> None:
    assert us_ssn_valid(area, group, serial) is ok


@pytest.mark.parametrize(
    ("text", "ok"),
    [("192.168.1.20", True), ("256.1.1.1", False), ("1.2.3", False), ("01.2.3.4", False)],
)
def test_ipv4_octets(text: str, ok: bool) -> None:
    assert ipv4_valid(text) is ok


def test_entropy_of_random_token_exceeds_that_of_a_word() -> None:
    assert shannon_entropy("aaaaaaaa") == 0.0
    assert shannon_entropy("Zx9kQ2mV7pL4rT8w") > 3.5 > shannon_entropy("password")
