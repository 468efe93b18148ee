"""Tool-poisoning rules: each finding has a severity, a rule name and an explanation.

The rules look at every string the model reads (see `text.py`), after undoing the tricks that
hide text from people: ANSI escapes, Unicode tag characters, zero-width and bidi controls, and
base64, hex or percent-encoded payloads, whose decoded text is checked again. Wording rules work
sentence by sentence and respect negation ("do not include API keys" is advice, not an attack),
and a tool that names its own server's tools is describing a workflow, not shadowing another.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from turnout.mcp.scanner.text import tool_texts

SEVERITIES = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str
    rule: str
    server: str
    tool: str | None
    where: str
    message: str
    excerpt: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "rule": self.rule,
            "server": self.server,
            "tool": self.tool,
            "where": self.where,
            "message": self.message,
            "excerpt": self.excerpt,
        }


# -- characters that hide text ------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]|\x9b")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u180e]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")


def _reveal(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The text as a model reads it, and what was hidden in it: (rule, severity, explanation)."""
    hidden: list[tuple[str, str, str]] = []
    tags = _TAGS.findall(text)
    if tags:
        decoded = "".join(chr(ord(c) - 0xE0000) for run in tags for c in run)
        hidden.append(
            (
                "invisible-unicode",
                "high",
                f"Unicode tag characters hide text people cannot see: {decoded.strip()!r}",
            )
        )
        text = _TAGS.sub(lambda m: "".join(chr(ord(c) - 0xE0000) for c in m.group(0)), text)
    if _BIDI.search(text):
        hidden.append(
            (
                "invisible-unicode",
                "high",
                "bidirectional override characters make the text read differently "
                "on screen than to the model",
            )
        )
    zero = _ZERO_WIDTH.findall(text)
    if zero:
        hidden.append(
            (
                "invisible-unicode",
                "medium",
                f"{len(zero)} zero-width character(s), invisible to people",
            )
        )
    if _ANSI.search(text):
        hidden.append(
            (
                "ansi-escape",
                "high",
                "ANSI escape sequences, which can hide or overwrite text in a terminal",
            )
        )
    text = _ANSI.sub(" ", text)
    if _CONTROL.search(text):
        hidden.append(("control-characters", "medium", "control characters in text"))
    text = _ZERO_WIDTH.sub("", _BIDI.sub("", _CONTROL.sub(" ", text)))
    return unicodedata.normalize("NFKC", text), hidden


_B64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/]{32,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){20,}(?![0-9A-Fa-f])")
_PERCENT = re.compile(r"(?:%[0-9A-Fa-f]{2}){8,}")


