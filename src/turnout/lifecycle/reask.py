"""Re-asking: the bad answer and what was wrong with it join the conversation."""

from __future__ import annotations

from typing import Any

from turnout.lifecycle.validate import Invalid


def reask_messages(
    messages: list[dict[str, Any]], invalid: Invalid, answer: dict[str, Any]
) -> list[dict[str, Any]]:
    """The conversation to send again: tool-call errors as tool messages, the rest as a user turn.

    Tool calls must be answered by tool messages (APIs reject a conversation where they are not),
    which is also where a model looks for what went wrong with a call.
    """
    out = list(messages)
    said: dict[str, Any] = {"role": "assistant", "content": answer.get("content")}
    calls = answer.get("tool_calls")
    if calls:
        said["tool_calls"] = calls
        out.append(said)
        out.extend(
            {
                "role": "tool",
                "tool_call_id": call.get("id") or "",
                "content": f"Error: {invalid.message}. Call the tool again correctly.",
            }
            for call in calls
        )
        return out
    out.append(said)
    out.append(
        {
            "role": "user",
            "content": f"Your previous answer was not valid: {invalid.message}. "
            "Answer again, correcting this.",
        }
    )
    return out
