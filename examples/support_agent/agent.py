"""A customer-support agent: an 8-step tool-using loop on the `openai` SDK, pointed at turnout.

Plan and execute: the agent walks a fixed plan of seven tools, and at each step the model reads
the conversation so far and writes that tool's arguments (the call is forced with `tool_choice`,
so even a 135M model calls the right tool); the eighth call writes the reply to the customer.
What can go wrong is handled here, in the agent's own code, which is what the tests exercise:
API errors (after turnout's own retries), answers without a tool call, arguments that are not
JSON or do not fit the tool, tools that fail or raise. A failed step is tried again once with the
error in the conversation, then skipped: the agent always answers.

Run it against a gateway: `turnout serve` (the embedded model), then
`python examples/support_agent/agent.py "my order A1234 is late"`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai

try:
    from tools import SPECS, TOOLS
except ImportError:  # imported as a package module
    from .tools import SPECS, TOOLS  # type: ignore[no-redef]

PLAN = (
    "lookup_customer",
    "lookup_order",
    "track_shipment",
    "get_weather",
    "check_inventory",
    "create_ticket",
    "offer_compensation",
)
SYSTEM = (
    "You are a support agent for a shop. Use the tools to find out about the customer's "
    "order, then help them. Copy ids and emails exactly from the conversation."
)
TICKET = (
    "Hello, I am ana@example.com. My order A1234 (a lamp) has not arrived and the tracking "
    "says delayed. Can you help?"
)


@dataclass
class Step:
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    ok: bool = False


@dataclass
class AgentResult:
    answer: str
    steps: list[Step]
    messages: list[dict[str, Any]]
    model_calls: int
    errors: list[str]

    @property
    def trajectory(self) -> list[tuple[str, dict[str, Any]]]:
        """Every tool call made, retries included: what trajectory matchers read."""
        out = []
        for m in self.messages:
            for call in m.get("tool_calls") or ():
                fn = call["function"]
                try:
                    args = json.loads(fn["arguments"])
                except json.JSONDecodeError:
                    args = {"<unparsed>": fn["arguments"]}
                out.append((fn["name"], args))
        return out


def _failed(message: str) -> dict[str, Any]:
    return {"isError": True, "content": [{"type": "text", "text": message}]}


class SupportAgent:
    def __init__(
        self,
        client: openai.OpenAI,
        tools: Mapping[str, Callable[..., dict[str, Any]]] = TOOLS,
        *,
        model: str = "local",
        temperature: float = 0.0,
        attempts_per_step: int = 2,
        plan: tuple[str, ...] = PLAN,
        reply: bool = True,
    ) -> None:
        self.client = client
        self.tools = tools
        self.model = model
        self.temperature = temperature
        self.attempts_per_step = attempts_per_step
        self.plan = plan
        self.reply = reply
        self.specs = {s["name"]: {"type": "function", "function": s} for s in SPECS}

    def run(self, ticket: str = TICKET) -> AgentResult:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": ticket},
        ]
        self._calls = 0
        self._errors: list[str] = []
        steps = [self._step(messages, tool) for tool in self.plan]
        answer = self._reply(messages) if self.reply else ""
        return AgentResult(answer, steps, messages, self._calls, self._errors)

    def _ask(self, messages: list[dict[str, Any]], **extra: Any) -> Any:
        self._calls += 1
        return self.client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]  # plain dicts: the SDK takes them
            temperature=self.temperature,
            **extra,
        )

    def _step(self, messages: list[dict[str, Any]], tool: str) -> Step:
        step = Step(tool)
        while step.attempts < self.attempts_per_step and not step.ok:
            step.attempts += 1
            try:
                reply = self._ask(
                    messages,
                    tools=[self.specs[tool]],
                    tool_choice={"type": "function", "function": {"name": tool}},
                    max_tokens=32,
                )
            except openai.APIError as exc:  # turnout already retried; this step tries once more
                self._errors.append(f"{tool}: {type(exc).__name__}: {exc.message[:120]}")
                continue
            calls = reply.choices[0].message.tool_calls or []
            if not calls:
                self._errors.append(f"{tool}: the model answered without calling the tool")
                continue
            call = calls[0]
            step.arguments, step.result = self._invoke(tool, call.function.arguments)
            step.ok = not step.result.get("isError")
            if not step.ok:
                self._errors.append(f"{tool}: {step.result['content'][0]['text'][:120]}")
            messages.append(
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": call.id, "type": "function",
                    "function": {"name": tool, "arguments": call.function.arguments}}]}
            )  # fmt: skip
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(step.result)}
            )
        return step

    def _invoke(self, tool: str, raw: str) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            args = json.loads(raw or "{}")
        except json.JSONDecodeError as exc:
            return {}, _failed(f"arguments are not JSON ({exc.msg})")
        if not isinstance(args, dict):
            return {}, _failed("arguments must be a JSON object")
        try:
            return args, self.tools[tool](**args)
        except TypeError as exc:  # missing or unexpected arguments
            return args, _failed(f"bad arguments: {exc}")
        except Exception as exc:  # a tool that raises is a failed call, not a dead agent
            return args, _failed(f"{type(exc).__name__}: {exc}")

    def _reply(self, messages: list[dict[str, Any]]) -> str:
        ask = {"role": "user", "content": "Now write a short reply to the customer."}
        for _ in range(self.attempts_per_step):
            try:
                reply = self._ask([*messages, ask], max_tokens=80)
            except openai.APIError as exc:
                self._errors.append(f"reply: {type(exc).__name__}: {exc.message[:120]}")
                continue
            text = reply.choices[0].message.content or ""
            if text.strip():
                return text
        return "Sorry, we could not look into this right now; a colleague will follow up."


def main(argv: list[str]) -> int:
    base_url = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8700/v1")
    with openai.OpenAI(base_url=base_url, api_key="unused") as client:
        result = SupportAgent(client).run(argv[1] if len(argv) > 1 else TICKET)
    for s in result.steps:
        print(f"{'ok ' if s.ok else 'ERR'} {s.tool}({json.dumps(s.arguments)}) → {s.result}")
    print(f"\n{result.model_calls} model calls; reply:\n{result.answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