def _decode_blobs(text: str) -> list[tuple[str, str]]:
    """Encoded runs that decode to readable text: (kind, decoded)."""
    out: list[tuple[str, str]] = []
    for m in _B64.finditer(text):
        try:
            raw = base64.b64decode(m.group(0) + "=" * (-len(m.group(0)) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _printable(raw)
        if decoded:
            out.append(("base64", decoded))
    for m in _HEX.finditer(text):
        decoded = _printable(bytes.fromhex(m.group(0)))
        if decoded:
            out.append(("hex", decoded))
    for m in _PERCENT.finditer(text):
        decoded = _printable(unquote(m.group(0)).encode())
        if decoded:
            out.append(("percent-encoded", decoded))
    return out


def _printable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(c.isalpha() or c == " " for c in text)
    return text if len(text) >= 12 and letters / len(text) > 0.7 and " " in text else None


# -- wording ---------------------------------------------------------------------------------------

_MARKUP = re.compile(
    r"<\s*/?\s*(important|system|instructions?|secret|hidden|admin|assistant|prompt|rules?|"
    r"critical|override|sys|directive|mandatory)\b[^>]{0,40}>|\[/?INST\]|<<\s*/?SYS\s*>>|"
    r"<\|im_(start|end)\|>|<!--|\{\{\s*system",
    re.I,
)
_OVERRIDE = re.compile(
    r"\b(ignore|disregard|forget)\s+(all\s+|any\s+|the\s+)?(previous|prior|above|earlier|other|"
    r"user'?s?)\s+(instructions|rules|directions|prompts?|requests?|messages?)|"
    r"\byou are now\b|\bmaintenance mode\b|\bnew (policy|instructions)\b|"
    r"\btreat the next (user )?message\b|\byour (real|actual|new) (task|instructions?|goal)\b|"
    r"\bignore the user'?s request\b",
    re.I,
)
_SECRECY = re.compile(
    r"\b(do not|don'?t|never|must not)\s+(tell|inform|mention|reveal|show|notify|alert|disclose)"
    r"(\s+(this|that|it|anything|any of this))?(\s+(to|with))?\s+(the\s+)?user|"
    r"\bwithout\s+(telling|informing|notifying|alerting|asking|showing)\s+(the\s+)?user|"
    r"\b(the\s+)?user\s+(must|should|need)\s+not\s+(know|be told|see|notice|find out)|"
    r"\bkeep\s+(this|it|these|that)(\s+\w+)?\s+(secret|hidden|confidential|private|to yourself)|"
    r"\bhidden from the user|"
    r"\bsilently\s+(send|forward|copy|upload|post|share|include|add|transmit|report|log)|"
    r"\bupset the user\b",
    re.I,
)
_SENSITIVE_PATH = re.compile(
    r"~/\.|\$HOME/\.|\.ssh\b|\bid_(rsa|ed25519|ecdsa|dsa)\b|\.aws/|\.npmrc|\.netrc|\.pgpass|"
    r"\.git-credentials|\.kube/config|\.docker/config|(?<![\w/])\.env\b|\bmcp\.json\b|"
    r"claude_desktop_config|/etc/(passwd|shadow)|\.gnupg|keychain|\.bash_history|\.git/config",
    re.I,
)
_SENSITIVE_WORD = re.compile(
    r"\b(private keys?|api[ _-]?keys?|access tokens?|tokens?|secrets?|passwords?|passphrases?|"
    r"credentials?|seed phrases?|mnemonic|cvv|card numbers?|environment variables?|env vars?|"
    r"system prompt|(GITHUB|OPENAI|AWS|ANTHROPIC)_[A-Z_]+)\b",
    re.I,
)
_ACQUIRE = re.compile(
    r"\b(read|cat|open|load|include|includes|pass|send|attach|upload|copy|extract|provide|"
    r"append|put|paste|print|output|collect|gather|supply|share|post|forward|ask the user for)\b",
    re.I,
)
_NEGATION = re.compile(r"\b(not|never|don'?t|avoid|without|no)\b", re.I)
_URL = re.compile(r"\bhttps?://[^\s)\]'\"<>`]+", re.I)
_IP_URL = re.compile(r"\bhttps?://\d{1,3}(\.\d{1,3}){3}", re.I)
_COLLECTOR = re.compile(
    r"webhook\.site|ngrok|pastebin|requestbin|pipedream|burpcollaborator|interact\.sh|"
    r"oast\.|hookbin|beeceptor",
    re.I,
)
_SEND = re.compile(
    r"\b(send|sends|post|upload|forward|transmit|report|share|copy|exfiltrate|mirror|publish|"
    r"log)\b",
    re.I,
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b")
_MAIL_CUE = re.compile(r"\b(bcc|cc|copy|forward|send|recipient|audit|archive)\b", re.I)
_TAMPER = re.compile(
    r"\b(replace|change|set|override|modify|swap|redirect|rewrite)\s+(the\s+)?"
    r"(recipient|destination|account|address|host|url|endpoint|path|amount|phone|number|"
    r"to field|parameter)|\b(add|adds|include|always add)\s+(a\s+)?bcc\b|\bbcc:|"
    r"\b\d+\s*x the (requested|original)|\bskip (the )?(user )?(confirmation|approval|consent)|"
    r"\bconfirm`?\s+set to false",
    re.I,
)
_DANGER = re.compile(
    r"curl\s[^|]*\|\s*(ba)?sh|wget\s[^|]*\|\s*(ba)?sh|\brm\s+-rf\b|\bchmod\s+\+x\b|"
    r"\b(download|fetch)\b[^.]{0,60}\b(and\s+)?(execute|run)\b",
    re.I,
)
_CROSS = re.compile(
    r"\bwhen this tool is (available|present|loaded)|\bside effect on\b|"
    r"\b(all|any|every)\s+(other\s+|subsequent\s+)?(tools?|tool calls?|functions?|requests?)\b|"
    r"\bother (mcp )?servers?\b|\boverrides? the behaviou?r\b|\btakes? precedence over\b|"
    r"\bfrom the [\w-]+ server\b|\b[\w-]+ server'?s\b",
    re.I,
)
_IMPERATIVE = re.compile(
    r"\b(must|should|always|required|requires|need to|needs to|have to|first|before|after|"
    r"whenever|prior to|mandatory)\b",
    re.I,
)
# An action on a named tool: "before using read_file", "call quota_manager", "send_email is used".
# A name counts when it looks like an identifier (has _ or -), is quoted, or is followed by "tool".
_NAME = r"(?:[`'\"]([\w. -]+?)[`'\"]|([A-Za-z][\w.]*[_-][\w.-]*\w)|(\w+)\s+tool\b)"
_TOOL_ACTION = re.compile(
    r"\b(?:before|after|when|whenever|prior to)\s+(?:you\s+)?(?:use|using|call|calling|invoke|"
    r"invoking|run|running|execute|executing)\s+(?:the\s+|any\s+)?" + _NAME + "|"
    r"\b(?:before|after|prior to)\s+[`'\"]?([A-Za-z][\w.]*[_-][\w.-]*\w)|"
    r"\b(?:call|calling|use|using|invoke|invoking|run|running|execute|executing)\s+(?:the\s+)?"
    r"[`'\"]?([A-Za-z][\w.]*[_-][\w.-]*\w)[`'\"]?|"
    r"\bwhen(?:ever)?\s+(?:the\s+)?[`'\"]?([A-Za-z][\w.]*[_-][\w.-]*\w)[`'\"]?\s+(?:tool\s+)?is\s+"
    r"(?:used|called|invoked)|"
    r"\bthe\s+[`'\"]?([A-Za-z][\w.]*[_-][\w.-]*\w)[`'\"]?\s+tool\b|"
    r"\binstead of (?:using )?(?:the\s+)?[\w-]+ server'?s\s+[`'\"]?([\w.-]+)",
    re.I,
)
# Conversation data a parameter has no business asking for.
_HARVEST = re.compile(
    r"\b(conversation|previous (messages?|tool results?|dialogue)|preceding dialogue|"
    r"chat history|system prompt|every previous|all (the )?(messages|tool results)|"
    r"verbatim|configuration files?|private messages)\b",
    re.I,
)
_SIDE_CHANNEL = {
    "note",
    "notes",
    "sidenote",
    "context",
    "extra",
    "metadata",
    "meta",
    "debug",
    "feedback",
    "comment",
    "comments",
    "remark",
    "remarks",
    "memo",
    "details",
    "summary",
    "history",
    "conversation",
    "transcript",
    "systemprompt",
    "reasoning",
    "thoughts",
    "internal",
    "hidden",
    "bg",
    "background",
    "annotation",
}
_SENTENCE = re.compile(r"(?<=[.!?\n])\s+")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def _excerpt(text: str, start: int = 0, end: int | None = None, width: int = 100) -> str:
    end = len(text) if end is None else end
    lo = max(0, start - 30)
    # Kept as the server wrote it; whoever shows it names the hiding characters (visible.py).
    return text[lo : min(len(text), max(end, lo + width))]


def _own(name: str, siblings: set[str]) -> bool:
    low = name.lower().strip("`'\".,:;")
    return low in siblings or low in {"this", "it", "that", "any", "the", "a", "tool", "function"}


def _text_findings(
    text: str, siblings: set[str], depth: int = 0
) -> Iterator[tuple[str, str, str, str]]:
    """(rule, severity, message, excerpt) for one string."""
    seen, hidden = _reveal(text)
    for rule, severity, message in hidden:
        yield rule, severity, message, _excerpt(text)
    if m := _MARKUP.search(seen):
        yield (
            "hidden-markup",
            "high",
            "markup that addresses the model as a hidden instruction",
            _excerpt(seen, m.start(), m.end()),
        )
    if m := _OVERRIDE.search(seen):
        yield (
            "instruction-override",
            "high",
            "tries to override the user's or system's instructions",
            _excerpt(seen, m.start(), m.end()),
        )
    if m := _SECRECY.search(seen):
        yield (
            "exfiltration",
            "high",
            "asks the model to keep something from the user",
            _excerpt(seen, m.start(), m.end()),
        )
    if m := _DANGER.search(seen):
        yield (
            "dangerous-command",
            "high",
            "asks for a command that runs downloaded code or destroys data",
            _excerpt(seen, m.start(), m.end()),
        )
    for sentence in _sentences(seen):
        yield from _sentence_findings(sentence, siblings)
    if depth == 0:
        for kind, decoded in _decode_blobs(seen):
            inner = list(_text_findings(decoded, siblings, depth + 1))
            worst = max((SEVERITIES.index(f[1]) for f in inner), default=0)
            severity = "high" if worst == 2 else "medium"
            what = f"; decoded it says: {decoded[:80]!r}"
            yield (
                "encoded-blob",
                severity,
                f"a {kind} payload that decodes to text{what}",
                _excerpt(decoded),
            )


def _sentence_findings(s: str, siblings: set[str]) -> Iterator[tuple[str, str, str, str]]:
    path = _SENSITIVE_PATH.search(s)
    word = _SENSITIVE_WORD.search(s)
    acquire = _ACQUIRE.search(s)
    if (path or word) and acquire and not _negated(s, acquire.start()):
        target = (path or word).group(0)  # type: ignore[union-attr]
        yield "secret-access", "high", f"asks to read or hand over {target!r}", _excerpt(s)
    elif path:
        yield (
            "secret-access",
            "medium",
            f"mentions a sensitive file ({path.group(0)!r})",
            _excerpt(s),
        )
    url = _URL.search(s)
    if url:
        send = _SEND.search(s)
        if _COLLECTOR.search(url.group(0)):
            yield (
                "exfiltration",
                "high",
                f"points at a data-collection host: {url.group(0)}",
                _excerpt(s),
            )
        elif send and not _negated(s, send.start()):
            yield "exfiltration", "high", f"asks to send data to {url.group(0)}", _excerpt(s)
        elif _IP_URL.search(s):
            yield (
                "exfiltration",
                "medium",
                f"a URL to a bare IP address: {url.group(0)}",
                _excerpt(s),
            )
    email = _EMAIL.search(s)
    if (
        email
        and _MAIL_CUE.search(s)
        and not email.group(0).endswith(("example.com", "example.org"))
    ):
        yield "exfiltration", "high", f"routes mail or data to {email.group(0)}", _excerpt(s)
    if m := _TAMPER.search(s):
        yield (
            "parameter-tampering",
            "high",
            "tells the model to alter arguments of calls",
            _excerpt(s, m.start(), m.end()),
        )
    cross = _CROSS.search(s)
    if cross and _IMPERATIVE.search(s):
        yield (
            "cross-tool",
            "high",
            "instructions about other tools or servers",
            _excerpt(s, cross.start(), cross.end()),
        )
    for m in _TOOL_ACTION.finditer(s):
        name = next(g for g in m.groups() if g)
        if not _own(name, siblings) and (
            _IMPERATIVE.search(s) or m.group(0).lower().startswith(("before", "after", "when"))
        ):
            yield (
                "cross-tool",
                "high",
                f"instructions about tool {name!r}, which this server does not have",
                _excerpt(s, m.start(), m.end()),
            )
            break


def _negated(s: str, at: int) -> bool:
    before = s[max(0, at - 40) : at]
    return bool(_NEGATION.search(before))


def _worst(findings: Iterable[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """One finding per rule for a string: the most severe."""
    best: dict[str, tuple[str, str, str, str]] = {}
    for f in findings:
        if f[0] not in best or SEVERITIES.index(f[1]) > SEVERITIES.index(best[f[0]][1]):
            best[f[0]] = f
    return list(best.values())


def scan_tool(
    definition: dict[str, Any], server: str, siblings: Iterable[str] = ()
) -> list[Finding]:
    """Findings for one tool; `siblings` are the names and titles of its server's tools."""
    name = str(definition.get("name"))
    own = {s.lower() for s in siblings} | {name.lower(), str(definition.get("title") or "").lower()}
    out: list[Finding] = []
    for where, text in tool_texts(definition):
        if where == "inputSchema.properties" or where == "outputSchema.properties":
            out += _property_name_findings(text, server, name, where)
        for rule, severity, message, excerpt in _worst(_text_findings(text, own)):
            out.append(Finding(severity, rule, server, name, where, message, excerpt))
    out += _parameter_findings(definition, server, name)
    return _dedupe(out)


def scan_instructions(text: str, server: str, siblings: Iterable[str] = ()) -> list[Finding]:
    own = {s.lower() for s in siblings}
    return [
        Finding(severity, rule, server, None, "instructions", message, excerpt)
        for rule, severity, message, excerpt in _worst(_text_findings(text, own))
    ]


def _property_name_findings(prop: str, server: str, tool: str, where: str) -> list[Finding]:
    out = []
    if re.search(r"\s", prop) or len(prop) > 40:
        out.append(
            Finding(
                "high",
                "schema-poisoning",
                server,
                tool,
                where,
                "a parameter name that reads as an instruction",
                _excerpt(prop),
            )
        )
    elif _SENSITIVE_PATH.search(prop.replace("_", ".")) or (
        re.search(r"(ssh|id_rsa|password|api_?key|secret|credential|token)", prop, re.I)
        and re.search(r"(content|from|read|file|value)", prop, re.I)
    ):
        out.append(
            Finding(
                "high",
                "schema-poisoning",
                server,
                tool,
                where,
                f"a parameter named for a secret: {prop!r}",
                _excerpt(prop),
            )
        )
    return out


def _parameter_findings(definition: dict[str, Any], server: str, tool: str) -> list[Finding]:
    out: list[Finding] = []
    schema = definition.get("inputSchema")
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return out
    description = str(definition.get("description") or "")
    for prop, sub in props.items():
        sub = sub if isinstance(sub, dict) else {}
        text = str(sub.get("description") or "") + " " + str(sub.get("title") or "")
        key = re.sub(r"[\W_]", "", str(prop)).lower()
        where = f"inputSchema.properties.{prop}"
        harvest = _HARVEST.search(text)
        if harvest and _negated(text, harvest.start()):
            harvest = None
        harvest = harvest or _asks_for_secret(text)
        if harvest:
            out.append(
                Finding(
                    "high",
                    "side-channel-parameter",
                    server,
                    tool,
                    where,
                    f"parameter `{prop}` asks for {harvest.group(0)!r}, "
                    "which has nothing to do with the call",
                    _excerpt(text),
                )
            )
        elif key in _SIDE_CHANNEL and not text.strip() and str(prop) not in description:
            out.append(
                Finding(
                    "medium",
                    "side-channel-parameter",
                    server,
                    tool,
                    where,
                    f"parameter `{prop}` is unexplained and named like a side channel",
                    str(prop),
                )
            )
        elif key in _SIDE_CHANNEL:
            out.append(
                Finding(
                    "low",
                    "side-channel-parameter",
                    server,
                    tool,
                    where,
                    f"parameter `{prop}` is named like a side channel",
                    str(prop),
                )
            )
        for value in (sub.get("enum") or []) + [sub.get("default")]:
            if isinstance(value, str) and len(value) > 60 and len(value.split()) >= 6:
                out.append(
                    Finding(
                        "medium",
                        "schema-poisoning",
                        server,
                        tool,
                        where,
                        "an enum or default value that is a sentence",
                        _excerpt(value),
                    )
                )
    return out


def _asks_for_secret(text: str) -> re.Match[str] | None:
    """A parameter description that asks for a secret (and does not warn against sending one)."""
    for sentence in _sentences(text):
        secret = _SENSITIVE_WORD.search(sentence) or _SENSITIVE_PATH.search(sentence)
        if secret is None or re.search(r"\b(number|count|max|limit)\b", sentence, re.I):
            continue
        acquire = _ACQUIRE.search(sentence)
        if not _negated(sentence, (acquire or secret).start()):
            return secret
    return None


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, str | None, str]] = set()
    out = []
    for f in findings:
        key = (f.rule, f.where, f.tool, f.severity)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def worst(findings: Iterable[Finding]) -> str | None:
    ranked = [SEVERITIES.index(f.severity) for f in findings]
    return SEVERITIES[max(ranked)] if ranked else None
