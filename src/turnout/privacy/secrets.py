"""Credentials: API keys by their issuers' prefixes, private keys, JWTs, and values assigned to
names like `password` or `api_key` that look random enough to be one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from turnout.privacy.findings import Finding
from turnout.privacy.validators import shannon_entropy

# Each issuer's documented token shape. The body lengths are lower bounds: issuers lengthen keys.
_PREFIXED = re.compile(
    r"""
    sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d\d-)?[A-Za-z0-9_\-]{20,}   # OpenAI, Anthropic
    |(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}                                  # Stripe
    |gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}                   # GitHub
    |glpat-[A-Za-z0-9_\-]{20,}                                                 # GitLab
    |xox[bpars]-[A-Za-z0-9\-]{10,}                                             # Slack
    |(?:AKIA|ASIA)[0-9A-Z]{16}                                                 # AWS access key id
    |AIza[0-9A-Za-z_\-]{35}                                                    # Google API key
    |hf_[A-Za-z0-9]{30,}                                                       # Hugging Face
    |npm_[A-Za-z0-9]{36}                                                       # npm
    |eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}          # JWT
    """,
    re.VERBOSE,
)
_SHORTEST_KEY = 15  # "xoxb-" and ten characters
_PEM = re.compile(
    r"-----BEGIN[ A-Z]{0,20}PRIVATE KEY-----"
    r"(?:[\s\S]*?-----END[ A-Z]{0,20}PRIVATE KEY-----|[A-Za-z0-9+/=\s]*)"  # or cut short
)
_WORDISH = re.compile(r"[\w\-]")

# `name = value`, `"name": "value"`, `name: value`, `NAME=value`, `Authorization: Bearer value`.
# Names are found with str.find on the lower-cased text (linear, fast) rather than with a
# case-insensitive regex tried at every position; the rest of the name and the operator follow.
_NAME_WORDS = ("passw", "passphrase", "pwd", "secret", "token", "auth", "credential", "key")
_PASSWORD_WORDS = ("passw", "passphrase", "pwd")
_KEY_PREFIXES = ("api", "access", "private")  # "apikey" is a name, "monkey" is not
_NAME_REST = re.compile(r"[\w.\-]*+")
_OPERATOR = re.compile(r"[\"']?[ \t]*(?::=|=>|[:=])")
_VALUE_AFTER = re.compile(
    r"""[ \t]*(?:
        "(?P<dq>[^"\n]{6,256})"|'(?P<sq>[^'\n]{6,256})'|`(?P<bq>[^`\n]{6,256})`
        |(?:(?:Bearer|Basic|Token)[ \t]+)?(?P<bare>[^\s"'`,;<>(){}\[\]]{6,})(?P<call>[(\[])?
    )""",
    re.VERBOSE,
)
# Templates, environment references and dummies stand where a secret would, but are not one.
_PLACEHOLDER = re.compile(
    r"(?i)(?:\$\{.*|(?-i:\$[A-Z_][A-Z0-9_]*)|<[^>]*>|\{\{.*|%\(.*|\*+|x{4,}.*|\.\.\."
    r"|null|none|nil|true|false|undefined|required|optional|string|str|int|bool|env|secret"
    r"|password|redacted|changeme|example|your[_\-].*)$"
)
_CODE_REFERENCE = re.compile(r"[A-Za-z_]\w*(?:\.\w+)+")  # settings.DB_PASSWORD, os.environ
_IDENTIFIER = re.compile(r"[A-Za-z]+\d*(?:[_.\-][A-Za-z]+\d*)+")


def find_secrets(text: str) -> Iterator[Finding]:
    yield from _prefixed(text)
    if "-----BEGIN" in text:
        for m in _PEM.finditer(text):
            yield Finding("secret", m.start(), m.end(), m.group())
    yield from _assigned(text)


def _prefixed(text: str) -> Iterator[Finding]:
    # Keys are long unbroken tokens; splitting on whitespace in C and looking only inside the
    # long tokens is several times faster than running the prefix regex over the whole text.
    at = 0
    for token in text.split():
        if len(token) < _SHORTEST_KEY:
            continue
        at = text.find(token, at)
        for m in _PREFIXED.finditer(token):
            start, end = at + m.start(), at + m.end()
            if start and _WORDISH.match(text, start - 1):
                continue  # "task-…" holds "sk-" but is no key
            if end < len(text) and _WORDISH.match(text, end):
                continue
            if m.group().startswith("sk-") and not _looks_random(m.group()[3:]):
                continue  # "sk-this-is-a-long-slug" is not a key
            yield Finding("secret", start, end, m.group())
        at += len(token)


def _assigned(text: str) -> Iterator[Finding]:
    if "=" not in text and ":" not in text:
        return
    lower = text.lower()
    names = sorted((i, word) for word in _NAME_WORDS for i in _occurrences(lower, word))
    done = 0
    for i, word in names:
        if i < done:
            continue  # inside a name already looked at ("secret_token")
        if (
            word == "key"
            and i
            and lower[i - 1].isalpha()
            and not lower.endswith(_KEY_PREFIXES, 0, i)
        ):
            continue
        rest = _NAME_REST.match(text, i + len(word))
        done = rest.end() if rest else i + len(word)
        op = _OPERATOR.match(text, done)
        value = _VALUE_AFTER.match(text, op.end()) if op else None
        if value is not None and (found := _secret_value(word, value)) is not None:
            yield found


def _occurrences(text: str, word: str) -> Iterator[int]:
    i = text.find(word)
    while i != -1:
        yield i
        i = text.find(word, i + len(word))


def _secret_value(name_word: str, m: re.Match[str]) -> Finding | None:
    group = m.lastgroup if m.lastgroup in ("dq", "sq", "bq") else "bare"
    value = m.group(group)
    if _PLACEHOLDER.match(value):
        return None
    if group == "bare" and (m.group("call") or _CODE_REFERENCE.fullmatch(value)):
        return None  # `password = get_password()`: code that fetches a secret, not a secret
    password = name_word in _PASSWORD_WORDS
    if (password and len(value) >= 6) or _looks_random(value):
        return Finding("secret", m.start(group), m.end(group), value)
    return None


def _looks_random(value: str) -> bool:
    """A generated token: long, varied characters, not a snake_case or dotted identifier."""
    if len(value) < 16 or _IDENTIFIER.fullmatch(value):
        return False
    classes = (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
    )
    return classes >= 2 and shannon_entropy(value) >= 3.0
