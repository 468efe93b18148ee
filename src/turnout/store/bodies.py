"""What the record keeps of a request's text: all of it, its structure only, or none of it.

`record_bodies` covers every place client or model text can reach the record: the bodies, the
`error` column, the attributes of events and the fields of attempts. In `redacted` and `none` only
turnout's own vocabulary survives (states, failure classes, deployment names, numbers); free text
becomes its length, and an object key that is not part of the wire formats becomes a placeholder.
"""

from __future__ import annotations

import re
from typing import Any

MODES = ("full", "redacted", "none")


def shape_bodies(request: Any, response: Any, mode: str) -> tuple[Any, Any]:
    if mode == "full":
        return request, response
    if mode == "none":
        return None, None
    return redact(request), redact(response)


def redact(value: Any) -> Any:
    """Structure only: wire-format keys, identifiers of the protocol, numbers and booleans."""
    # Exact type checks and scalars inlined: this runs for every record in `redacted` mode.
    kind = type(value)
    if kind is str:
        return f"[redacted: {len(value)} chars]"
    if kind is dict:
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items(), 1):
            if k in _WIRE_KEYS:
                if type(v) is str and k in _IDENTIFIER_KEYS:
                    out[k] = token(v)
                else:
                    out[k] = v if type(v) in _SCALARS else redact(v)
            else:
                out[f"[key {i}]"] = v if type(v) in _SCALARS else redact(v)
        return out
    if kind is list:
        return [v if type(v) in _SCALARS else redact(v) for v in value]
    # Subclasses and tuples, the slow way.
    if isinstance(value, str):
        return placeholder(value)
    if isinstance(value, dict):
        return redact(dict(value))
    if isinstance(value, list | tuple):
        return redact(list(value))
    return value


def placeholder(text: str) -> str:
    return f"[redacted: {len(text)} chars]"


def token(value: Any) -> Any:
    """An identifier of the protocol (`assistant`, `stop`, `call_1`) kept; other text replaced."""
    if type(value) is not str:
        return value
    known = _TOKENS.get(value)
    if known is not None:
        return known
    out = value if _IDENTIFIER.fullmatch(value) else placeholder(value)
    if len(_TOKENS) < 4096:  # the protocol's vocabulary repeats; ids do not, hence the bound
        _TOKENS[value] = out
    return out


def scrub_error(text: str | None, mode: str) -> str | None:
    """Error messages quote requests and answers (a schema violation quotes the output)."""
    if text is None or mode == "full":
        return text
    return placeholder(text)


def scrub_attrs(attrs: dict[str, Any], mode: str) -> dict[str, Any]:
    """An event's attributes with client and model text replaced, turnout's own words kept."""
    if mode == "full" or attrs.keys() <= _VOCABULARY_ATTRS:
        return attrs
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if k in _VOCABULARY_ATTRS:
            out[k] = v
        elif k in _TOKEN_ATTRS:
            out[k] = token(v)
        elif k == "reason" and isinstance(v, str) and _OWN_WORDS.fullmatch(v):
            out[k] = v
        else:
            out[k] = redact(v)
    return out


_SCALARS = frozenset({int, float, bool, type(None)})
_TOKENS: dict[str, str] = {}
# Protocol identifiers: roles, types, finish reasons, ids. No spaces, no quotes, bounded.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:/+-]{1,64}")
# A `reason` turnout wrote ("attempts exhausted", "queue full") carries no quoted input.
_OWN_WORDS = re.compile(r"[^'\"`‘’“”\n]{1,200}")

# Keys of the wire formats turnout serves (OpenAI chat/completions/Responses, Anthropic
# Messages) and of JSON Schema (tool parameters, response formats). Any other key is client text.
_WIRE_KEYS = frozenset(
    {
        # requests
        *("model", "messages", "role", "content", "name", "tool_calls", "tool_call_id"),
        *("function", "arguments", "type", "id", "text", "image_url", "url", "detail"),
        *("input_audio", "data", "format", "file", "file_id", "filename", "file_data"),
        *("refusal", "audio", "tools", "parameters", "description", "strict", "tool_choice"),
        *("response_format", "json_schema", "schema", "temperature", "top_p", "top_k", "n"),
        *("stream", "stream_options", "include_usage", "stop", "max_tokens"),
        *("max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias"),
        *("logprobs", "top_logprobs", "user", "seed", "metadata", "parallel_tool_calls"),
        *("modalities", "prediction", "reasoning_effort", "service_tier", "store", "prompt"),
        *("suffix", "echo", "best_of"),
        # Responses API
        *("input", "instructions", "output", "previous_response_id", "max_output_tokens"),
        *("reasoning", "effort", "summary", "truncation", "status", "call_id", "output_text"),
        "annotations",
        # Anthropic Messages
        *("system", "stop_sequences", "tool_use_id", "is_error", "source", "media_type"),
        *("thinking", "budget_tokens", "input_schema", "cache_control"),
        # answers
        *("choices", "index", "message", "delta", "finish_reason", "usage", "prompt_tokens"),
        *("completion_tokens", "total_tokens", "prompt_tokens_details", "cached_tokens"),
        *("completion_tokens_details", "reasoning_tokens", "object", "created"),
        *("system_fingerprint", "stop_reason", "stop_sequence", "input_tokens"),
        *("output_tokens", "error", "code", "token", "bytes", "logprob"),
        # JSON Schema
        *("properties", "required", "items", "enum", "const", "additionalProperties"),
        *("anyOf", "oneOf", "allOf", "not", "$ref", "$defs", "definitions", "pattern"),
        *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength"),
        *("maxLength", "minItems", "maxItems", "uniqueItems", "default", "title", "nullable"),
        *("prefixItems", "patternProperties", "propertyNames", "multipleOf", "examples"),
    }
)
# Keys whose string values are protocol identifiers, kept when they look like one.
_IDENTIFIER_KEYS = frozenset(
    {
        *("role", "type", "object", "finish_reason", "stop_reason", "model", "id"),
        *("tool_call_id", "call_id", "tool_use_id", "status", "detail", "media_type"),
        *("reasoning_effort", "effort", "service_tier", "truncation", "system_fingerprint"),
    }
)
# Event attributes whose values are turnout's own: states, classes, config names, numbers.
_VOCABULARY_ATTRS = frozenset(
    {
        *("status", "deployment", "attempt", "chosen", "routing", "rule", "candidates"),
        *("objective", "balance", "order", "predicted_output_tokens", "sensitive"),
        *("sticky_local", "to", "next", "delay_s", "retry_after_s", "reask", "policy"),
        *("kind", "failure", "priority", "during", "breaker_opened", "server", "is_error"),
        "egress_refused",
    }
)
# Attributes a client or an upstream names (a claimed tenant, a finish reason): kept when short
# identifiers, like protocol identifiers in bodies.
_TOKEN_ATTRS = frozenset({"finish_reason", "tenant"})
