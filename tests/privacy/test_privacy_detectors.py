"""What the built-in detectors find, and the lookalikes they leave alone."""

import pytest

from turnout.privacy import Scanner

SCANNER = Scanner()


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in SCANNER.scan(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("mail john.doe+x@example.co.uk today", "email", "john.doe+x@example.co.uk"),
        ("<maria@bücher.de>", "email", "maria@bücher.de"),
        ("call +1 415 555 2671 now", "phone", "+1 415 555 2671"),
        ("(591)341-7776", "phone", "(591)341-7776"),
        ("office 206.269.0743x9150", "phone", "206.269.0743x9150"),
        ("ring 020 7946 0958", "phone", "020 7946 0958"),
        ("+44(0)115 4960914", "phone", "+44(0)115 4960914"),
        ("+49 (0) 9141 777631", "phone", "+49 (0) 9141 777631"),
        ("04 15 39 15 00", "phone", "04 15 39 15 00"),
        ("01.23.45.67.89", "phone", "01.23.45.67.89"),
        ("080-9141-7776", "phone", "080-9141-7776"),
        ("Telefono: 3420837783", "phone", "3420837783"),
        ("Paid with 4111 1111 1111 1111.", "payment_card", "4111 1111 1111 1111"),
        ("amex 3782-822463-10005", "payment_card", "3782-822463-10005"),
        ("card 5555555555554444", "payment_card", "5555555555554444"),
        ("IBAN DE89 3704 0044 0532 0130 00 EUR", "iban", "DE89 3704 0044 0532 0130 00"),
        ("to GB82WEST12345698765432.", "iban", "GB82WEST12345698765432"),
        ("ssn 123-45-6789", "us_ssn", "123-45-6789"),
        ("(123-45-6789)", "us_ssn", "123-45-6789"),
        ("SSN: 123456789", "us_ssn", "123456789"),
        ("host 192.168.1.20:8080", "ip_address", "192.168.1.20"),
        ("net 10.20.0.0/16", "ip_address", "10.20.0.0"),
        ("ssh admin@203.0.113.9 -p 22", "ip_address", "203.0.113.9"),
        ("at 435 192.168.1.77", "ip_address", "192.168.1.77"),
        ("v6 2001:db8::8a2e:370:7334.", "ip_address", "2001:db8::8a2e:370:7334"),
        ("::ffff:192.0.2.128", "ip_address", "::ffff:192.0.2.128"),
    ],
)
def test_finds(text: str, kind: str, value: str) -> None:
    assert (kind, value) in kinds(text)


@pytest.mark.parametrize(
    "text",
    [
        "Order #4829104823 has shipped",
        "order number 140320702997",
        "Logged at 2024-03-15T10:22:31Z",
        "Meeting on 2024-03-15 10:30:00 in room 212",
        "Termin am 15.03.2024 um 14:30",
        "Due 03/15/2024 at 10:30 AM",
        "ts=1710498151 latency_ms=12",
        "created_at: 1710498151234",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "commit 3f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49",
        "request_id=550e8400-e29b-41d4-a716-446655440000",
        "Upgrade to v2.14.3 from 1.24.0",
        "AssemblyVersion 1.0.0.0",
        "Windows 10.0.19045.3803",
        "version 4.2.10.1",
        "Tracking 1Z999AA10123456784",
        "FedEx 748923410090 arrives Monday",
        "USPS 9400 1000 0000 0000 0000 00",
        "Total: $1,234,567.89",
        "a city of 3 420 837 people",
        "ISBN 978-3-16-148410-0",
        "listening on 0.0.0.0:8080 and 127.0.0.1",
        "netmask 255.255.255.0",
        "std::vector<int> v; a::b::c",
        "at 10:30:45 and 12:00",
        "MAC 00:1a:2b:3c:4d:5e",
        "3.14159 and 2.71828",
        "Reference 4111111111111111",
        "Ticket 2024-118-4471",
        "Ignore 666-12-3456 and 900-12-3456",
    ],
)
def test_leaves_alone(text: str) -> None:
    assert kinds(text) == []


@pytest.mark.parametrize(
    "key",
    [
        "sk-" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7sU9wY1aC3",
        "sk-proj-" + "Ab1_Cd2-Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz3",
        "sk-ant-api03-" + "Xy9_Zw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7" + "AA",
        "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "github_pat_" + "11ABCDEFG0123456789abc_" + "x" * 20 + "Y1z2" * 5,
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "AKIAIOSFODNN7EXAMPLE",
        "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ],
)
def test_finds_api_keys_by_their_issuers_prefix(key: str) -> None:
    assert ("secret", key) in kinds(f"my key is {key} ok")


def test_finds_a_private_key_block() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
    assert kinds(f"here:\n{pem}\nthanks") == [("secret", pem)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('password = "(p@ss)W0rd!"', "(p@ss)W0rd!"),
        ("DB_PASSWORD=hunter22", "hunter22"),
        ('"api_key": "3f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d"', "3f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d"),
        ("client_secret: Zx9kQ2mV7pL4rT8wYb3nH6cF", "Zx9kQ2mV7pL4rT8wYb3nH6cF"),
        ("Authorization: Bearer abcDEF1234567890ghiJKL", "abcDEF1234567890ghiJKL"),
    ],
)
def test_finds_secrets_assigned_to_secret_like_names(text: str, value: str) -> None:
    assert kinds(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "token_count = 2048",
        "max_tokens: 4096",
        "auth_method: oauth2_client_credentials",
        "password = os.environ['DB_PASSWORD']",
        "password = get_password()",
        "password = settings.DB_PASSWORD",
        "DB_PASSWORD=${DB_PASSWORD}",
        "api_key: <your-api-key>",
        "password: ********",
        "secret_santa = true",
        "the task-management-system-for-teams rocks",
        "pip install scikit-learn; sk-learn is its nickname",
    ],
)
def test_leaves_alone_code_and_placeholders_around_secret_names(text: str) -> None:
    assert kinds(text) == []
