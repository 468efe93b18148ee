"""The frontier's mixed workload: seeded, so every arm replays exactly the same requests.

Every prompt opens with its ticket (`Ticket Q0042.`) so the cloud's own log says which workload
request reached it; requests carrying PII list the values planted in them, to be looked for in
what the cloud received.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SHORT = (
    "What is the capital of France?",
    "Give me a synonym for happy.",
    "Say hello in Spanish.",
    "Name three primary colours.",
    "What is two plus two?",
    "Suggest a name for a grey cat.",
    "What day comes after Monday?",
    "Tell me a fun fact about owls.",
    "How many legs does a spider have?",
    "Write a haiku about rain.",
    "What is the opposite of cold?",
    "Recommend a book for a long flight.",
)
NOTES = (
    "The team met on Tuesday to review the quarterly roadmap.",
    "Shipping delays in the north warehouse pushed two deliveries to next week.",
    "The new onboarding flow reduced support tickets by a noticeable margin.",
    "Marketing asked for a simpler pricing page before the spring launch.",
    "Two customers reported slow page loads during the evening peak.",
    "Finance wants the travel budget reviewed before the end of the month.",
    "The design review approved the dark mode colours with minor changes.",
    "A firmware update for the scanners is scheduled for Thursday night.",
    "Hiring for the data team is on hold until the budget is confirmed.",
    "The office will close early on Friday for the building inspection.",
    "Sales closed three renewals and one new contract this week.",
    "The mobile app crash rate dropped after the last release.",
)
RISKY = (  # looks like identifiers, is not personal data
    "Order A-{n:05d} shipped at 2026-03-{d:02d}T10:{m:02d}:00Z.",
    "Build {h} passed all checks.",
    "Invoice INV-{n:06d} is due in {d} days.",
)
FIRST = ("jane", "omar", "li", "sofia", "noah", "amara", "lukas", "yuki", "ines", "mateo")
LAST = ("doe", "haddad", "wei", "rossi", "berg", "okafor", "novak", "tanaka", "silva", "garcia")


def luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):  # the check digit will sit to the right
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    sep = rng.choice((" ", "-", ""))
    return sep.join(s[i : i + 4] for i in range(0, 16, 4))


def email(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randrange(100)}@example.org"


@dataclass
class Request:
    id: int
    kind: str  # short | long | risky | pii
    text: str
    max_tokens: int
    stream: bool
    at_s: float  # when it is sent, from the start of the arm
    budget_ms: float | None = None
    pii: list[str] = field(default_factory=list)  # values planted in the text

    @property
    def ticket(self) -> str:
        return f"Q{self.id:04d}"

    def body(self, model: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": model,
            "max_tokens": self.max_tokens,
            "temperature": 0.7,
            "messages": [{"role": "user", "content": self.text}],
        }
        if self.stream:
            out["stream"] = True
        return out

    def headers(self) -> dict[str, str]:
        if self.budget_ms is None:
            return {}
        return {"x-turnout-latency-budget-ms": f"{self.budget_ms:.0f}"}


def _notes(rng: random.Random, k: int) -> str:
    return " ".join(rng.choice(NOTES) for _ in range(k))


def _risky(rng: random.Random) -> str:
    return rng.choice(RISKY).format(
        n=rng.randrange(10**5),
        d=rng.randrange(1, 28),
        m=rng.randrange(60),
        h=f"{rng.getrandbits(64):016x}",
    )


def generate(
    n: int, rate: float, seed: int, budgets_ms: tuple[float, ...], budget_share: float
) -> list[Request]:
    """n requests, Poisson arrivals at `rate` per second."""
    rng = random.Random(seed)
    out: list[Request] = []
    at = 0.0
    for i in range(n):
        at += rng.expovariate(rate)
        ticket = f"Ticket Q{i:04d}. "
        roll = rng.random()
        pii: list[str] = []
        if roll < 0.45:
            kind, text, max_tokens = "short", ticket + rng.choice(SHORT), rng.randint(8, 32)
        elif roll < 0.70:
            kind = "long"
            text = (
                ticket + "Summarise these notes in one sentence: " + _notes(rng, rng.randint(4, 8))
            )
            max_tokens = rng.randint(16, 48)
        elif roll < 0.80:
            kind = "risky"
            text = ticket + "Summarise: " + _risky(rng) + " " + _notes(rng, rng.randint(1, 4))
            max_tokens = rng.randint(8, 32)
        else:
            kind = "pii"
            which = rng.choice(("email", "card", "both"))
            if which in ("email", "both"):
                pii.append(email(rng))
            if which in ("card", "both"):
                pii.append(luhn_card(rng))
            facts = " and ".join(
                f"the card {v}" if v[0].isdigit() else f"the address {v}" for v in pii
            )
            text = (
                ticket
                + f"Draft a short reply confirming the refund; the customer gave {facts}. "
                + _notes(rng, rng.randint(0, 3))
            )
            max_tokens = rng.randint(8, 48)
        budget = rng.choice(budgets_ms) if rng.random() < budget_share else None
        stream = rng.random() < 0.25
        out.append(Request(i, kind, text.strip(), max_tokens, stream, at, budget, pii))
    return out
