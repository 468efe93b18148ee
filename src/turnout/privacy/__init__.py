"""Sensitivity scanning, redaction and restoration for text bound off the machine."""

from turnout.privacy.findings import Finding, summary
from turnout.privacy.presidio import presidio_available
from turnout.privacy.redact import Redactor, Restorer, placeholder_label
from turnout.privacy.scanner import BUILTIN_KINDS, Scanner

__all__ = [
    "BUILTIN_KINDS",
    "Finding",
    "Redactor",
    "Restorer",
    "Scanner",
    "placeholder_label",
    "presidio_available",
    "summary",
]
