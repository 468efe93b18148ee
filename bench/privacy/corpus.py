"""A labelled corpus for the sensitivity detectors: Faker values in several locales, set in
sentences, mixed with PII-free text that looks risky (order numbers, timestamps, hashes, version
strings, tracking numbers, amounts). Every document knows where its sensitive spans are.

Deterministic for a seed; Faker is a bench-only dependency (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from faker import Faker

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR")
KINDS = ("email", "phone", "payment_card", "iban", "us_ssn", "ip_address", "secret")
ALNUM = string.ascii_letters + string.digits


@dataclass
class Doc:
    text: str
    locale: str
    gold: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, start, end)
    form: str = ""  # which template/variant produced the sensitive value, for breakdowns


class Builder:
    def __init__(self, locale: str) -> None:
        self.parts: list[str] = []
        self.gold: list[tuple[str, int, int]] = []
        self.locale = locale

    def text(self, s: str) -> Builder:
        self.parts.append(s)
        return self

    def value(self, kind: str, s: str) -> Builder:
        start = sum(map(len, self.parts))
        self.parts.append(s)
        self.gold.append((kind, start, start + len(s)))
        return self

    def doc(self, form: str = "") -> Doc:
        return Doc("".join(self.parts), self.locale, self.gold, form)


# ---- sensitive values -------------------------------------------------------------------------

PHONE_CONTEXT = {
    "en_US": ["Call me at {}", "My cell is {}", "Phone: {}", "You can reach the office on {}"],
    "en_GB": ["Ring me on {}", "Tel: {}", "Mobile: {}", "Please phone {} after 5pm"],
    "de_DE": ["Telefon: {}", "Rufen Sie mich unter {} an", "Handy: {}", "Tel. {}"],
    "fr_FR": ["Téléphone : {}", "Appelez-moi au {}", "Tél. {}", "Mon portable : {}"],
    "es_ES": ["Teléfono: {}", "Llámame al {}", "Móvil: {}", "Tel. {}"],
    "it_IT": ["Telefono: {}", "Chiamami al {}", "Cellulare: {}", "Tel. {}"],
    "nl_NL": ["Telefoon: {}", "Bel me op {}", "Mobiel: {}", "Tel. {}"],
    "pt_BR": ["Telefone: {}", "Me liga no {}", "Celular: {}", "Contato: {}"],
}
# No word says it is a phone number: a signature line, a CSV row, a parenthesis.
PHONE_BARE = [
    "{name}, {value}, {city}",
    "{name} ({value})",
    "{name} | {value} | {city}",
    "Thanks,\n{name}\n{value}",
]

EMAIL_TEMPLATES = [
    "Send it to {}.",
    "My email is {}",
    "cc: {}",
    "Contact {} for details.",
    "{name} <{}> wrote:",
    "mailto:{}",
]
CARD_TEMPLATES = [
    "My card number is {}.",
    "Charge {} please",
    "card: {} exp 09/27",
    "Paid with {} yesterday",
    "{name}, {}, {city}",
]
IBAN_TEMPLATES = [
    "IBAN: {}",
    "Please transfer to {} by Friday.",
    "Konto {} ({name})",
    "bank account {} EUR",
    "{name}; {}; {city}",
]
SSN_TEMPLATES = [
    "SSN: {}",
    "My social security number is {}",
    "{name}, {}, {city}",
    "ssn={}",
    "Applicant {name} ({})",
]
IP_TEMPLATES = [
    "The server is at {}",
    "ssh admin@{} -p 22",
    "Blocked {} after 5 failures",
    "client_ip={}",
    '{} - - [15/Mar/2024:10:22:31 +0000] "GET / HTTP/1.1" 200',
]
SECRET_TEMPLATES = [
    "export OPENAI_API_KEY={}",
    "Here is my key {} can you check it?",
    "headers = {{'x-api-key': '{}'}}",
    "{}",
    "key={}&q=test",
]


def _rand(chars: str, n: int, rng: random.Random) -> str:
    return "".join(rng.choice(chars) for _ in range(n))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def fake_secret(rng: random.Random) -> tuple[str, str]:
    """(form, value) for one of the key formats issuers document."""
    u = ALNUM + "_-"
    forms: dict[str, Callable[[], str]] = {
        "openai": lambda: "sk-" + _rand(ALNUM, 48, rng),
        "openai_proj": lambda: "sk-proj-" + _rand(u, 124, rng),
        "anthropic": lambda: "sk-ant-api03-" + _rand(u, 93, rng) + "AA",
        "github": lambda: "ghp_" + _rand(ALNUM, 36, rng),
        "github_pat": lambda: "github_pat_" + _rand(ALNUM, 22, rng) + "_" + _rand(ALNUM, 59, rng),
        "slack": lambda: (
            f"xoxb-{rng.randint(10**10, 10**11)}-{rng.randint(10**12, 10**13)}-"
            + _rand(ALNUM, 24, rng)
        ),
        "aws": lambda: "AKIA" + _rand(string.ascii_uppercase + string.digits, 16, rng),
        "google": lambda: "AIza" + _rand(u, 35, rng),
        "stripe": lambda: "sk_live_" + _rand(ALNUM, 24, rng),
        "jwt": lambda: ".".join(
            [
                _b64url(b'{"alg":"HS256","typ":"JWT"}'),
                _b64url(
                    f'{{"sub":"{rng.randint(1, 10**9)}","iat":{rng.randint(1, 2**31)}}}'.encode()
                ),
                _b64url(rng.randbytes(32)),
            ]
        ),
    }
    form = rng.choice(sorted(forms))
    return form, forms[form]()


def fake_pem(rng: random.Random) -> str:
    body = base64.b64encode(rng.randbytes(rng.randint(300, 900))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    kind = rng.choice(["", "RSA ", "EC ", "OPENSSH "])
    return (
        f"-----BEGIN {kind}PRIVATE KEY-----\n"
        + "\n".join(lines)
        + (f"\n-----END {kind}PRIVATE KEY-----")
    )


def card_text(number: str, rng: random.Random) -> tuple[str, str]:
    style = rng.choice(["plain", "plain", "spaces", "dashes"])
    if style == "plain":
        return style, number
    sep = " " if style == "spaces" else "-"
    if len(number) == 15:  # American Express groups 4-6-5
        return style, sep.join([number[:4], number[4:10], number[10:]])
    return style, sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def iban_text(iban: str, rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        return "compact", iban
    return "grouped", " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


# ---- PII-free text that looks risky ---------------------------------------------------------


def risky_sentence(rng: random.Random, fake: Faker) -> tuple[str, str]:
    """(form, text) with numbers and tokens that are not sensitive."""
    d = fake.date_time_between("-3y", "now")

    def h(n: int) -> str:
        return rng.randbytes(n).hex()

    forms: dict[str, Callable[[], str]] = {
        "order_hash": lambda: f"Order #{rng.randint(10**7, 10**10)} has shipped.",
        "order_code": lambda: f"Your order ORD-{d.year}-{rng.randint(0, 10**7):07d} is confirmed.",
        "order_number": lambda: f"order number {rng.randint(10**9, 10**12)}",
        "po": lambda: f"PO {rng.randint(45 * 10**8, 46 * 10**8)} approved",
        "invoice": lambda: f"Invoice INV-{rng.randint(0, 10**6):06d} of {d:%d.%m.%Y} is overdue.",
        "iso_time": lambda: f"Logged at {d.isoformat()}Z by the worker.",
        "datetime": lambda: f"Meeting on {d:%Y-%m-%d %H:%M:%S} in room {rng.randint(100, 999)}.",
        "eu_date": lambda: f"Termin am {d:%d.%m.%Y} um {d:%H:%M} Uhr.",
        "us_date": lambda: f"Due {d:%m/%d/%Y} at {d:%I:%M %p}.",
        "epoch": lambda: f"ts={int(d.timestamp())} latency_ms={rng.randint(1, 999)}",
        "epoch_ms": lambda: f"created_at: {int(d.timestamp() * 1000)}",
        "sha256": lambda: f"sha256 {h(32)} matches.",
        "git": lambda: f"commit {h(20)} fixed it; see {h(4)[:7]}.",
        "md5": lambda: f"md5sum: {h(16)}",
        "uuid": lambda: f"request_id={fake.uuid4()}",
        "version": lambda: (
            f"Upgrade to v{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 30)}"
            f" from {rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}."
        ),
        "version4": lambda: (
            f"AssemblyVersion {rng.randint(1, 9)}.{rng.randint(0, 9)}."
            f"{rng.randint(0, 9)}.{rng.randint(0, 9)}"
        ),
        "windows_build": lambda: f"Windows 10.0.{rng.randint(17000, 22631)}.{rng.randint(1, 4000)}",
        "ups": lambda: "Tracking 1Z" + _rand(string.ascii_uppercase + string.digits, 16, rng),
        "fedex": lambda: f"FedEx {rng.randint(10**11, 10**12)} arrives Monday",
        "usps": lambda: (
            "USPS 9400 "
            + " ".join(f"{rng.randint(0, 9999):04d}" for _ in range(4))
            + f" {rng.randint(0, 99):02d}"
        ),
        "amount": lambda: f"Total: ${rng.randint(1000, 10**7):,}.{rng.randint(0, 99):02d}",
        "amount_eu": lambda: f"Betrag: {rng.randint(1000, 10**6):,} EUR".replace(",", "."),
        "population": lambda: f"a city of {rng.randint(10**5, 10**7):,} people".replace(",", " "),
        "coords": lambda: f"at {fake.latitude()}, {fake.longitude()}",
        "isbn": lambda: f"ISBN {fake.isbn13()}",
        "port": lambda: f"listening on port {rng.randint(1024, 65535)} with timeout=30000",
        "hex_addr": lambda: f"segfault at 0x{h(6)} ip 0x{h(6)}",
        "mac": lambda: f"MAC {fake.mac_address()}",
        "ticket": lambda: f"Ticket {d.year}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
        "ref": lambda: f"Ref. {rng.randint(10**9, 10**10)}",
        "time_range": lambda: f"open {rng.randint(7, 10)}:00-{rng.randint(17, 22)}:30 daily",
        "tokens": lambda: (
            f"max_tokens: {rng.choice([256, 1024, 4096])}, token_count = {rng.randint(1, 99999)}"
        ),
        "config": lambda: (
            f"auth_method: oauth2_client_credentials\npassword_min_length = {rng.randint(8, 16)}"
        ),
        "slug": lambda: "see https://example.com/blog/ask-" + fake.slug() + "-" + fake.slug(),
        "cpp": lambda: "std::vector<int> v; v.push_back(" + str(rng.randint(0, 99)) + ");",
        "long_id": lambda: f"Reference {rng.randint(10**15, 10**16)}",
        "timecode": lambda: (
            f"at 00:{rng.randint(10, 59)}:{rng.randint(10, 59)}.{rng.randint(100, 999)}"
        ),
    }
    form = rng.choice(sorted(forms))
    return form, forms[form]()


# ---- documents --------------------------------------------------------------------------------


def _positive(kind: str, fake: Faker, locale: str, rng: random.Random) -> Doc:
    b = Builder(locale)
    name, city = fake.name(), fake.city()

    def put(template: str, value: str) -> None:
        head, _, tail = template.partition("{}")
        b.text(head.format(name=name, city=city)).value(kind, value)
        b.text(tail.format(name=name, city=city))

    form = kind
    if kind == "email":
        put(
            rng.choice(EMAIL_TEMPLATES),
            rng.choice([fake.email(), fake.free_email(), fake.company_email()]),
        )
    elif kind == "phone":
        number = fake.phone_number()
        if rng.random() < 0.75:
            form = "context"
            put(rng.choice(PHONE_CONTEXT[locale]), number)
        else:
            form = "bare"
            put(rng.choice(PHONE_BARE).replace("{value}", "{}"), number)
    elif kind == "payment_card":
        form, text = card_text(fake.credit_card_number(), rng)
        put(rng.choice(CARD_TEMPLATES), text)
    elif kind == "iban":
        form, text = iban_text(fake.iban(), rng)
        put(rng.choice(IBAN_TEMPLATES), text)
    elif kind == "us_ssn":
        put(rng.choice(SSN_TEMPLATES), fake.ssn())
    elif kind == "ip_address":
        form = rng.choice(["v4_public", "v4_private", "v6"])
        value = {"v4_public": fake.ipv4_public, "v4_private": fake.ipv4_private, "v6": fake.ipv6}[
            form
        ]()
        put(rng.choice(IP_TEMPLATES), value)
    elif kind == "secret":
        roll = rng.random()
        if roll < 0.6:
            form, value = fake_secret(rng)
            put(rng.choice(SECRET_TEMPLATES), value)
        elif roll < 0.7:
            form = "pem"
            put("Here is the key:\n{}\nthanks", fake_pem(rng))
        else:
            form = "assigned"
            template, value = rng.choice(
                [
                    ('password = "{}"', fake.password(length=rng.randint(8, 16))),
                    ("DB_PASSWORD={}", fake.password(length=12, special_chars=False)),
                    ('"api_key": "{}"', rng.randbytes(16).hex()),
                    ("client_secret: {}", _rand(ALNUM, 40, rng)),
                    ("Authorization: Bearer {}", _rand(ALNUM + "-_", 40, rng)),
                ]
            )
            put(template, value)
    return b.doc(form)


def build(seed: int = 1, per_kind: int = 400, negatives: int = 2000) -> list[Doc]:
    """`per_kind` documents with one sensitive value each (spread over the locales), each with a
    risky PII-free sentence around it, and `negatives` documents with risky text only."""
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(seed * 1000 + i)
    Faker.seed(seed)
    docs: list[Doc] = []
    for kind in KINDS:
        for i in range(per_kind):
            locale = "en_US" if kind == "us_ssn" else LOCALES[i % len(LOCALES)]
            fake = fakers[locale]
            doc = _positive(kind, fake, locale, rng)
            _, before = risky_sentence(rng, fake)
            _, after = risky_sentence(rng, fake)
            shift = len(before) + 1
            docs.append(
                Doc(
                    f"{before} {doc.text} {after}",
                    locale,
                    [(k, s + shift, e + shift) for k, s, e in doc.gold],
                    doc.form,
                )
            )
    for i in range(negatives):
        locale = LOCALES[i % len(LOCALES)]
        form, text = risky_sentence(rng, fakers[locale])
        docs.append(Doc(text, locale, [], form))
    return docs
