"""Presidio's analyzer as an optional extra detector (`pip install turnout[presidio]`).

It runs with Presidio's no-op NLP engine: no spaCy model is loaded or downloaded, so only its
pattern and checksum recognizers run (cards, IBANs, emails, phones via `phonenumbers`, IPs, and
national ids of several countries). Its entity types map onto ours where they mean the same
thing; the rest are reported as `presidio:<TYPE>`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from typing import Any

from turnout.privacy.findings import Finding

KINDS: dict[str, str] = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "payment_card",
    "IBAN_CODE": "iban",
    "US_SSN": "us_ssn",
    "IP_ADDRESS": "ip_address",
}
# Recognizers that without an NLP model's context words mostly flag dates, URLs and numbers.
NOISY = frozenset({"DATE_TIME", "URL", "US_BANK_NUMBER", "US_DRIVER_LICENSE", "UK_NHS"})


def presidio_available() -> bool:
    return importlib.util.find_spec("presidio_analyzer") is not None


def build_analyzer(language: str = "en") -> Any:
    """An `AnalyzerEngine` on the no-op NLP engine, with the public-suffix lookup kept offline."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    # Presidio's email recognizer calls tldextract, which would fetch the public suffix list
    # over the network on first use; the snapshot bundled with tldextract is enough.
    tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls = ()
    engine = NoOpNlpEngine(models=[{"lang_code": language, "model_name": "none"}])
    return AnalyzerEngine(nlp_engine=engine, supported_languages=[language])


class PresidioDetector:
    def __init__(
        self,
        entities: Sequence[str] | None = None,
        threshold: float = 0.4,
        language: str = "en",
        analyzer: Any = None,
    ) -> None:
        if analyzer is None and not presidio_available():
            raise RuntimeError(
                "use_presidio needs the optional extra: pip install 'turnout[presidio]'"
            )
        self._analyzer = analyzer or build_analyzer(language)
        supported = self._analyzer.get_supported_entities(language)
        self._entities = list(entities) if entities else [e for e in supported if e not in NOISY]
        self._threshold = threshold
        self._language = language

    def find(self, text: str) -> Iterator[Finding]:
        results = self._analyzer.analyze(
            text=text,
            language=self._language,
            entities=self._entities,
            score_threshold=self._threshold,
        )
        for r in results:
            kind = KINDS.get(r.entity_type, f"presidio:{r.entity_type}")
            yield Finding(kind, r.start, r.end, text[r.start : r.end])
